/*
 * plugin_wan.c: the Wan backend plugins, one source built twice (plugins/wan/plugin.mk):
 *   wan13b_cuda.so  wan-1.3b on one GPU (the default build of this file)
 *   wan14b_dist.so  wan-14b, one or more GPUs (built with -DHERU_WAN_14B)
 * Both hand every call to the shell (plugin_shell.c: GPU probe, weights lookup, errors)
 * and the StreamDiffusionV2 pipeline (wan_pipeline_backend.h).
 *
 * Flags: NEEDS_GPU (never dlclose()d) and THREAD_AFFINE (create, process and destroy
 * of an instance run on its own worker thread, where its CUDA context lives).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "plugin_shell.h"
#include "wan_pipeline_backend.h"

#ifdef HERU_WAN_14B
#define WAN_PLUGIN_ID "wan14b_dist"
#define WAN_MODEL "wan-14b"
#define WAN_DISTRIBUTED true
#define WAN_NAME "Wan2.1 14B (StreamDiffusionV2, one or more GPUs)"
#define WAN_DESCRIPTION \
	"Wan2.1 T2V 14B causal video diffusion (StreamDiffusionV2), pipelined over several NVIDIA GPUs."
static const char *const wan_caps[] = { HERU_CAP_VIDEO_GEN, HERU_CAP_DIST, NULL };
#else
#define WAN_PLUGIN_ID "wan13b_cuda"
#define WAN_MODEL "wan-1.3b"
#define WAN_DISTRIBUTED false
#define WAN_NAME "Wan2.1 1.3B (StreamDiffusionV2, one GPU)"
#define WAN_DESCRIPTION "Wan2.1 T2V 1.3B causal video diffusion (StreamDiffusionV2) on one NVIDIA GPU."
static const char *const wan_caps[] = { HERU_CAP_VIDEO_GEN, NULL };
#endif

static const struct wan_shell_spec spec = {
	.plugin_id = WAN_PLUGIN_ID,
	.default_model = WAN_MODEL,
	.distributed = WAN_DISTRIBUTED,
};

static void *wan_create(const struct heru_host *host, const char *config_json, char *err,
	size_t errlen)
{
	return wan_shell_create(&spec, host, config_json, err, errlen);
}

static const struct heru_backend_vtable wan_vtable = {
	.struct_size = sizeof(struct heru_backend_vtable),
	.create = wan_create,
	.process = wan_backend_process,
	.update_config = wan_backend_update_config, /* live fields come with each frame */
	.stats = wan_backend_stats,
	.destroy = wan_backend_destroy,
	.input_chunk = 4, /* frames per chunk after the first (5); the session inbox holds 4 */
};

HERU_PLUGIN_EXPORT const struct heru_plugin_entry heru_plugin_entry = {
	.abi_major = HERU_ABI_MAJOR,
	.abi_minor = HERU_ABI_MINOR,
	.struct_size = sizeof(struct heru_plugin_entry),
	.kind = HERU_KIND_BACKEND,
	.abi_fingerprint = HERU_ABI_FINGERPRINT,
	.id = WAN_PLUGIN_ID,
	.name = WAN_NAME,
	.version = "0.1.0",
	.description = WAN_DESCRIPTION,
	.flags = HERU_FLAG_NEEDS_GPU | HERU_FLAG_THREAD_AFFINE,
	.capabilities = wan_caps,
	.backend = &wan_vtable,
};
