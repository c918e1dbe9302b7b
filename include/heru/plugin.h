/*
 * heru/plugin.h: the Heru plugin ABI (backends and conditioners for herud).
 *
 * DESIGN
 *
 * A plugin is a shared object that exports exactly one data symbol,
 *
 *     const struct heru_plugin_entry heru_plugin_entry;
 *
 * and nothing else (libtool: -export-symbols-regex '^heru_plugin_entry$'; plain cc: a
 * version script, see README "Writing a plugin"). Installed plugins live in
 * `pkg-config --variable=plugindir heru-plugin`. herud dlopen()s every *.so in its
 * plugin folder with RTLD_NOW | RTLD_LOCAL, reads the entry and accepts the plugin when
 *
 *     entry.abi_major       == HERU_ABI_MAJOR   (of the host)
 *     entry.abi_minor       <= HERU_ABI_MINOR   (of the host)
 *     entry.abi_fingerprint == HERU_ABI_FINGERPRINT
 *     entry.struct_size     >= the size of the version-1.0 entry
 *     entry.id is unique among the loaded plugins
 *
 * Anything else is refused with a message naming the file and the mismatch; the
 * server keeps running and lists refused plugins at GET /api/plugins.
 *
 * Compatibility: every struct here begins with `uint32_t struct_size` (except the
 * entry, which begins with the ABI version so any future layout can be told apart)
 * and only ever grows at its end. A minor version bump may append fields; readers
 * check struct_size before touching a field newer than 1.0 (1.1 appended input_chunk to
 * the backend vtable: a 1.0 plugin loads in a 1.1 host and keeps a one-frame inbox;
 * a 1.1 plugin is refused by a 1.0 host). A major bump is any other
 * change. The fingerprint catches plugins built for another data model (the sizes of
 * pointer, size_t, long, int, enum, bool and double, and the byte order).
 *
 * Two kinds of plugin:
 *   backend      turns a camera frame (RGB8) into an output frame, steered by the live
 *                parameters (prompt, prompt_dominance, locks) and by conditioner maps.
 *                Examples: mock (CPU stylizer), wan13b_cuda, wan14b_dist.
 *   conditioner  turns a camera frame into one float map in [0,1] (pose regions,
 *                depth, person segmentation, motion). The host hands every map to
 *                the backend together with the frame. Example: plugins/motion.
 *
 * Threads (see architecture.md §2). herud has:
 *   the loop thread      owns sockets and sessions; it NEVER calls into a plugin.
 *   a loader thread      dlopen()s plugins and runs entry.init; runs create/destroy of
 *                        instances that are not thread-affine (create may take minutes).
 *   one worker thread    per instance: runs process, update_config and stats, one call
 *                        at a time (calls on one instance never overlap).
 * A plugin flagged HERU_FLAG_THREAD_AFFINE (anything holding a CUDA context) gets
 * every call of an instance, create and destroy included, on that instance's own
 * worker thread. Different instances of one plugin may run concurrently on
 * different threads, so a plugin keeps no unsynchronized global mutable state.
 *
 * Ownership words used below: "borrowed" = owned by the caller, valid only during
 * the call (copy or retain it to keep it); "new" = the receiver owns the returned
 * reference and must release it; "steals" = the callee takes over the reference
 * it is given.
 *
 * Plugins never exit(), abort(), print to stdout/stderr or install signal
 * handlers; they report errors through return codes, `err` buffers and host->log.
 * They do no work in ELF constructors or destructors: a refused plugin is
 * dlclose()d right after dlopen(), and GPU plugins are never unloaded.
 */
#ifndef HERU_PLUGIN_H
#define HERU_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- versions ----------------------------------------------------------------- */

#define HERU_ABI_MAJOR 1
#define HERU_ABI_MINOR 1

/* Byte order tag for the fingerprint: 1 little endian, 2 big endian, 3 unknown. */
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HERU_ABI_BYTE_ORDER 1u
#elif defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define HERU_ABI_BYTE_ORDER 2u
#else
#define HERU_ABI_BYTE_ORDER 3u
#endif

enum heru_plugin_kind {
	HERU_KIND_BACKEND = 1,
	HERU_KIND_CONDITIONER = 2
};

/* The ABI fingerprint: the sizes of the types the ABI is built from, one byte each,
 * and 0x40 | HERU_ABI_BYTE_ORDER in the top byte. A constant expression: use it in
 * the entry initializer. */
#define HERU_ABI_FINGERPRINT ( \
	((uint64_t)sizeof(void *) << 0) | \
	((uint64_t)sizeof(size_t) << 8) | \
	((uint64_t)sizeof(long) << 16) | \
	((uint64_t)sizeof(int) << 24) | \
	((uint64_t)sizeof(enum heru_plugin_kind) << 32) | \
	((uint64_t)sizeof(bool) << 40) | \
	((uint64_t)sizeof(double) << 48) | \
	((uint64_t)(0x40u | HERU_ABI_BYTE_ORDER) << 56))

/* ---- error codes (actions return 0 or one of these) ------------------------------- */

#define HERU_OK 0
#define HERU_EINVAL (-1)     /* bad argument or config value */
#define HERU_ENOMEM (-2)     /* out of (host or device) memory */
#define HERU_ERESTART (-3)   /* update_config: "restart required"; build a new instance */
#define HERU_ENOTSUP (-4)    /* not supported by this plugin */
#define HERU_ENODEV (-5)     /* required device missing (no NVIDIA GPU, no CUDA driver) */
#define HERU_ENOENT (-6)     /* a file (weights) was not found */
#define HERU_ECANCELED (-7)  /* create stopped because host->is_cancelled() said so */
#define HERU_EIO (-8)        /* read error, corrupt file */
#define HERU_ENOSPC (-9)     /* caller buffer too small */
#define HERU_EINTERNAL (-10) /* a bug or an unexpected library failure */

/* ---- entry flags ------------------------------------------------------------------ */

#define HERU_FLAG_NEEDS_GPU (1u << 0)     /* useless without an NVIDIA GPU */
#define HERU_FLAG_UNLOADABLE (1u << 1)    /* the host may dlclose() it (never set with CUDA) */
#define HERU_FLAG_THREAD_AFFINE (1u << 2) /* every call of an instance on one thread */

/* ---- capability ids (the entry lists what a plugin offers) -------------------------- */

#define HERU_CAP_VIDEO_GEN "heru.video_gen/1"       /* backend: generates video from frames */
#define HERU_CAP_STYLIZE "heru.stylize/1"           /* backend: CPU stylizer (mock) */
#define HERU_CAP_DIST "heru.dist/1"                 /* backend: spans several GPUs */
#define HERU_CAP_POSE "heru.pose/1"                 /* conditioner map, weighed by pose_lock */
#define HERU_CAP_DEPTH "heru.depth/1"               /* conditioner map, weighed by depth_lock */
#define HERU_CAP_SEGMENTATION "heru.segmentation/1" /* conditioner map, weighed by seg_lock */
#define HERU_CAP_MOTION "heru.motion/1"             /* conditioner map, weighed by motion_lock */

/* ---- frames: refcounted pixel buffers ----------------------------------------------- */

enum heru_format {
	HERU_FORMAT_RGB8 = 1, /* 3 bytes per pixel, R G B, sRGB */
	HERU_FORMAT_F32 = 2   /* 1 float per pixel; maps use [0,1] */
};

/*
 * A frame, or a conditioner map, crossing threads or the plugin boundary. Whoever
 * creates one fills in `retain` and `release` (the creator's refcount and free
 * function) and hands out a reference with count 1. Anyone holding a reference may
 * retain it (then owns one more reference) and must release each reference it owns
 * exactly once, from any thread. Pixels are immutable once a frame has been handed on.
 * Frames made with host->frame_new use the host's allocator.
 */
struct heru_frame {
	uint32_t struct_size;  /* sizeof(struct heru_frame) of the creator */
	uint32_t format;       /* enum heru_format */
	int32_t width;         /* pixels, >= 1 */
	int32_t height;        /* pixels, >= 1 */
	int32_t stride;        /* bytes from one row to the next, >= width * bytes per pixel */
	int32_t reserved;      /* 0 */
	void *data;            /* owned by the frame: height rows of `stride` bytes */
	uint64_t id;           /* frame id from the client; outputs carry their input's id */
	double ts_ms;          /* client timestamp (ms); outputs carry their input's */
	/* The creator's refcount: any thread; retain returns the frame for convenience. */
	struct heru_frame *(*retain)(struct heru_frame *frame);
	void (*release)(struct heru_frame *frame);
	void *creator_data; /* private to the creator */
};

static inline struct heru_frame *heru_frame_retain(struct heru_frame *frame)
{
	return frame ? frame->retain(frame) : frame;
}

static inline void heru_frame_release(struct heru_frame *frame)
{
	if (frame)
		frame->release(frame);
}

/* Address of row y of a frame. */
static inline void *heru_frame_row(const struct heru_frame *frame, int32_t y)
{
	return (uint8_t *)frame->data + (size_t)y * (size_t)frame->stride;
}

/* ---- the host: services the server offers a plugin ----------------------------------- */

enum heru_log_level {
	HERU_LOG_ERROR = 0,
	HERU_LOG_WARN = 1,
	HERU_LOG_INFO = 2,
	HERU_LOG_DEBUG = 3
};

/*
 * The host struct is owned by the host and stays valid until the plugin is unloaded
 * (the one given to entry.init) or until the instance is destroyed (the one given to
 * create). Every function may be called from any thread the plugin is called on.
 */
struct heru_host {
	uint32_t struct_size;    /* sizeof(struct heru_host) of the host */
	uint32_t abi_major;      /* the host's HERU_ABI_MAJOR */
	uint32_t abi_minor;      /* the host's HERU_ABI_MINOR */
	uint32_t reserved;
	const char *name;        /* borrowed: "herud" */
	const char *version;     /* borrowed: "0.1.0" */
	void *host_data;         /* private to the host */

	/* One line, no trailing newline; `msg` borrowed. */
	void (*log)(const struct heru_host *host, int level, const char *msg);

	/* Where a long create (or a running instance) stands: `mode` (borrowed) is one of
	 * "core-imported", "core-warmup", "core-runtime-active", "core-distributed-warmup",
	 * "core-distributed-active" (or NULL to keep the mode); `progress` is 0..1, or a
	 * negative number to keep it. Shown to the user as runtime_status. */
	void (*report)(const struct heru_host *host, const char *mode, float progress);

	/* True once the host no longer wants the instance being created (another backend
	 * was chosen, or the server is shutting down). A long create polls it between
	 * steps and returns NULL with HERU_ECANCELED's sentence "creation was cancelled". */
	bool (*is_cancelled)(const struct heru_host *host);

	/* A new frame (refcount 1, released by whoever ends up owning it) of `format`,
	 * with stride = width * bytes per pixel, uninitialized pixels, id 0, ts 0.
	 * NULL when out of memory or width/height are not in 1..16384. */
	struct heru_frame *(*frame_new)(const struct heru_host *host, uint32_t format,
		int32_t width, int32_t height);
};

/* ---- per-frame input of a backend ------------------------------------------------------ */

/* The live controls, as validated by the host (ranges in architecture.md §5). */
struct heru_params {
	uint32_t struct_size;     /* sizeof(struct heru_params) of the host */
	uint32_t reserved;
	uint64_t revision;        /* the config revision these values come from */
	const char *prompt;       /* borrowed: UTF-8, may be "" */
	float prompt_dominance;   /* 0..1: how far the output may leave the camera image */
	float pose_lock;          /* 0..1 each: weight of the matching conditioner map */
	float depth_lock;
	float seg_lock;
	float motion_lock;        /* also temporal stability (smoothing) */
	int32_t inference_steps;  /* 1..8 */
	int32_t output_width;     /* size the host sends to clients; a backend may emit */
	int32_t output_height;    /* that size (preferred) or any size, the host scales */
	uint64_t seed;
};

/* One conditioner output: the map and the capability it answers (which lock weighs it). */
struct heru_map {
	const char *capability;   /* borrowed: HERU_CAP_POSE, HERU_CAP_DEPTH, ... */
	struct heru_frame *map;   /* borrowed: HERU_FORMAT_F32 in [0,1], any size; sample
	                           * it by normalized coordinates */
};

/*
 * Called by a backend for each output frame, 0..n per process() call (a video model
 * may buffer input frames and emit a chunk at once). `frame` is stolen: the host now
 * owns that reference. Set frame->id and ts_ms to those of the input it answers.
 * Returns 0, or a negative code when the host could not take it (the reference is
 * still consumed).
 */
typedef int (*heru_emit_fn)(void *emit_ctx, struct heru_frame *frame);

struct heru_process_args {
	uint32_t struct_size;           /* sizeof(struct heru_process_args) of the host */
	uint32_t n_maps;                /* entries in maps[] */
	struct heru_frame *frame;       /* borrowed: the camera frame, HERU_FORMAT_RGB8;
	                                 * heru_frame_retain() it to keep it past the call */
	const struct heru_map *maps;    /* borrowed: conditioner maps of this frame */
	const struct heru_params *params; /* borrowed */
	heru_emit_fn emit;
	void *emit_ctx;                 /* borrowed: pass back to emit */
};

/* ---- backend vtable ---------------------------------------------------------------------- */

struct heru_backend_vtable {
	uint32_t struct_size; /* sizeof(struct heru_backend_vtable) of the plugin */

	/*
	 * Build an instance. Thread: a loader thread, or the instance's worker for
	 * THREAD_AFFINE plugins; never the loop thread. May take minutes (weights,
	 * warm-up): report progress through host->report and poll host->is_cancelled.
	 * `host`: borrowed, valid until destroy (keep the pointer). `config_json`:
	 * borrowed, the session's whole config object (architecture.md §5), already
	 * validated by the host. Returns the new instance, or NULL with one sentence in
	 * `err` (NUL-terminated, at most errlen bytes), e.g. "CUDA is required for
	 * wan-1.3b (no NVIDIA GPU found)".
	 */
	void *(*create)(const struct heru_host *host, const char *config_json,
		char *err, size_t errlen);

	/*
	 * Process one camera frame. Thread: the instance's worker. `args` and all it
	 * points to: borrowed. Output frames go through args->emit (stolen). Returns 0,
	 * or a negative code with one sentence in `err`; after an error the host may
	 * keep calling, or destroy the instance.
	 */
	int (*process)(void *instance, const struct heru_process_args *args,
		char *err, size_t errlen);

	/*
	 * A new config (borrowed, whole object) from the host. Thread: the instance's
	 * worker, between process calls. Returns 0 when applied live, HERU_ERESTART
	 * when the change needs a new instance (then the instance keeps its old config
	 * and `err` says "restart required" and why), another negative code when refused.
	 * May be NULL: every change then needs a restart.
	 */
	int (*update_config)(void *instance, const char *config_json, char *err,
		size_t errlen);

	/*
	 * Write the instance's stats as one JSON object, NUL-terminated, into buf
	 * (caller-owned, buflen bytes). Thread: the instance's worker, between process
	 * calls. Returns the length written (without NUL), or HERU_ENOSPC. May be NULL.
	 */
	int (*stats)(void *instance, char *buf, size_t buflen);

	/* Free the instance and everything it owns, frames it retained included. Thread:
	 * as create. The instance is not used afterwards. */
	void (*destroy)(void *instance);

	/* ---- ABI 1.1: the host reads these only when struct_size covers them ---- */

	/*
	 * How many camera frames one step of the model consumes (a chunked video model:
	 * Wan/StreamDiffusionV2 takes 4 per chunk). The host then keeps up to this many
	 * unprocessed frames per session in arrival order and, when more arrive while the
	 * backend works, drops the OLDEST (counted as dropped_inbox); process() is still
	 * called once per frame, in order, and the worker may call it back to back to
	 * catch up with frames that queued during a long step. 0 or 1 (and every 1.0
	 * plugin, whose vtable ends at destroy) keeps the one-frame inbox where the newest
	 * frame replaces an unprocessed one. Values above HERU_INPUT_CHUNK_MAX are taken
	 * as HERU_INPUT_CHUNK_MAX. A constant of the plugin (static data, like the rest of
	 * the vtable): the host reads it on any thread once the plugin is loaded, and it
	 * holds for every instance.
	 */
	uint32_t input_chunk;
	uint32_t reserved;        /* 0 */
};

/* The size of a 1.0 backend vtable (create .. destroy): the least the host accepts. */
#define HERU_BACKEND_VTABLE_SIZE_1_0 \
	(offsetof(struct heru_backend_vtable, destroy) + sizeof(void (*)(void *)))

/* The largest input_chunk the host honours (frames held per session). */
#define HERU_INPUT_CHUNK_MAX 16

/* ---- conditioner vtable -------------------------------------------------------------------- */

struct heru_conditioner_vtable {
	uint32_t struct_size; /* sizeof(struct heru_conditioner_vtable) of the plugin */

	/* As heru_backend_vtable.create. */
	void *(*create)(const struct heru_host *host, const char *config_json,
		char *err, size_t errlen);

	/*
	 * Turn one camera frame (borrowed, HERU_FORMAT_RGB8) into one map: *out receives
	 * a new HERU_FORMAT_F32 frame (any size, usually the input's or smaller), values
	 * in [0,1], id/ts copied from the input; the caller releases it. Thread: the
	 * worker of the backend instance it feeds (conditioner instances belong to one
	 * session, so calls never overlap). Returns 0, or a negative code with *out set
	 * to NULL and one sentence in `err`.
	 */
	int (*process)(void *instance, struct heru_frame *frame, struct heru_frame **out,
		char *err, size_t errlen);

	/* As heru_backend_vtable.destroy. */
	void (*destroy)(void *instance);
};

/* ---- the entry: the one exported symbol ------------------------------------------------------- */

struct heru_plugin_entry {
	uint32_t abi_major;        /* HERU_ABI_MAJOR the plugin was built with */
	uint32_t abi_minor;        /* HERU_ABI_MINOR the plugin was built with */
	uint32_t struct_size;      /* sizeof(struct heru_plugin_entry) */
	uint32_t kind;             /* enum heru_plugin_kind */
	uint64_t abi_fingerprint;  /* HERU_ABI_FINGERPRINT */
	const char *id;            /* unique, [a-z0-9_.-]{1,63}: "mock", "wan13b_cuda" */
	const char *name;          /* human name: "Mock stylizer" */
	const char *version;       /* the plugin's own version: "1.0.0" */
	const char *description;   /* one sentence, may be NULL */
	uint32_t flags;            /* HERU_FLAG_* */
	uint32_t reserved;         /* 0 */
	const char *const *capabilities; /* NULL-terminated list of capability ids */

	/*
	 * Optional (NULL allowed). Called once after the checks pass, on the loader
	 * thread, before any create; `host` is borrowed and valid until the plugin is
	 * unloaded. Keep it quick: no GPU work here (create does that). Returns 0, or a
	 * negative code with one sentence in `err`: the plugin is then refused.
	 */
	int (*init)(const struct heru_host *host, char *err, size_t errlen);
	/* Optional: called on the loader thread after the last instance is destroyed,
	 * before an UNLOADABLE plugin is dlclose()d, or at shutdown. */
	void (*deinit)(void);

	/* Exactly one of these is set, matching `kind`. Static, owned by the plugin. */
	const struct heru_backend_vtable *backend;
	const struct heru_conditioner_vtable *conditioner;
};

/* The exported symbol name, for dlsym(). */
#define HERU_PLUGIN_ENTRY_SYMBOL "heru_plugin_entry"

/* Everything a 1.0 host reads from an entry lies below this offset. */
#define HERU_PLUGIN_ENTRY_SIZE_1_0 \
	(offsetof(struct heru_plugin_entry, conditioner) + sizeof(const void *))

/* Declare the entry in a plugin:  HERU_PLUGIN_EXPORT const struct heru_plugin_entry
 * heru_plugin_entry = { .abi_major = HERU_ABI_MAJOR, ... };
 * In C++ a const namespace-scope object has internal linkage: write
 * extern "C" HERU_PLUGIN_EXPORT const struct heru_plugin_entry heru_plugin_entry = ...; */
#if defined(__GNUC__)
#define HERU_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define HERU_PLUGIN_EXPORT
#endif

#ifdef __cplusplus
}
#endif

#endif /* HERU_PLUGIN_H */
