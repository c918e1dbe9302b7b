/*
 * plugin_shell.h: what the wan13b_cuda and wan14b_dist plugins share: the GPU probe,
 * the weights lookup and the create sequence that reports its progress to the host.
 */
#ifndef HERU_WAN_PLUGIN_SHELL_H
#define HERU_WAN_PLUGIN_SHELL_H

#include <stddef.h>

#include "heru/plugin.h"

struct wan_shell_spec {
	const char *plugin_id;      /* "wan13b_cuda" */
	const char *default_model;  /* "wan-1.3b": used when the config names none */
	bool distributed;           /* wan14b_dist: reports core-distributed-* modes */
};

/*
 * Number of usable NVIDIA GPUs (cuInit + cuDeviceGetCount through
 * dlopen("libcuda.so.1"), so the plugin builds and loads without CUDA), or 0 with a
 * short reason in `why` (e.g. "libcuda.so.1 not found").
 */
int wan_shell_gpu_count(char *why, size_t whylen);

/*
 * Find the generator checkpoint for `model` ("wan-1.3b" or "wan-14b") starting at
 * `root` (the config's weights_path, else $STREAMDIFFUSIONV2_PATH, else
 * $HERU_WEIGHTS, else the working directory). Accepts the StreamDiffusionV2 folder, its ckpts/ folder,
 * the checkpoint folder or model.pt itself. Writes the found file, or the path that
 * was expected, into `path`. Returns 0 when found, HERU_ENOENT otherwise.
 */
int wan_shell_find_weights(const char *root, const char *model, char *path, size_t pathlen);

/* The backend create of both plugins (see the DESIGN comment in plugin_shell.c). */
void *wan_shell_create(const struct wan_shell_spec *spec, const struct heru_host *host,
	const char *config_json, char *err, size_t errlen);

#endif /* HERU_WAN_PLUGIN_SHELL_H */
