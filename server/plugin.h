/*
 * plugin.h: herud's plugin loader (the registry of loaded and refused plugins) and
 * the host side of refcounted frames. See include/heru/plugin.h for the ABI.
 */
#ifndef HERU_SERVER_PLUGIN_H
#define HERU_SERVER_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "heru/plugin.h"

struct plugin_registry;

/*
 * Load every regular file named *.so in `dir` (borrowed), in name order, with
 * dlopen(RTLD_NOW | RTLD_LOCAL), check its entry (ABI major equal, minor <= host's,
 * fingerprint equal, sane fields, id not yet taken) and run its init with `host`
 * (borrowed; must outlive the registry). A plugin that fails any check is refused:
 * its reason (one sentence naming the file and the mismatch) is logged through
 * host->log and kept for plugin_registry_json. A missing or unreadable `dir` is
 * recorded as a refusal too. Call on the loader thread (or at startup, before the
 * loop runs). Returns a new registry, or NULL only when out of memory.
 */
struct plugin_registry *plugin_registry_new(const char *dir, const struct heru_host *host);

/* Call every loaded plugin's deinit, dlclose() those flagged UNLOADABLE and not
 * NEEDS_GPU (GPU plugins stay mapped until exit), free the registry. All instances
 * must have been destroyed. NULL is a no-op. */
void plugin_registry_free(struct plugin_registry *reg);

/* The loaded plugin with this id (borrowed, valid until plugin_registry_free), or NULL. */
const struct heru_plugin_entry *plugin_registry_find(const struct plugin_registry *reg,
	const char *id);

/* Loaded plugins in load order: count, and the i-th entry (NULL past the end). */
size_t plugin_registry_count(const struct plugin_registry *reg);
const struct heru_plugin_entry *plugin_registry_at(const struct plugin_registry *reg, size_t i);
/* File name (basename, borrowed) the plugin with this id was loaded from, or NULL. */
const char *plugin_registry_file(const struct plugin_registry *reg, const char *id);

/* Refused files: count, and the i-th file name / reason (borrowed; NULL past the end). */
size_t plugin_registry_refused_count(const struct plugin_registry *reg);
const char *plugin_registry_refused_file(const struct plugin_registry *reg, size_t i);
const char *plugin_registry_refused_reason(const struct plugin_registry *reg, size_t i);

/*
 * New JSON (the body of GET /api/plugins):
 * {"plugins":[{"id","name","kind","version","abi","capabilities":[..],"file","flags":[..]}],
 *  "refused":[{"file","reason"}]}. kind is "backend" or "conditioner"; abi is the
 * plugin's "major.minor"; backends also carry "input_chunk" (plugin_backend_input_chunk);
 * flags are names from "needs_gpu", "unloadable", "thread_affine". NULL when out of memory.
 */
json_t *plugin_registry_json(const struct plugin_registry *reg);

/*
 * Check an entry against this host's ABI. `file` (borrowed) names the plugin in the
 * message. `symbol_size` is the size of the exported symbol when known, else 0.
 * Returns 0, or HERU_EINVAL with one sentence in err. (Exposed for tests.)
 */
int plugin_check_entry(const struct heru_plugin_entry *entry, size_t symbol_size,
	const char *file, char *err, size_t errlen);

/* "backend", "conditioner" or "unknown". */
const char *plugin_kind_name(uint32_t kind);

/* Frames one step of a backend consumes (heru_backend_vtable.input_chunk, ABI 1.1):
 * 1 for a conditioner, a 1.0 vtable (too short to hold the field) or 0; at most
 * HERU_INPUT_CHUNK_MAX. The size of the session inbox (pipeline.c). */
uint32_t plugin_backend_input_chunk(const struct heru_plugin_entry *entry);

/*
 * A new host-allocated frame (refcount 1, atomic; release from any thread) of
 * `format` (HERU_FORMAT_RGB8 or HERU_FORMAT_F32), stride = width * bytes per pixel,
 * pixels zeroed. NULL when out of memory or a dimension is outside 1..16384.
 */
struct heru_frame *plugin_frame_new(uint32_t format, int32_t width, int32_t height);

/* plugin_frame_new in the shape of heru_host.frame_new (ignores `host`). */
struct heru_frame *plugin_host_frame_new(const struct heru_host *host, uint32_t format,
	int32_t width, int32_t height);

/* Current reference count of a frame made by plugin_frame_new (for tests), else -1. */
int plugin_frame_refcount(const struct heru_frame *frame);

#endif /* HERU_SERVER_PLUGIN_H */
