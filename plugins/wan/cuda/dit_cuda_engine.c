/* dit_cuda_engine.c: the CUDA DiT as a dit_engine (dit_stream.h), the `--device cuda` of
 * heru-wan dit-forward and stream. Linked into heru-wan only (it needs libwan's model, KV
 * bookkeeping and reference ops as well as libwancuda).
 *
 * Per call the engine asks dit_kv where each slot writes. Without a pending adaptive-sink
 * decision every layer's bookkeeping is the same (dit_kv_advance_layers), so the whole call
 * is one dit_cuda_forward: graph-captured when the slots attend equally many rows. When the
 * adaptive sink needs its statistic (dit_kv_sink_check_needed), the forward runs eagerly and
 * stops once per layer: the device computes the token means of the new K/V and of the sink
 * frames, the host turns them into the cosine statistic exactly as the C reference does
 * (ops_cosine), and dit_kv decides the row. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit_kv.h"
#include "dit_model.h"
#include "dit_stream.h"
#include "ops_ref.h"
#include "plugins/wan/cuda/dit_cuda.h"

struct cuda_eng {
	struct dit_cuda *m;     /* new */
	int L, c, h, w, max_slots, nctx;
	float *ctx;             /* new: host copy of the prompts [nctx, text_len, text_dim] */
	int ctx_pending;
	int text_len, text_dim;
};

struct upload_ctx {
	struct dit_cuda *m;
	char *err;
	size_t errlen;
};

static int upload_one(void *vctx, const char *name, const float *data, size_t count)
{
	struct upload_ctx *u = vctx;

	return dit_cuda_set_tensor(u->m, name, data, count, u->err, u->errlen);
}

/* The adaptive-sink callback of dit_cuda_forward_hooked. */
struct hook_ctx {
	struct dit_kv *kv;
	const int64_t *c_start;
	int n;
};

static int kv_hook(void *vctx, int layer, int slot, const float *means, int nsink, int d,
		   int *write_row, int *attn_len, char *err, size_t errlen)
{
	struct hook_ctx *h = vctx;
	double a[64];
	int pick = -1;
	struct dit_kv_step step;

	if (nsink > 64)
		nsink = 64;
	for (int j = 0; j < nsink; j++) {
		double ck = ops_cosine(means + (size_t)j * d, means + (size_t)nsink * d, d);
		double cv = ops_cosine(means + (size_t)(nsink + 1 + j) * d,
				       means + (size_t)(2 * nsink + 1) * d, d);

		a[j] = (ck + cv) / 2.0;
	}
	if (dit_kv_sink_check_needed(h->kv, h->n))
		pick = dit_kv_sink_pick(h->kv, a);
	if (dit_kv_advance(h->kv, layer, slot, h->c_start[slot], h->n, pick, &step, err, errlen))
		return -1;
	*write_row = step.write_row;
	*attn_len = step.attn_len;
	return 0;
}

static int eng_forward(void *impl, struct dit_kv *kv, int nslots, int frames, const float *x,
		       const int64_t *t, const int64_t *c_start, float *flow, char *err,
		       size_t errlen)
{
	struct cuda_eng *e = impl;
	struct dit_cuda_call c;
	int n = frames * e->L;

	if (nslots < 1 || nslots > e->max_slots || nslots > dit_kv_slots(kv) || frames < 1 ||
	    frames > DIT_CUDA_MAX_FRAMES) {
		snprintf(err, errlen, "CUDA DiT: %d slots of %d frames do not fit the engine (%d slots, %d frames)",
			 nslots, frames, e->max_slots, DIT_CUDA_MAX_FRAMES);
		return -1;
	}
	if (e->ctx_pending) {
		if (dit_cuda_set_contexts(e->m, e->ctx, e->nctx, err, errlen))
			return -1;
		e->ctx_pending = 0;
	}
	memset(&c, 0, sizeof(c));
	c.slots = nslots;
	c.frames = frames;
	for (int b = 0; b < nslots; b++) {
		if (c_start[b] < 0 || c_start[b] % e->L) {
			snprintf(err, errlen, "CUDA DiT: slot %d start %lld is not a frame position", b,
				 (long long)c_start[b]);
			return -1;
		}
		c.start_frame[b] = (int)(c_start[b] / e->L);
		for (int f = 0; f < frames; f++)
			c.t[b][f] = (int)t[b * frames + f];
	}
	if (dit_kv_sink_check_needed(kv, n)) {
		struct hook_ctx h = {.kv = kv, .c_start = c_start, .n = n};

		return dit_cuda_forward_hooked(e->m, &c, dit_kv_config(kv)->sink_frames, kv_hook, &h, x,
					       flow, err, errlen);
	}
	for (int b = 0; b < nslots; b++) {
		struct dit_kv_step *steps = calloc((size_t)dit_kv_config(kv)->layers, sizeof(*steps));
		int rc;

		if (!steps) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		rc = dit_kv_advance_layers(kv, b, c_start[b], n, steps, err, errlen);
		c.write_row[b] = steps[0].write_row;
		c.kv_len[b] = steps[0].attn_len;
		free(steps);
		if (rc)
			return -1;
	}
	return dit_cuda_forward(e->m, &c, x, NULL, flow, err, errlen);
}

static int eng_expand(void *impl, int slots, char *err, size_t errlen)
{
	struct cuda_eng *e = impl;

	for (int s = 1; s < slots; s++)
		if (dit_cuda_copy_slot(e->m, s, 0, dit_cuda_kv_rows(e->m), err, errlen))
			return -1;
	return dit_cuda_sync(e->m, err, errlen);
}

static void eng_reset(void *impl)
{
	struct cuda_eng *e = impl;
	char err[256];

	dit_cuda_clear_caches(e->m, err, sizeof(err));
	e->ctx_pending = 1;
}

static int eng_set_context(void *impl, const float *ctx, char *err, size_t errlen)
{
	struct cuda_eng *e = impl;

	memcpy(e->ctx, ctx, sizeof(float) * (size_t)e->nctx * e->text_len * e->text_dim);
	e->ctx_pending = 1;
	return 0;
}

static void eng_destroy(void *impl)
{
	struct cuda_eng *e = impl;

	if (!e)
		return;
	dit_cuda_free(e->m);
	free(e->ctx);
	free(e);
}

int dit_cuda_engine_open(const struct wan_dit_model *model, const struct dit_engine_params *p,
			 struct dit_engine *out, char *err, size_t errlen)
{
	const struct wan_dit_config *cf = &model->cfg;
	struct dit_cuda_dims dims = {
		.dim = cf->dim, .ffn_dim = cf->ffn_dim, .num_heads = cf->num_heads,
		.num_layers = cf->num_layers, .text_len = cf->text_len, .text_dim = cf->text_dim,
		.freq_dim = cf->freq_dim, .eps = cf->eps,
	};
	struct dit_cuda_plan plan;
	struct cuda_eng *e;
	struct upload_ctx u;
	int L = (p->h / 2) * (p->w / 2), maxf;

	if (cf->in_dim != 16 || cf->out_dim != 16) {
		snprintf(err, errlen, "the CUDA DiT needs in_dim = out_dim = 16 (got %d, %d)", cf->in_dim, cf->out_dim);
		return -1;
	}
	if (L < 1 || p->kv_rows % L || p->max_slots < 1 || p->max_slots > DIT_CUDA_MAX_SLOTS ||
	    (p->nctx != 1 && p->nctx != p->max_slots)) {
		snprintf(err, errlen, "the CUDA DiT cannot be planned for %d slots, %d cache rows, latent %dx%d, %d prompts",
			 p->max_slots, p->kv_rows, p->h, p->w, p->nctx);
		return -1;
	}
	/* the largest call: the first chunk (2 frames) or every slot of a stream call, or a
	 * dit-forward over the whole cache (kv_rows / L frames per slot) */
	maxf = p->kv_rows / L;
	if (maxf > DIT_CUDA_MAX_FRAMES)
		maxf = DIT_CUDA_MAX_FRAMES;
	plan = (struct dit_cuda_plan){.lat_h = p->h, .lat_w = p->w, .slots = p->max_slots,
				      .kv_frames = p->kv_rows / L, .contexts = p->nctx,
				      .max_frames = p->max_slots * (maxf > 2 ? maxf : 2)};
	e = calloc(1, sizeof(*e));
	if (!e) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	e->L = L;
	e->h = p->h;
	e->w = p->w;
	e->max_slots = p->max_slots;
	e->nctx = p->nctx;
	e->text_len = cf->text_len;
	e->text_dim = cf->text_dim;
	e->ctx = calloc((size_t)p->nctx * cf->text_len * cf->text_dim, sizeof(float));
	e->m = e->ctx ? dit_cuda_new(&dims, &plan, err, errlen) : NULL;
	if (!e->m) {
		if (!e->ctx)
			snprintf(err, errlen, "out of memory");
		eng_destroy(e);
		return -1;
	}
	u = (struct upload_ctx){.m = e->m, .err = err, .errlen = errlen};
	if (wan_dit_model_foreach(model, upload_one, &u)) {
		eng_destroy(e);
		return -1;
	}
	e->ctx_pending = 1;
	*out = (struct dit_engine){e, eng_forward, eng_expand, eng_reset, eng_set_context, eng_destroy};
	return 0;
}
