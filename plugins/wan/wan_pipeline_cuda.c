/* wan_pipeline_cuda.c: wan_cuda_engine.so, the pipeline's CUDA engines (built only when
 * configure found CUDA; dlopened by the plugins, see wan_pipeline_internal.h): the Wan VAE (vae_cuda), TAEHV (taehv_cuda), umT5 (t5_cuda) and a
 * dit_engine over the CUDA DiT (dit_cuda), so dit_stream drives the GPU exactly as it drives
 * the C reference.
 *
 * The CUDA DiT executes one cache plan (write row, attended rows) per slot for all layers:
 * that is exact without the adaptive sink, whose per-layer decisions need a statistic read
 * back per layer. The pipeline therefore runs the CUDA DiT with sink_threshold -1 (upstream's
 * fast config does the same). UNTESTED on a GPU: this path was only built, never run. */
#include "wan_pipeline_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit_kv.h"
#include "dit_model.h"
#include "plugins/wan/cuda/dit_cuda.h"
#include "plugins/wan/cuda/t5_cuda.h"
#include "plugins/wan/cuda/vae_cuda.h"
#include "t5_model.h"
#include "wan_sched.h"

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

/* ---- the DiT engine ---- */

struct cuda_dit {
	struct dit_cuda *m;
	int L, kv_rows, layers;
	struct wan_sched sched;
	struct dit_kv_step *steps; /* [layers] */
};

static int upload(void *ctx, const char *name, const float *data, size_t count)
{
	char err[256];
	if (dit_cuda_set_tensor(ctx, name, data, count, err, sizeof(err))) {
		fprintf(stderr, "wan_pipeline_cuda: %s\n", err);
		return -1;
	}
	return 0;
}

static int eng_forward(void *impl, struct dit_kv *kv, int nslots, int frames, const float *x,
		       const int64_t *t, const int64_t *c_start, float *flow, char *err,
		       size_t errlen)
{
	struct cuda_dit *d = impl;
	struct dit_cuda_call c;
	int n = frames * d->L;

	if (nslots > DIT_CUDA_MAX_SLOTS || frames > DIT_CUDA_MAX_FRAMES) {
		snprintf(err, errlen, "the CUDA DiT takes at most %d slots of %d frames",
			 DIT_CUDA_MAX_SLOTS, DIT_CUDA_MAX_FRAMES);
		return -1;
	}
	if (dit_kv_sink_check_needed(kv, n)) {
		snprintf(err, errlen, "the CUDA DiT runs without the adaptive sink "
			 "(sink_threshold -1)");
		return -1;
	}
	memset(&c, 0, sizeof(c));
	c.slots = nslots;
	c.frames = frames;
	for (int b = 0; b < nslots; b++) {
		if (dit_kv_advance_layers(kv, b, c_start[b], n, d->steps, err, errlen))
			return -1;
		c.write_row[b] = d->steps[0].write_row;
		c.kv_len[b] = d->steps[0].attn_len;
		c.start_frame[b] = (int)(c_start[b] / d->L);
		for (int f = 0; f < frames; f++) {
			int64_t tt = t[(size_t)b * frames + f];
			c.t[b][f] = (int)tt;
			c.sigma[b][f] = (float)wan_sched_sigma(&d->sched, tt);
		}
	}
	return dit_cuda_forward(d->m, &c, x, NULL, flow, err, errlen);
}

static int eng_expand(void *impl, int slots, char *err, size_t errlen)
{
	struct cuda_dit *d = impl;
	for (int s = 1; s < slots; s++)
		if (dit_cuda_copy_slot(d->m, s, 0, d->kv_rows, err, errlen))
			return -1;
	return 0;
}

static void eng_reset(void *impl)
{
	/* Rows past each slot's attended length are never read, and every stream rewrites
	 * its rows before attending them: nothing to clear on the device. */
	(void)impl;
}

static int eng_set_context(void *impl, const float *ctx, char *err, size_t errlen)
{
	struct cuda_dit *d = impl;
	return dit_cuda_set_context(d->m, ctx, 0, err, errlen);
}

static void eng_destroy(void *impl)
{
	struct cuda_dit *d = impl;
	if (!d)
		return;
	dit_cuda_free(d->m);
	free(d->steps);
	free(d);
}

static int wan_pipe_cuda_dit_engine(const struct wan_dit_model *m, const struct dit_engine_params *p,
			     int kv_frames, struct dit_engine *out, char *err, size_t errlen)
{
	const struct wan_dit_config *cfg = &m->cfg;
	struct dit_cuda_dims dims = { .dim = cfg->dim, .ffn_dim = cfg->ffn_dim,
		.num_heads = cfg->num_heads, .num_layers = cfg->num_layers,
		.text_len = cfg->text_len, .text_dim = cfg->text_dim, .freq_dim = cfg->freq_dim,
		.eps = cfg->eps };
	struct dit_cuda_plan plan = { .lat_h = p->h, .lat_w = p->w, .slots = p->max_slots,
		.kv_frames = kv_frames };
	struct cuda_dit *d = calloc(1, sizeof(*d));

	if (!d) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	d->L = (p->h / 2) * (p->w / 2);
	d->kv_rows = p->kv_rows;
	d->layers = cfg->num_layers;
	wan_sched_init(&d->sched);
	d->steps = calloc((size_t)cfg->num_layers, sizeof(*d->steps));
	if (!d->steps) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	d->m = dit_cuda_new(&dims, &plan, err, errlen);
	if (!d->m)
		goto fail;
	if (wan_dit_model_foreach(m, upload, d->m)) {
		snprintf(err, errlen, "uploading the DiT weights to the GPU failed");
		goto fail;
	}
	*out = (struct dit_engine){ d, eng_forward, eng_expand, eng_reset, eng_set_context,
				    eng_destroy };
	return 0;
fail:
	eng_destroy(d);
	return -1;
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
