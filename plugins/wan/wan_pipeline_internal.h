/* wan_pipeline_internal.h: what the wan_pipeline*.c files share (not a public API). */
#ifndef HERU_WAN_PIPELINE_INTERNAL_H
#define HERU_WAN_PIPELINE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dit_stream.h"
#include "wan_pipeline.h"

#define WAN_PATH_MAX 4096

/* Where every file of a weights folder is, after heru-model.json (wan_pipeline_files.c). */
struct wan_pipeline_files {
	char dit[WAN_PATH_MAX];
	char dit_config[WAN_PATH_MAX];   /* "1.3b", "14b" or a config.json path */
	char vae[WAN_PATH_MAX];
	char vae_config[WAN_PATH_MAX];   /* "" = the real Wan2.1 / taew2_1 architecture */
	char taehv[WAN_PATH_MAX];
	char t5[WAN_PATH_MAX];
	char t5_config[WAN_PATH_MAX];    /* "" = read off the checkpoint's shapes */
	char tokenizer[WAN_PATH_MAX];
	int width, height;               /* model resolution (pixels) */
	int kv_frames, sink_frames;
	double sink_threshold;
};

/* Fills OUT for ROOT and MODEL ("wan-1.3b" / "wan-14b"), reading ROOT/heru-model.json when
 * present, and checks that every file the pipeline will open exists (TAEHV's only when
 * TAEHV is set). 0, or -1 with one sentence naming the missing path and how to get it. */
int wan_pipeline_files_resolve(const char *root, const char *model, bool taehv,
			       struct wan_pipeline_files *out, char *err, size_t errlen);

/* The CUDA engines live in their own module, wan_cuda_engine.so (wan_pipeline_cuda.c, built
 * only with CUDA), which the plugin dlopens when a pipeline asks for CUDA: the plugins themselves
 * link no CUDA library, so they load (and explain themselves) on any machine, and herud does
 * not map the CUDA libraries unless a GPU instance is built. The module exports one symbol,
 * WAN_CUDA_ENGINE_SYMBOL, a struct wan_cuda_api. */
struct vae_model;
struct taehv_model;
struct t5_weights;
struct wan_dit_model;
struct wan_pipe_cuda;

#define WAN_CUDA_ENGINE_SYMBOL "wan_cuda_engine"
#define WAN_CUDA_ENGINE_FILE "wan_cuda_engine.so"

struct wan_cuda_api {
	size_t struct_size;
	/* Uploads the VAE encoder (and decoder unless TAE is given), TAEHV, umT5 for frames of
	 * WIDTH x HEIGHT. new, or NULL with ERR. */
	struct wan_pipe_cuda *(*create)(const struct vae_model *vae, const struct taehv_model *tae,
					const struct t5_weights *t5, int width, int height,
					char *err, size_t errlen);
	void (*destroy)(struct wan_pipe_cuda *c);
	int (*reset)(struct wan_pipe_cuda *c, char *err, size_t errlen);
	/* as vae_encode / vae_decode (or taehv_decode): host f32 in and out; 0 or -1 */
	int (*encode)(struct wan_pipe_cuda *c, const float *frames, int t, float *latents,
		      char *err, size_t errlen);
	int (*decode)(struct wan_pipe_cuda *c, const float *latents, int f, float *frames,
		      char *err, size_t errlen);
	/* ids, mask [512] -> context [512, dim] */
	int (*text)(struct wan_pipe_cuda *c, const int64_t *ids, const int64_t *mask, float *out,
		    char *err, size_t errlen);
	/* dit_cuda_engine_open (plugins/wan/cuda/dit_cuda_engine.c) */
	int (*dit_engine)(const struct wan_dit_model *m, const struct dit_engine_params *p,
			  struct dit_engine *out, char *err, size_t errlen);
};

#endif
