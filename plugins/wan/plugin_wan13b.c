/*
 * plugin_wan13b.c: wan13b_cuda.so, the wan-1.3b backend plugin (see plugin_shell.c).
 *
 * Flags: NEEDS_GPU (never dlclose()d) and THREAD_AFFINE (create, process and destroy
 * of an instance run on its own worker thread, where its CUDA context lives).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "plugin_shell.h"
#include "wan_pipeline_backend.h"

static const struct wan_shell_spec spec = {
	.plugin_id = "wan13b_cuda",
	.default_model = "wan-1.3b",
	.distributed = false,
};

static void *wan_create(const struct heru_host *host, const char *config_json, char *err,
	size_t errlen)
{
	return wan_shell_create(&spec, host, config_json, err, errlen);
}

static int wan_process(void *instance, const struct heru_process_args *args, char *err,
	size_t errlen)
{
	return wan_backend_process(instance, args, err, errlen);
}

static void wan_destroy(void *instance)
{
	wan_backend_destroy(instance);
}

static const struct heru_backend_vtable wan_vtable = {
	.struct_size = sizeof(struct heru_backend_vtable),
	.create = wan_create,
	.process = wan_process,
	.update_config = wan_backend_update_config, /* live fields come with each frame */
	.stats = wan_backend_stats,
	.destroy = wan_destroy,
	.input_chunk = 4, /* frames per chunk after the first (5); the session inbox holds 4 */
};

static const char *const wan_caps[] = { HERU_CAP_VIDEO_GEN, NULL };

HERU_PLUGIN_EXPORT const struct heru_plugin_entry heru_plugin_entry = {
	.abi_major = HERU_ABI_MAJOR,
	.abi_minor = HERU_ABI_MINOR,
	.struct_size = sizeof(struct heru_plugin_entry),
	.kind = HERU_KIND_BACKEND,
	.abi_fingerprint = HERU_ABI_FINGERPRINT,
	.id = "wan13b_cuda",
	.name = "Wan2.1 1.3B (StreamDiffusionV2, one GPU)",
	.version = "0.1.0",
	.description = "Wan2.1 T2V 1.3B causal video diffusion (StreamDiffusionV2) on one NVIDIA GPU.",
	.flags = HERU_FLAG_NEEDS_GPU | HERU_FLAG_THREAD_AFFINE,
	.capabilities = wan_caps,
	.backend = &wan_vtable,
};
