/*
 * plugin.c: the plugin loader.
 *
 * DESIGN
 *
 * plugin_registry_new() scans one folder, in name order so that duplicate-id
 * resolution is deterministic (the first file wins, later ones are refused), and for
 * each *.so:
 *   1. dlopen(RTLD_NOW | RTLD_LOCAL): unresolved symbols fail here, not at the first
 *      frame, and plugins cannot see each other's symbols;
 *   2. dlsym("heru_plugin_entry"); with glibc, dladdr1(RTLD_DL_SYMENT) also gives
 *      the symbol's size, so a symbol too small to be an entry (say `int
 *      heru_plugin_entry;`) is refused before we read past its end;
 *   3. read abi_major/abi_minor first (the only fields fixed across majors), then
 *      struct_size, the fingerprint and the fields (plugin_check_entry);
 *   4. reject a duplicate id; run the optional init.
 * A refused file is dlclose()d again unless its init ran and it is not unloadable
 * (its code may then own a CUDA context). Loaded plugins are dlclose()d at
 * plugin_registry_free only when flagged UNLOADABLE and not NEEDS_GPU: unmapping a
 * CUDA runtime crashes at exit.
 *
 * The registry is immutable after plugin_registry_new, so any thread may read it.
 *
 * Frames: plugin_frame_new() is the host's allocator for struct heru_frame, with an
 * atomic refcount in one allocation (header, then pixels) released by the last
 * heru_frame_release() on any thread.
 */
#include "config.h"

#include "plugin.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PLUGIN_MAX_FILES 256     /* files considered per folder */
#define PLUGIN_REASON_MAX 1024
#define PLUGIN_ID_MAX 63
#define PLUGIN_TEXT_MAX 256      /* name, version, description, capability ids */
#define PLUGIN_MAX_CAPS 32
#define FRAME_MAX_DIM 16384

struct plugin_loaded {
	char *file;                                /* new: basename */
	void *handle;                              /* dlopen handle */
	const struct heru_plugin_entry *entry;     /* borrowed from the mapped object */
};

struct plugin_refused {
	char *file;   /* new */
	char *reason; /* new */
};

struct plugin_registry {
	const struct heru_host *host; /* borrowed */
	struct plugin_loaded *loaded; /* new: n_loaded entries */
	size_t n_loaded;
	struct plugin_refused *refused; /* new: n_refused entries */
	size_t n_refused;
};

/* ---- small helpers ---- */

static void plugin_log(const struct heru_host *host, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void plugin_log(const struct heru_host *host, int level, const char *fmt, ...)
{
	char msg[PLUGIN_REASON_MAX + 128];
	va_list ap;

	if (!host || !host->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	host->log(host, level, msg);
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

const char *plugin_kind_name(uint32_t kind)
{
	switch (kind) {
	case HERU_KIND_BACKEND:
		return "backend";
	case HERU_KIND_CONDITIONER:
		return "conditioner";
	default:
		return "unknown";
	}
}

/* A string the plugin hands us: non-NULL, NUL within `max` bytes, printable ASCII or
 * UTF-8 (no control characters). */
static bool text_ok(const char *s, size_t max)
{
	size_t i;

	if (!s)
		return false;
	for (i = 0; i < max; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == 0)
			return i > 0;
		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return false;
}

static bool id_ok(const char *id)
{
	size_t i;

	if (!id)
		return false;
	for (i = 0; i <= PLUGIN_ID_MAX; i++) {
		char c = id[i];
		if (c == 0)
			return i > 0;
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			return false;
	}
	return false;
}

/* ---- entry checks ---- */

int plugin_check_entry(const struct heru_plugin_entry *e, size_t symbol_size,
	const char *file, char *err, size_t errlen)
{
	size_t ncaps;

	if (!e) {
		seterr(err, errlen, "plugin '%s' has a NULL heru_plugin_entry", file);
		return HERU_EINVAL;
	}
	if (symbol_size && symbol_size < 3 * sizeof(uint32_t)) {
		seterr(err, errlen, "plugin '%s' exports heru_plugin_entry of %zu bytes, "
			"too small to be a plugin entry", file, symbol_size);
		return HERU_EINVAL;
	}
	if (e->abi_major != HERU_ABI_MAJOR) {
		seterr(err, errlen, "plugin '%s' was built for ABI %u.%u but this host has ABI %d.%d "
			"(major versions differ: rebuild the plugin against this heru-plugin SDK)",
			file, e->abi_major, e->abi_minor, HERU_ABI_MAJOR, HERU_ABI_MINOR);
		return HERU_EINVAL;
	}
	if (e->abi_minor > HERU_ABI_MINOR) {
		seterr(err, errlen, "plugin '%s' needs ABI %u.%u, newer than this host's ABI %d.%d "
			"(upgrade herud or rebuild the plugin against an older SDK)",
			file, e->abi_major, e->abi_minor, HERU_ABI_MAJOR, HERU_ABI_MINOR);
		return HERU_EINVAL;
	}
	if (e->struct_size < HERU_PLUGIN_ENTRY_SIZE_1_0 ||
	    (symbol_size && symbol_size < e->struct_size)) {
		seterr(err, errlen, "plugin '%s' has an entry of %u bytes (symbol %zu bytes), "
			"smaller than the %zu bytes of ABI %d.0", file, e->struct_size, symbol_size,
			(size_t)HERU_PLUGIN_ENTRY_SIZE_1_0, HERU_ABI_MAJOR);
		return HERU_EINVAL;
	}
	if (e->abi_fingerprint != HERU_ABI_FINGERPRINT) {
		seterr(err, errlen, "plugin '%s' has ABI fingerprint 0x%016llx but this host has "
			"0x%016llx (built for another data model: type sizes or byte order differ)",
			file, (unsigned long long)e->abi_fingerprint,
			(unsigned long long)HERU_ABI_FINGERPRINT);
		return HERU_EINVAL;
	}
	if (!id_ok(e->id)) {
		seterr(err, errlen, "plugin '%s' has a missing or invalid id (want 1 to %d "
			"characters of [a-z0-9_.-])", file, PLUGIN_ID_MAX);
		return HERU_EINVAL;
	}
	if (!text_ok(e->name, PLUGIN_TEXT_MAX) || !text_ok(e->version, PLUGIN_TEXT_MAX) ||
	    (e->description && !text_ok(e->description, 4 * PLUGIN_TEXT_MAX))) {
		seterr(err, errlen, "plugin '%s' (id '%s') has a missing or malformed name, version "
			"or description", file, e->id);
		return HERU_EINVAL;
	}
	if (!e->capabilities) {
		seterr(err, errlen, "plugin '%s' (id '%s') has no capability list", file, e->id);
		return HERU_EINVAL;
	}
	for (ncaps = 0; e->capabilities[ncaps]; ncaps++) {
		if (ncaps >= PLUGIN_MAX_CAPS || !text_ok(e->capabilities[ncaps], PLUGIN_TEXT_MAX)) {
			seterr(err, errlen, "plugin '%s' (id '%s') has a malformed capability list "
				"(more than %d entries, or an entry that is not text)", file, e->id,
				PLUGIN_MAX_CAPS);
			return HERU_EINVAL;
		}
	}
	if (e->kind == HERU_KIND_BACKEND) {
		const struct heru_backend_vtable *v = e->backend;
		if (!v || e->conditioner || v->struct_size < HERU_BACKEND_VTABLE_SIZE_1_0 || !v->create ||
		    !v->process || !v->destroy) {
			seterr(err, errlen, "plugin '%s' (id '%s') is a backend without a complete "
				"backend vtable (create, process and destroy are required)", file, e->id);
			return HERU_EINVAL;
		}
	} else if (e->kind == HERU_KIND_CONDITIONER) {
		const struct heru_conditioner_vtable *v = e->conditioner;
		if (!v || e->backend || v->struct_size < sizeof(*v) || !v->create ||
		    !v->process || !v->destroy) {
			seterr(err, errlen, "plugin '%s' (id '%s') is a conditioner without a complete "
				"conditioner vtable (create, process and destroy are required)", file,
				e->id);
			return HERU_EINVAL;
		}
	} else {
		seterr(err, errlen, "plugin '%s' (id '%s') has unknown kind %u (want 1 backend or "
			"2 conditioner)", file, e->id, e->kind);
		return HERU_EINVAL;
	}
	if (e->flags & ~(uint32_t)(HERU_FLAG_NEEDS_GPU | HERU_FLAG_UNLOADABLE |
				   HERU_FLAG_THREAD_AFFINE)) {
		seterr(err, errlen, "plugin '%s' (id '%s') sets unknown flags 0x%x", file, e->id,
			e->flags);
		return HERU_EINVAL;
	}
	return 0;
}

/* ---- registry building ---- */

static int add_refused(struct plugin_registry *reg, const char *file, const char *reason)
{
	struct plugin_refused *r;
	char *f, *why;

	r = realloc(reg->refused, (reg->n_refused + 1) * sizeof(*r));
	if (!r)
		return HERU_ENOMEM;
	reg->refused = r;
	f = strdup(file);
	why = strdup(reason);
	if (!f || !why) {
		free(f);
		free(why);
		return HERU_ENOMEM;
	}
	r[reg->n_refused].file = f;
	r[reg->n_refused].reason = why;
	reg->n_refused++;
	plugin_log(reg->host, HERU_LOG_WARN, "refused plugin: %s", reason);
	return 0;
}

static int add_loaded(struct plugin_registry *reg, const char *file, void *handle,
	const struct heru_plugin_entry *entry)
{
	struct plugin_loaded *l;
	char *f;

	l = realloc(reg->loaded, (reg->n_loaded + 1) * sizeof(*l));
	if (!l)
		return HERU_ENOMEM;
	reg->loaded = l;
	f = strdup(file);
	if (!f)
		return HERU_ENOMEM;
	l[reg->n_loaded].file = f;
	l[reg->n_loaded].handle = handle;
	l[reg->n_loaded].entry = entry;
	reg->n_loaded++;
	plugin_log(reg->host, HERU_LOG_INFO, "loaded plugin '%s' %s (%s) from '%s'", entry->id,
		entry->version, plugin_kind_name(entry->kind), file);
	return 0;
}

/* Size of the object `sym` points into, from the dynamic symbol table; 0 if unknown. */
static size_t symbol_size(void *sym)
{
#ifdef __GLIBC__ /* dladdr1 and RTLD_DL_SYMENT are GNU extensions */
	Dl_info info;
	const ElfW(Sym) *esym = NULL;

	if (dladdr1(sym, &info, (void **)&esym, RTLD_DL_SYMENT) && esym &&
	    info.dli_saddr == sym)
		return (size_t)esym->st_size;
#else
	(void)sym;
#endif
	return 0;
}

/* Load one file. Returns 0 (loaded or refused) or HERU_ENOMEM. */
static int load_one(struct plugin_registry *reg, const char *dir, const char *file)
{
	char path[4096], reason[PLUGIN_REASON_MAX], ierr[256];
	const struct heru_plugin_entry *e;
	const struct heru_plugin_entry *other;
	void *handle, *sym;
	size_t ssize;
	int rc;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, file) >= sizeof(path))
		return add_refused(reg, file, "plugin path is too long");

	dlerror();
	handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!handle) {
		const char *d = dlerror();
		snprintf(reason, sizeof(reason), "cannot load plugin '%s': %s", file,
			d ? d : "unknown dlopen error");
		return add_refused(reg, file, reason);
	}
	dlerror();
	sym = dlsym(handle, HERU_PLUGIN_ENTRY_SYMBOL);
	if (!sym) {
		snprintf(reason, sizeof(reason), "plugin '%s' does not export the symbol '%s' "
			"(not a Heru plugin, or built without HERU_PLUGIN_LINK)", file,
			HERU_PLUGIN_ENTRY_SYMBOL);
		goto refuse_close;
	}
	e = sym;
	ssize = symbol_size(sym);
	if (plugin_check_entry(e, ssize, file, reason, sizeof(reason)) != 0)
		goto refuse_close;
	other = plugin_registry_find(reg, e->id);
	if (other) {
		snprintf(reason, sizeof(reason), "plugin '%s' has id '%s', already provided by "
			"'%s'", file, e->id, plugin_registry_file(reg, e->id));
		goto refuse_close;
	}
	if (e->init) {
		ierr[0] = 0;
		rc = e->init(reg->host, ierr, sizeof(ierr));
		if (rc != 0) {
			snprintf(reason, sizeof(reason), "plugin '%s' (id '%s') failed to initialize: "
				"%s", file, e->id, ierr[0] ? ierr : "no reason given");
			if (!(e->flags & HERU_FLAG_UNLOADABLE) || (e->flags & HERU_FLAG_NEEDS_GPU))
				return add_refused(reg, file, reason); /* keep it mapped */
			goto refuse_close;
		}
	}
	rc = add_loaded(reg, file, handle, e);
	if (rc != 0) {
		if (e->deinit)
			e->deinit();
		dlclose(handle);
	}
	return rc;

refuse_close:
	dlclose(handle);
	return add_refused(reg, file, reason);
}

static bool has_so_suffix(const char *name)
{
	size_t n = strlen(name);
	return n > 3 && strcmp(name + n - 3, ".so") == 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct plugin_registry *plugin_registry_new(const char *dir, const struct heru_host *host)
{
	struct plugin_registry *reg;
	char **names = NULL;
	size_t n = 0, i;
	char reason[PLUGIN_REASON_MAX];
	struct dirent *de;
	DIR *d = NULL;
	bool oom = false;

	reg = calloc(1, sizeof(*reg));
	if (!reg)
		return NULL;
	reg->host = host;
	if (!dir || !*dir) {
		if (add_refused(reg, "", "no plugin folder was given") != 0)
			goto fail;
		return reg;
	}
	d = opendir(dir);
	if (!d) {
		snprintf(reason, sizeof(reason), "cannot open plugin folder '%s': %s", dir,
			strerror(errno));
		if (add_refused(reg, dir, reason) != 0)
			goto fail;
		return reg;
	}
	names = calloc(PLUGIN_MAX_FILES, sizeof(*names));
	if (!names)
		goto fail;
	while ((de = readdir(d)) != NULL) {
		char path[4096];
		struct stat st;

		if (de->d_name[0] == '.' || !has_so_suffix(de->d_name))
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= sizeof(path))
			continue;
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		if (n == PLUGIN_MAX_FILES) {
			snprintf(reason, sizeof(reason), "plugin folder '%s' has more than %d plugins; "
				"'%s' and later files are ignored", dir, PLUGIN_MAX_FILES, de->d_name);
			if (add_refused(reg, de->d_name, reason) != 0)
				oom = true;
			break;
		}
		names[n] = strdup(de->d_name);
		if (!names[n]) {
			oom = true;
			break;
		}
		n++;
	}
	closedir(d);
	d = NULL;
	if (oom)
		goto fail;
	qsort(names, n, sizeof(*names), name_cmp);
	for (i = 0; i < n; i++)
		if (load_one(reg, dir, names[i]) != 0)
			goto fail;
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return reg;

fail:
	if (d)
		closedir(d);
	if (names) {
		for (i = 0; i < n; i++)
			free(names[i]);
		free(names);
	}
	plugin_registry_free(reg);
	return NULL;
}

void plugin_registry_free(struct plugin_registry *reg)
{
	size_t i;

	if (!reg)
		return;
	for (i = reg->n_loaded; i-- > 0;) {
		const struct heru_plugin_entry *e = reg->loaded[i].entry;
		if (e->deinit)
			e->deinit();
		if ((e->flags & HERU_FLAG_UNLOADABLE) && !(e->flags & HERU_FLAG_NEEDS_GPU))
			dlclose(reg->loaded[i].handle);
		free(reg->loaded[i].file);
	}
	for (i = 0; i < reg->n_refused; i++) {
		free(reg->refused[i].file);
		free(reg->refused[i].reason);
	}
	free(reg->loaded);
	free(reg->refused);
	free(reg);
}

/* ---- queries ---- */

static const struct plugin_loaded *find_loaded(const struct plugin_registry *reg,
	const char *id)
{
	size_t i;

	if (!reg || !id)
		return NULL;
	for (i = 0; i < reg->n_loaded; i++)
		if (strcmp(reg->loaded[i].entry->id, id) == 0)
			return &reg->loaded[i];
	return NULL;
}

const struct heru_plugin_entry *plugin_registry_find(const struct plugin_registry *reg,
	const char *id)
{
	const struct plugin_loaded *l = find_loaded(reg, id);
	return l ? l->entry : NULL;
}

const char *plugin_registry_file(const struct plugin_registry *reg, const char *id)
{
	const struct plugin_loaded *l = find_loaded(reg, id);
	return l ? l->file : NULL;
}

size_t plugin_registry_count(const struct plugin_registry *reg)
{
	return reg ? reg->n_loaded : 0;
}

const struct heru_plugin_entry *plugin_registry_at(const struct plugin_registry *reg, size_t i)
{
	return reg && i < reg->n_loaded ? reg->loaded[i].entry : NULL;
}

size_t plugin_registry_refused_count(const struct plugin_registry *reg)
{
	return reg ? reg->n_refused : 0;
}

const char *plugin_registry_refused_file(const struct plugin_registry *reg, size_t i)
{
	return reg && i < reg->n_refused ? reg->refused[i].file : NULL;
}

const char *plugin_registry_refused_reason(const struct plugin_registry *reg, size_t i)
{
	return reg && i < reg->n_refused ? reg->refused[i].reason : NULL;
}

uint32_t plugin_backend_input_chunk(const struct heru_plugin_entry *e)
{
	const struct heru_backend_vtable *v = e ? e->backend : NULL;

	if (!v || e->kind != HERU_KIND_BACKEND ||
	    v->struct_size < offsetof(struct heru_backend_vtable, input_chunk) + sizeof(v->input_chunk) ||
	    v->input_chunk < 1)
		return 1;
	return v->input_chunk > HERU_INPUT_CHUNK_MAX ? HERU_INPUT_CHUNK_MAX : v->input_chunk;
}

static json_t *entry_json(const struct plugin_loaded *l)
{
	const struct heru_plugin_entry *e = l->entry;
	json_t *o, *caps, *flags;
	char abi[32];
	size_t i;

	snprintf(abi, sizeof(abi), "%u.%u", e->abi_major, e->abi_minor);
	caps = json_array();
	flags = json_array();
	o = json_object();
	if (!caps || !flags || !o)
		goto fail;
	for (i = 0; e->capabilities[i]; i++)
		if (json_array_append_new(caps, json_string(e->capabilities[i])) != 0)
			goto fail;
	if (((e->flags & HERU_FLAG_NEEDS_GPU) &&
	     json_array_append_new(flags, json_string("needs_gpu")) != 0) ||
	    ((e->flags & HERU_FLAG_UNLOADABLE) &&
	     json_array_append_new(flags, json_string("unloadable")) != 0) ||
	    ((e->flags & HERU_FLAG_THREAD_AFFINE) &&
	     json_array_append_new(flags, json_string("thread_affine")) != 0))
		goto fail;
	if (json_object_set_new(o, "id", json_string(e->id)) != 0 ||
	    json_object_set_new(o, "name", json_string(e->name)) != 0 ||
	    json_object_set_new(o, "kind", json_string(plugin_kind_name(e->kind))) != 0 ||
	    json_object_set_new(o, "version", json_string(e->version)) != 0 ||
	    json_object_set_new(o, "abi", json_string(abi)) != 0 ||
	    json_object_set_new(o, "description",
		    e->description ? json_string(e->description) : json_null()) != 0 ||
	    json_object_set_new(o, "capabilities", caps) != 0) {
		caps = NULL;
		goto fail;
	}
	caps = NULL;
	if (json_object_set_new(o, "flags", flags) != 0) {
		flags = NULL;
		goto fail;
	}
	flags = NULL;
	if (json_object_set_new(o, "file", json_string(l->file)) != 0)
		goto fail;
	if (e->kind == HERU_KIND_BACKEND &&
	    json_object_set_new(o, "input_chunk", json_integer(plugin_backend_input_chunk(e))) != 0)
		goto fail;
	return o;

fail:
	json_decref(caps);
	json_decref(flags);
	json_decref(o);
	return NULL;
}

json_t *plugin_registry_json(const struct plugin_registry *reg)
{
	json_t *root, *plugins, *refused;
	size_t i;

	root = json_object();
	plugins = json_array();
	refused = json_array();
	if (!root || !plugins || !refused)
		goto fail;
	for (i = 0; reg && i < reg->n_loaded; i++) {
		json_t *o = entry_json(&reg->loaded[i]);
		if (!o || json_array_append_new(plugins, o) != 0)
			goto fail;
	}
	for (i = 0; reg && i < reg->n_refused; i++) {
		json_t *o = json_pack("{s:s, s:s}", "file", reg->refused[i].file, "reason",
			reg->refused[i].reason);
		if (!o || json_array_append_new(refused, o) != 0)
			goto fail;
	}
	if (json_object_set_new(root, "plugins", plugins) != 0) {
		plugins = NULL;
		goto fail;
	}
	plugins = NULL;
	if (json_object_set_new(root, "refused", refused) != 0) {
		refused = NULL;
		goto fail;
	}
	return root;

fail:
	json_decref(plugins);
	json_decref(refused);
	json_decref(root);
	return NULL;
}

/* ---- host frames ---- */

struct host_frame {
	struct heru_frame frame;
	atomic_int refs;
	/* pixels follow, 64-byte aligned */
};

#define HOST_FRAME_HDR ((sizeof(struct host_frame) + 63) & ~(size_t)63)

static struct heru_frame *host_frame_retain(struct heru_frame *f)
{
	struct host_frame *hf = f->creator_data;
	atomic_fetch_add_explicit(&hf->refs, 1, memory_order_relaxed);
	return f;
}

static void host_frame_release(struct heru_frame *f)
{
	struct host_frame *hf = f->creator_data;
	if (atomic_fetch_sub_explicit(&hf->refs, 1, memory_order_acq_rel) == 1)
		free(hf);
}

struct heru_frame *plugin_frame_new(uint32_t format, int32_t width, int32_t height)
{
	struct host_frame *hf;
	size_t bpp, stride, bytes;
	void *mem;

	if (format == HERU_FORMAT_RGB8)
		bpp = 3;
	else if (format == HERU_FORMAT_F32)
		bpp = sizeof(float);
	else
		return NULL;
	if (width < 1 || height < 1 || width > FRAME_MAX_DIM || height > FRAME_MAX_DIM)
		return NULL;
	stride = (size_t)width * bpp;
	bytes = stride * (size_t)height;
	if (posix_memalign(&mem, 64, HOST_FRAME_HDR + bytes) != 0)
		return NULL;
	memset(mem, 0, HOST_FRAME_HDR + bytes);
	hf = mem;
	atomic_init(&hf->refs, 1);
	hf->frame.struct_size = sizeof(struct heru_frame);
	hf->frame.format = format;
	hf->frame.width = width;
	hf->frame.height = height;
	hf->frame.stride = (int32_t)stride;
	hf->frame.data = (uint8_t *)mem + HOST_FRAME_HDR;
	hf->frame.retain = host_frame_retain;
	hf->frame.release = host_frame_release;
	hf->frame.creator_data = hf;
	return &hf->frame;
}

struct heru_frame *plugin_host_frame_new(const struct heru_host *host, uint32_t format,
	int32_t width, int32_t height)
{
	(void)host;
	return plugin_frame_new(format, width, height);
}

int plugin_frame_refcount(const struct heru_frame *frame)
{
	const struct host_frame *hf;

	if (!frame || frame->retain != host_frame_retain)
		return -1;
	hf = frame->creator_data;
	return atomic_load(&((struct host_frame *)hf)->refs);
}
