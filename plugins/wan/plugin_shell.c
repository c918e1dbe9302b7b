/*
 * plugin_shell.c: the create sequence of the Wan backend plugins.
 *
 * DESIGN
 *
 * wan13b_cuda.so and wan14b_dist.so must load on every machine (so herud can list
 * them and explain why they cannot run), so they link no CUDA library. create runs
 * on the instance's worker thread (the plugins are THREAD_AFFINE) and goes:
 *
 *   1. report "core-imported"; read model_variant, inference_topology,
 *      distributed_world_size and weights_path from the config;
 *   2. probe the GPU: dlopen("libcuda.so.1"), cuInit(0), cuDeviceGetCount. No GPU:
 *      fail with "CUDA is required for wan-1.3b (no NVIDIA GPU found)". The driver
 *      library stays loaded (never unload CUDA);
 *   3. find ckpts/wan_causal_dmd_v2v[_14b]/model.pt; missing: fail with "weights not
 *      found at PATH: set weights_path or ...";
 *   4. build the engine instance (wan_pipeline_backend.c), which opens every file of the
 *      weights folder and reports core-imported, then core-warmup (or the
 *      core-distributed-* modes). HERU_WAN_DEVICE=cpu skips the GPU probe and runs the
 *      fp32 C reference (a developer/test knob, practical only for tiny models).
 *
 * Every failure is one sentence in `err`; the host keeps the session on its previous
 * backend and shows the sentence as runtime_status.error. host->is_cancelled is
 * polled between steps.
 */
#include "config.h"

#include "plugin_shell.h"
#include "wan_pipeline_backend.h"

#include <dlfcn.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef int (*cu_init_fn)(unsigned int flags);
typedef int (*cu_device_get_count_fn)(int *count);

int wan_shell_gpu_count(char *why, size_t whylen)
{
	cu_init_fn cu_init;
	cu_device_get_count_fn cu_count;
	void *lib;
	int count = 0, rc;

	/* Deliberately never dlclose()d: unloading the CUDA driver is unsafe. */
	lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		snprintf(why, whylen, "libcuda.so.1 not found");
		return 0;
	}
	cu_init = (cu_init_fn)(uintptr_t)dlsym(lib, "cuInit");
	cu_count = (cu_device_get_count_fn)(uintptr_t)dlsym(lib, "cuDeviceGetCount");
	if (!cu_init || !cu_count) {
		snprintf(why, whylen, "libcuda.so.1 lacks cuInit/cuDeviceGetCount");
		return 0;
	}
	rc = cu_init(0);
	if (rc != 0) {
		snprintf(why, whylen, "cuInit failed with CUDA error %d", rc);
		return 0;
	}
	rc = cu_count(&count);
	if (rc != 0 || count < 1) {
		snprintf(why, whylen, "cuDeviceGetCount found no device");
		return 0;
	}
	return count;
}

static bool is_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int wan_shell_find_weights(const char *root, const char *model, char *path, size_t pathlen)
{
	const char *sub = strcmp(model, "wan-14b") == 0 ? "wan_causal_dmd_v2v_14b"
							 : "wan_causal_dmd_v2v";
	char cand[4][4096], cwd[2048];
	size_t n = 0, i;

	if (!root || !*root) /* nothing configured: the working directory, spelled out */
		root = getcwd(cwd, sizeof(cwd)) ? cwd : ".";
	snprintf(cand[n++], sizeof(cand[0]), "%s/ckpts/%s/model.pt", root, sub);
	snprintf(cand[n++], sizeof(cand[0]), "%s/%s/model.pt", root, sub);
	snprintf(cand[n++], sizeof(cand[0]), "%s/model.pt", root);
	snprintf(cand[n++], sizeof(cand[0]), "%s", root);
	for (i = 0; i < n; i++) {
		if (is_file(cand[i])) {
			snprintf(path, pathlen, "%s", cand[i]);
			return 0;
		}
	}
	snprintf(path, pathlen, "%s", cand[0]);
	return HERU_ENOENT;
}

static void report(const struct heru_host *host, const char *mode, float progress)
{
	if (host && host->report)
		host->report(host, mode, progress);
}

static void log_info(const struct heru_host *host, const char *msg)
{
	if (host && host->log)
		host->log(host, HERU_LOG_INFO, msg);
}

static bool cancelled(const struct heru_host *host, char *err, size_t errlen)
{
	if (host && host->is_cancelled && host->is_cancelled(host)) {
		snprintf(err, errlen, "creation was cancelled");
		return true;
	}
	return false;
}

/* String field of the config, or NULL when absent or not a non-empty string. */
static const char *cfg_string(json_t *cfg, const char *key)
{
	json_t *v = json_object_get(cfg, key);
	return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : NULL;
}

void *wan_shell_create(const struct wan_shell_spec *spec, const struct heru_host *host,
	const char *config_json, char *err, size_t errlen)
{
	char why[256], path[4096], msg[4400];
	const char *model, *topology, *root;
	json_t *cfg = NULL;
	json_error_t jerr;
	json_int_t world = 1;
	int gpus;

	report(host, "core-imported", 0.0f);
	if (config_json) {
		cfg = json_loads(config_json, JSON_REJECT_DUPLICATES, &jerr);
		if (!cfg || !json_is_object(cfg)) {
			snprintf(err, errlen, "%s: the config is not a JSON object (%s)",
				spec->plugin_id, cfg ? "wrong type" : jerr.text);
			goto fail;
		}
	} else {
		cfg = json_object();
		if (!cfg) {
			snprintf(err, errlen, "%s: out of memory", spec->plugin_id);
			goto fail;
		}
	}
	model = cfg_string(cfg, "model_variant");
	if (!model)
		model = spec->default_model;
	topology = cfg_string(cfg, "inference_topology");
	if (json_is_integer(json_object_get(cfg, "distributed_world_size")))
		world = json_integer_value(json_object_get(cfg, "distributed_world_size"));
	if (!spec->distributed || !topology || strcmp(topology, "distributed") != 0)
		world = 1;

	gpus = wan_backend_cpu_requested() ? 1 : wan_shell_gpu_count(why, sizeof(why));
	if (gpus < 1) {
		snprintf(err, errlen, "CUDA is required for %s (no NVIDIA GPU found)", model);
		snprintf(msg, sizeof(msg), "%s: GPU probe: %s", spec->plugin_id, why);
		log_info(host, msg);
		goto fail;
	}
	if (world > gpus) {
		snprintf(err, errlen, "%s with world size %lld needs %lld NVIDIA GPUs but %d %s found",
			model, (long long)world, (long long)world, gpus, gpus == 1 ? "was" : "were");
		goto fail;
	}
	if (cancelled(host, err, errlen))
		goto fail;
	report(host, NULL, 0.1f);

	root = cfg_string(cfg, "weights_path");
	if (!root)
		root = getenv("STREAMDIFFUSIONV2_PATH");
	if (!root || !*root)
		root = getenv("HERU_WEIGHTS");
	if (wan_shell_find_weights(root, model, path, sizeof(path)) != 0) {
		snprintf(err, errlen, "weights not found at %s: set weights_path or "
			"STREAMDIFFUSIONV2_PATH/HERU_WEIGHTS to the StreamDiffusionV2 checkpoint "
			"folder (ckpts/%s/model.pt)", path,
			strcmp(model, "wan-14b") == 0 ? "wan_causal_dmd_v2v_14b" : "wan_causal_dmd_v2v");
		goto fail;
	}
	snprintf(msg, sizeof(msg), "%s: %d GPU(s), weights at %s", spec->plugin_id, gpus, path);
	log_info(host, msg);
	if (cancelled(host, err, errlen))
		goto fail;
	if (world > 1) {
		snprintf(err, errlen, "%s over %lld GPUs (the ring pipeline) is not implemented yet: "
			"set distributed_world_size to 1", model, (long long)world);
		goto fail;
	}
	/* the engine: wan_pipeline_backend.c (reports core-imported, then core-warmup) */
	{
		void *inst = wan_backend_create(host, spec->plugin_id, spec->distributed, model,
			root && *root ? root : ".", config_json, err, errlen);
		json_decref(cfg);
		return inst;
	}
fail:
	json_decref(cfg);
	return NULL;
}
