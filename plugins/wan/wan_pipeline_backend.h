/* wan_pipeline_backend.h: the heru backend instance of the Wan plugins (wan13b_cuda,
 * wan14b_dist) over wan_pipeline: frames from the host in, generated frames out through
 * args->emit, modes reported through the host. */
#ifndef HERU_WAN_PIPELINE_BACKEND_H
#define HERU_WAN_PIPELINE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "heru/plugin.h"

/* Whether HERU_WAN_DEVICE asks for the CPU reference ("cpu"). A developer/test knob: the real
 * engine in fp32, only practical for tiny models. Any value other than "cpu", "cuda" or
 * unset is an error, reported by wan_backend_create. */
bool wan_backend_cpu_requested(void);

/* Builds an instance after the shell's checks (GPU probe unless the CPU was requested).
 * PLUGIN_ID names the plugin in messages; DISTRIBUTED selects the core-distributed-* modes;
 * MODEL "wan-1.3b"/"wan-14b"; ROOT the weights folder; CONFIG_JSON the session config
 * (borrowed). Reports core-imported when the weights are open, then core-warmup (or
 * core-distributed-warmup). new, or NULL with one sentence in ERR. */
void *wan_backend_create(const struct heru_host *host, const char *plugin_id, bool distributed,
			 const char *model, const char *root, const char *config_json, char *err,
			 size_t errlen);
int wan_backend_process(void *instance, const struct heru_process_args *args, char *err,
			size_t errlen);
int wan_backend_update_config(void *instance, const char *config_json, char *err, size_t errlen);
int wan_backend_stats(void *instance, char *buf, size_t buflen);
void wan_backend_destroy(void *instance);

#endif
