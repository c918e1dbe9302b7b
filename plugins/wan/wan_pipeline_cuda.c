/* wan_pipeline_cuda.c: wan_cuda_engine.so, the pipeline's CUDA engines (built only when
 * configure found CUDA; dlopened by the plugins, see wan_pipeline_internal.h): the Wan VAE (vae_cuda), TAEHV (taehv_cuda), umT5 (t5_cuda) and a
 * dit_engine over the CUDA DiT (dit_cuda_engine.c), so dit_stream drives the GPU exactly as it
 * drives the C reference. Tested on a GPU against the C reference by tests/gpu_wan_pipeline.c. */
#include "wan_pipeline_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit_model.h"
#include "plugins/wan/cuda/dit_cuda.h"
#include "plugins/wan/cuda/t5_cuda.h"
#include "plugins/wan/cuda/vae_cuda.h"
#include "t5_model.h"

extern const struct wan_cuda_api wan_cuda_engine;
static void wan_pipe_cuda_free(struct wan_pipe_cuda *c);

struct wan_pipe_cuda {
	struct vae_cuda *vae;   /* encoder, and decoder without TAEHV */
	struct taehv_cuda *tae; /* NULL with the Wan VAE decoder */
	struct t5_cuda *t5;
};

static struct wan_pipe_cuda *wan_pipe_cuda_new(const struct vae_model *vae, const struct taehv_model *tae,
					const struct t5_weights *t5, int width, int height,
					char *err, size_t errlen)
{
	struct wan_pipe_cuda *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->vae = vae_cuda_new(vae, VAE_LOAD_ENCODER | (tae ? 0 : VAE_LOAD_DECODER), height, width, 0,
			      err, errlen);
	if (!c->vae)
		goto fail;
	if (tae && !(c->tae = taehv_cuda_new(tae, 0, height / 8, width / 8, err, errlen)))
		goto fail;
	c->t5 = t5_cuda_new(t5, T5_TEXT_LEN, err, errlen);
	if (!c->t5)
		goto fail;
	return c;
fail:
	wan_pipe_cuda_free(c);
	return NULL;
}

static void wan_pipe_cuda_free(struct wan_pipe_cuda *c)
{
	if (!c)
		return;
	vae_cuda_free(c->vae);
	taehv_cuda_free(c->tae);
	t5_cuda_free(c->t5);
	free(c);
}

static int wan_pipe_cuda_reset(struct wan_pipe_cuda *c, char *err, size_t errlen)
{
	if (vae_cuda_reset(c->vae, err, errlen))
		return -1;
	return c->tae ? taehv_cuda_reset(c->tae, err, errlen) : 0;
}

static int wan_pipe_cuda_encode(struct wan_pipe_cuda *c, const float *frames, int t, float *latents,
			 char *err, size_t errlen)
{
	return vae_cuda_encode(c->vae, frames, t, latents, err, errlen);
}

static int wan_pipe_cuda_decode(struct wan_pipe_cuda *c, const float *latents, int f, float *frames,
			 char *err, size_t errlen)
{
	if (c->tae) /* first-call state on the device; counts as taehv_decode_count */
		return taehv_cuda_decode(c->tae, latents, f, frames, err, errlen);
	return vae_cuda_decode(c->vae, latents, f, frames, err, errlen);
}

static int wan_pipe_cuda_text(struct wan_pipe_cuda *c, const int64_t *ids, const int64_t *mask,
		       float *out, char *err, size_t errlen)
{
	return t5_cuda_encode(c->t5, ids, mask, T5_TEXT_LEN, out, err, errlen);
}

/* ---- the DiT engine: plugins/wan/cuda/dit_cuda_engine.c (adaptive sink included) ---- */

static int wan_pipe_cuda_dit_engine(const struct wan_dit_model *m, const struct dit_engine_params *p,
				    struct dit_engine *out, char *err, size_t errlen)
{
	return dit_cuda_engine_open(m, p, out, err, errlen);
}

__attribute__((visibility("default"))) const struct wan_cuda_api wan_cuda_engine = {
	.struct_size = sizeof(struct wan_cuda_api),
	.create = wan_pipe_cuda_new,
	.destroy = wan_pipe_cuda_free,
	.reset = wan_pipe_cuda_reset,
	.encode = wan_pipe_cuda_encode,
	.decode = wan_pipe_cuda_decode,
	.text = wan_pipe_cuda_text,
	.dit_engine = wan_pipe_cuda_dit_engine,
};
