/* cfg.h: the runtime config of a session: one schema table, RFC 7396 merge patches
 * validated as a whole, presets A/B with crossfade, and backend resolution.
 *
 * A config is a jansson object holding every schema field (never `revision` or
 * `runtime_status`: the session adds those when it answers). */
#ifndef HERU_CFG_H
#define HERU_CFG_H

#include <stdbool.h>
#include <jansson.h>

#define CFG_MAX_STRING 4096 /* bytes, for any string field */

/* The defaults of every field. Returns new. */
json_t *cfg_defaults(void);

/* Merge PATCH (borrowed, RFC 7396) into CUR (borrowed) and validate the whole result.
 * On success returns 0 and *OUT (new) is the merged config. On failure returns -1,
 * *OUT is NULL, and ERRORS (borrowed array) gets one {"field","reason"} per problem.
 * A patch that changes model_variant, inference_topology or distributed_world_size
 * without naming backend also sets backend to "auto". */
int cfg_merge(const json_t *cur, const json_t *patch, json_t **out, json_t *errors);

/* Validate a full config; appends {"field","reason"} to ERRORS; returns 0 or -1. */
int cfg_validate(const json_t *cfg, json_t *errors);

/* Turn a preset.apply payload ({"preset":"A"|"B"} or {"mix":0..1}) into a merge patch
 * for CFG. Returns 0 and *PATCH (new), or -1 with ERRORS filled. */
int cfg_preset_patch(const json_t *cfg, const json_t *payload, json_t **patch, json_t *errors);

/* True when a field marked "restart" differs between A and B. */
bool cfg_restart_changed(const json_t *a, const json_t *b);

/* True when a field marked "live" differs between A and B. */
bool cfg_live_changed(const json_t *a, const json_t *b);

/* The plugin id that CFG's backend means ("auto" resolved per model_variant and
 * inference_topology). Returns a pointer into CFG or a static string (borrowed). */
const char *cfg_backend_id(const json_t *cfg);

/* The schema table as JSON: [{"name","type","min","max","choices","default","apply","help"}].
 * Returns new. */
json_t *cfg_schema_json(void);

/* Helpers to read validated fields. */
double cfg_num(const json_t *cfg, const char *name);
const char *cfg_str(const json_t *cfg, const char *name);

#endif
