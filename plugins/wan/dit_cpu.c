/* dit_cpu.c: the fp32 CPU DiT forward with KV cache (dit_cpu.h), built from ops_ref.
 *
 * Layouts: activations are [tokens, D] with the tokens of slot s at rows [s*n, (s+1)*n)
 * (n = frames * L, frame-major then y then x); the KV cache of layer l, slot s is
 * [kv_rows, heads*head_dim] (roped keys, plain values); the cross-attention cache of layer l,
 * prompt p is [text_len, D]. Where the cache rows go is decided by dit_kv. */
#include "dit_cpu.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit_stream.h"
#include "ops_ref.h"

struct dit_cpu {
	const struct wan_dit_model *m; /* borrowed */
	int max_slots, kv_rows, h, w, nctx, L;
	float *kcache, *vcache;   /* [layers][max_slots][kv_rows][D] */
	float *ck, *cv;           /* [layers][nctx][text_len][D] */
	float *ctx;               /* [nctx][text_len][text_dim] */
	int cross_ready;
};

static size_t mul_or_zero(size_t a, size_t b)
{
	return (a && b > SIZE_MAX / a) ? 0 : a * b;
}

struct dit_cpu *dit_cpu_new(const struct wan_dit_model *model, int max_slots, int kv_rows,
			    int h, int w, int nctx, char *err, size_t errlen)
{
	const struct wan_dit_config *cf = &model->cfg;
	if (h < 2 || w < 2 || h % 2 || w % 2 || h > 2048 || w > 2048) {
		snprintf(err, errlen, "latent size %dx%d must be even and 2..2048", h, w);
		return NULL;
	}
	if (max_slots < 1 || max_slots > 64 || kv_rows < 1 || (nctx != 1 && nctx != max_slots)) {
		snprintf(err, errlen, "bad engine shape: %d slots, %d cache rows, %d prompts",
			 max_slots, kv_rows, nctx);
		return NULL;
	}
	struct dit_cpu *c = calloc(1, sizeof(*c));
	if (!c)
		goto oom;
	c->m = model;
	c->max_slots = max_slots;
	c->kv_rows = kv_rows;
	c->h = h;
	c->w = w;
	c->nctx = nctx;
	c->L = (h / 2) * (w / 2);
	size_t D = cf->dim;
	size_t kvn = mul_or_zero(mul_or_zero(mul_or_zero(cf->num_layers, max_slots), kv_rows), D);
	size_t crn = mul_or_zero(mul_or_zero((size_t)cf->num_layers * nctx, cf->text_len), D);
	size_t ctn = mul_or_zero((size_t)nctx * cf->text_len, cf->text_dim);
	if (!kvn || !crn || !ctn)
		goto oom;
	c->kcache = calloc(kvn, sizeof(float));
	c->vcache = calloc(kvn, sizeof(float));
	c->ck = calloc(crn, sizeof(float));
	c->cv = calloc(crn, sizeof(float));
	c->ctx = calloc(ctn, sizeof(float));
	if (!c->kcache || !c->vcache || !c->ck || !c->cv || !c->ctx)
		goto oom;
	return c;
oom:
	snprintf(err, errlen, "out of memory for the DiT caches (%d slots x %d rows)", max_slots,
		 kv_rows);
	dit_cpu_free(c);
	return NULL;
}

void dit_cpu_free(struct dit_cpu *c)
{
	if (!c)
		return;
	free(c->kcache);
	free(c->vcache);
	free(c->ck);
	free(c->cv);
	free(c->ctx);
	free(c);
}

static size_t slot_elems(const struct dit_cpu *c)
{
	return (size_t)c->kv_rows * c->m->cfg.dim;
}

static float *cache_at(const struct dit_cpu *c, float *base, int layer, int slot)
{
	return base + ((size_t)layer * c->max_slots + slot) * slot_elems(c);
}

const float *dit_cpu_cache_k(const struct dit_cpu *c, int layer, int slot)
{
	return cache_at(c, c->kcache, layer, slot);
}

void dit_cpu_set_context(struct dit_cpu *c, const float *ctx)
{
	const struct wan_dit_config *cf = &c->m->cfg;
	memcpy(c->ctx, ctx, sizeof(float) * c->nctx * cf->text_len * cf->text_dim);
	c->cross_ready = 0;
}

void dit_cpu_reset(struct dit_cpu *c)
{
	size_t n = (size_t)c->m->cfg.num_layers * c->max_slots * slot_elems(c);
	memset(c->kcache, 0, n * sizeof(float));
	memset(c->vcache, 0, n * sizeof(float));
	c->cross_ready = 0;
}

int dit_cpu_expand(struct dit_cpu *c, int slots, char *err, size_t errlen)
{
	if (slots < 1 || slots > c->max_slots) {
		snprintf(err, errlen, "cannot expand the DiT cache to %d slots (max %d)", slots,
			 c->max_slots);
		return -1;
	}
	size_t se = slot_elems(c);
	for (int l = 0; l < c->m->cfg.num_layers; l++)
		for (int s = 1; s < slots; s++) {
			memcpy(cache_at(c, c->kcache, l, s), cache_at(c, c->kcache, l, 0),
			       se * sizeof(float));
			memcpy(cache_at(c, c->vcache, l, s), cache_at(c, c->vcache, l, 0),
			       se * sizeof(float));
		}
	return 0;
}

/* text_embedding then every layer's cross-attention K (RMSNorm'd) and V (spec §2.4, §4.9). */
static int fill_cross_cache(struct dit_cpu *c, char *err, size_t errlen)
{
	const struct wan_dit_model *m = c->m;
	const struct wan_dit_config *cf = &m->cfg;
	int T = cf->text_len, D = cf->dim;
	float *a = malloc(sizeof(float) * T * D), *b = malloc(sizeof(float) * T * D);
	if (!a || !b) {
		free(a);
		free(b);
		snprintf(err, errlen, "out of memory for the text embedding");
		return -1;
	}
	for (int p = 0; p < c->nctx; p++) {
		ops_linear(a, c->ctx + (size_t)p * T * cf->text_dim, m->text0_w, m->text0_b, T,
			   cf->text_dim, D);
		ops_gelu_tanh(a, (size_t)T * D);
		ops_linear(b, a, m->text2_w, m->text2_b, T, D, D);
		for (int l = 0; l < cf->num_layers; l++) {
			const struct wan_dit_block *bl = &m->blocks[l];
			float *k = c->ck + ((size_t)l * c->nctx + p) * T * D;
			float *v = c->cv + ((size_t)l * c->nctx + p) * T * D;
			ops_linear(k, b, bl->ca_k_w, bl->ca_k_b, T, D, D);
			ops_rms_norm(k, k, bl->ca_norm_k, T, D, (float)cf->eps);
			ops_linear(v, b, bl->ca_v_w, bl->ca_v_b, T, D, D);
		}
	}
	free(a);
	free(b);
	c->cross_ready = 1;
	return 0;
}

/* Scratch of one forward. */
struct fwd_buf {
	float *x, *h, *q, *k, *v, *att, *y, *ffn; /* [N, D] ([N, ffn] for ffn) */
	float *emb, *e, *e0, *mod;                /* [SF, freq], [SF, D], [SF, 6D], [SF, 6D] */
	float *out;                               /* [N, out*4] */
};

static void fwd_buf_free(struct fwd_buf *b)
{
	free(b->x);
	free(b->h);
	free(b->q);
	free(b->k);
	free(b->v);
	free(b->att);
	free(b->y);
	free(b->ffn);
	free(b->emb);
	free(b->e);
	free(b->e0);
	free(b->mod);
	free(b->out);
}

static int fwd_buf_alloc(struct fwd_buf *b, const struct wan_dit_config *cf, size_t N, size_t SF)
{
	size_t D = cf->dim;
	memset(b, 0, sizeof(*b));
	b->x = malloc(sizeof(float) * N * D);
	b->h = malloc(sizeof(float) * N * D);
	b->q = malloc(sizeof(float) * N * D);
	b->k = malloc(sizeof(float) * N * D);
	b->v = malloc(sizeof(float) * N * D);
	b->att = malloc(sizeof(float) * N * D);
	b->y = malloc(sizeof(float) * N * D);
	b->ffn = malloc(sizeof(float) * N * cf->ffn_dim);
	b->emb = malloc(sizeof(float) * SF * cf->freq_dim);
	b->e = malloc(sizeof(float) * SF * D);
	b->e0 = malloc(sizeof(float) * SF * 6 * D);
	b->mod = malloc(sizeof(float) * SF * 6 * D);
	b->out = malloc(sizeof(float) * N * cf->out_dim * 4);
	return (b->x && b->h && b->q && b->k && b->v && b->att && b->y && b->ffn && b->emb &&
		b->e && b->e0 && b->mod && b->out) ? 0 : -1;
}

/* Adaptive-sink statistic for one slot (spec §4.7 step 1): a[j] for each sink frame. */
static void sink_stats(const struct dit_cpu *c, const float *kc, const float *vc,
		       const float *knew, const float *vnew, int sink_frames, double *a)
{
	int D = c->m->cfg.dim, L = c->L;
	float *ms = malloc(sizeof(float) * 2 * D);
	if (!ms) { /* treat as "similar": no refresh */
		for (int j = 0; j < sink_frames; j++)
			a[j] = 1.0;
		return;
	}
	float *mn = ms + D;
	for (int j = 0; j < sink_frames; j++) {
		ops_row_mean(ms, kc + (size_t)j * L * D, L, D, D);
		ops_row_mean(mn, knew, L, D, D);
		double ck = ops_cosine(ms, mn, D);
		ops_row_mean(ms, vc + (size_t)j * L * D, L, D, D);
		ops_row_mean(mn, vnew, L, D, D);
		double cv = ops_cosine(ms, mn, D);
		a[j] = (ck + cv) / 2.0;
	}
	free(ms);
}

/* One forward's shapes and buffers, shared by the per-layer steps below. */
struct fwd {
	struct dit_cpu *c;
	struct dit_kv *kv;
	const int64_t *c_start;
	int nslots, frames, n; /* n = tokens per slot */
	size_t N, SF;          /* tokens, slot-frames */
	struct fwd_buf b;
};

/* §2.6: self-attention of layer L over every slot's cache; the gated residual is the
 * caller's. Leaves the concatenated heads in b.att. 0, or -1 with ERR. */
static int self_attention(struct fwd *fw, int l, char *err, size_t errlen)
{
	struct dit_cpu *c = fw->c;
	const struct wan_dit_config *cf = &c->m->cfg;
	const struct wan_dit_block *bl = &c->m->blocks[l];
	const int D = cf->dim, H = cf->num_heads, HD = cf->head_dim, n = fw->n;
	const float eps = (float)cf->eps;
	struct fwd_buf *b = &fw->b;

	ops_linear(b->q, b->h, bl->sa_q_w, bl->sa_q_b, (int)fw->N, D, D);
	ops_rms_norm(b->q, b->q, bl->sa_norm_q, (int)fw->N, D, eps);
	ops_linear(b->k, b->h, bl->sa_k_w, bl->sa_k_b, (int)fw->N, D, D);
	ops_rms_norm(b->k, b->k, bl->sa_norm_k, (int)fw->N, D, eps);
	ops_linear(b->v, b->h, bl->sa_v_w, bl->sa_v_b, (int)fw->N, D, D);
	for (int s = 0; s < fw->nslots; s++) {
		int sf = (int)(fw->c_start[s] / c->L);
		size_t off = (size_t)s * n * D;
		ops_rope(b->q + off, fw->frames, c->h / 2, c->w / 2, H, HD, sf);
		ops_rope(b->k + off, fw->frames, c->h / 2, c->w / 2, H, HD, sf);
		float *kc = cache_at(c, c->kcache, l, s), *vc = cache_at(c, c->vcache, l, s);
		/* adaptive sink: the statistic is computed here, the decision by dit_kv */
		int pick = -1;
		if (dit_kv_sink_check_needed(fw->kv, n)) {
			double a[64];
			int nsink = dit_kv_config(fw->kv)->sink_frames;
			sink_stats(c, kc, vc, b->k + off, b->v + off, nsink > 64 ? 64 : nsink, a);
			pick = dit_kv_sink_pick(fw->kv, a);
		}
		struct dit_kv_step step;
		if (dit_kv_advance(fw->kv, l, s, fw->c_start[s], n, pick, &step, err, errlen))
			return -1;
		/* the cache holds roped keys and plain values */
		memcpy(kc + (size_t)step.write_row * D, b->k + off, sizeof(float) * n * D);
		memcpy(vc + (size_t)step.write_row * D, b->v + off, sizeof(float) * n * D);
		ops_attention(b->att + off, b->q + off, kc, vc, n, step.attn_len, H, HD,
			      1.0f / sqrtf((float)HD));
	}
	return 0;
}

/* §2.7: cross-attention of layer L on b.h = LN3(x) against the cached text K/V. */
static void cross_attention(struct fwd *fw, int l)
{
	struct dit_cpu *c = fw->c;
	const struct wan_dit_config *cf = &c->m->cfg;
	const struct wan_dit_block *bl = &c->m->blocks[l];
	const int D = cf->dim, H = cf->num_heads, HD = cf->head_dim;
	struct fwd_buf *b = &fw->b;

	ops_linear(b->q, b->h, bl->ca_q_w, bl->ca_q_b, (int)fw->N, D, D);
	ops_rms_norm(b->q, b->q, bl->ca_norm_q, (int)fw->N, D, (float)cf->eps);
	for (int s = 0; s < fw->nslots; s++) {
		int p = c->nctx == 1 ? 0 : s;
		size_t co = ((size_t)l * c->nctx + p) * cf->text_len * D;
		size_t off = (size_t)s * fw->n * D;
		ops_attention(b->att + off, b->q + off, c->ck + co, c->cv + co, fw->n, cf->text_len,
			      H, HD, 1.0f / sqrtf((float)HD));
	}
}

/* §2.5: transformer block L on b.x, in place. 0, or -1 with ERR. */
static int block(struct fwd *fw, int l, char *err, size_t errlen)
{
	const struct wan_dit_config *cf = &fw->c->m->cfg;
	const struct wan_dit_block *bl = &fw->c->m->blocks[l];
	const int D = cf->dim, L = fw->c->L, SF = (int)fw->SF, N = (int)fw->N;
	const float eps = (float)cf->eps;
	struct fwd_buf *b = &fw->b;

	/* (sh1, sc1, g1, sh2, sc2, g2) per slot-frame = modulation + e0 */
	for (int f = 0; f < SF; f++)
		for (int j = 0; j < 6 * D; j++)
			b->mod[(size_t)f * 6 * D + j] = bl->modulation[j] + b->e0[(size_t)f * 6 * D + j];
	const size_t ms = 6 * (size_t)D;
	const float *sh1 = b->mod, *sc1 = b->mod + D, *g1 = b->mod + 2 * D;
	const float *sh2 = b->mod + 3 * D, *sc2 = b->mod + 4 * D, *g2 = b->mod + 5 * D;

	ops_modulate(b->h, b->x, sh1, sc1, ms, SF, L, D, eps);
	if (self_attention(fw, l, err, errlen))
		return -1;
	ops_linear(b->y, b->att, bl->sa_o_w, bl->sa_o_b, N, D, D);
	ops_gated_add(b->x, b->y, g1, ms, SF, L, D);

	ops_layer_norm(b->h, b->x, bl->norm3_w, bl->norm3_b, N, D, eps);
	cross_attention(fw, l);
	ops_linear(b->y, b->att, bl->ca_o_w, bl->ca_o_b, N, D, D);
	ops_add(b->x, b->y, (size_t)N * D); /* no gate on cross-attention */

	ops_modulate(b->h, b->x, sh2, sc2, ms, SF, L, D, eps);
	ops_linear(b->ffn, b->h, bl->ffn0_w, bl->ffn0_b, N, D, cf->ffn_dim);
	ops_gelu_tanh(b->ffn, (size_t)N * cf->ffn_dim);
	ops_linear(b->y, b->ffn, bl->ffn2_w, bl->ffn2_b, N, cf->ffn_dim, D);
	ops_gated_add(b->x, b->y, g2, ms, SF, L, D);
	return 0;
}

int dit_cpu_forward(struct dit_cpu *c, struct dit_kv *kv, int nslots, int frames,
		    const float *xin, const int64_t *t, const int64_t *c_start, float *flow,
		    char *err, size_t errlen)
{
	const struct wan_dit_model *m = c->m;
	const struct wan_dit_config *cf = &m->cfg;
	const int D = cf->dim, L = c->L;
	const float eps = (float)cf->eps;
	const size_t in_elems = (size_t)cf->in_dim * frames * c->h * c->w;
	const size_t out_elems = (size_t)cf->out_dim * frames * c->h * c->w;
	struct fwd fw = { .c = c, .kv = kv, .c_start = c_start, .nslots = nslots,
			  .frames = frames, .n = frames * L,
			  .N = (size_t)nslots * frames * L, .SF = (size_t)nslots * frames };
	struct fwd_buf *b = &fw.b;
	const int n = fw.n, N = (int)fw.N, SF = (int)fw.SF;
	int rc = -1;

	if (nslots < 1 || nslots > c->max_slots || nslots > dit_kv_slots(kv) || frames < 1 ||
	    n > c->kv_rows || dit_kv_rows(kv) != c->kv_rows ||
	    dit_kv_config(kv)->tokens_per_frame != L || dit_kv_config(kv)->layers != cf->num_layers) {
		snprintf(err, errlen, "DiT forward: %d slots of %d frames do not fit the engine",
			 nslots, frames);
		return -1;
	}
	if (fw.N > (1u << 24) || fw.N * (size_t)(cf->ffn_dim > D ? cf->ffn_dim : D) > (size_t)INT_MAX) {
		snprintf(err, errlen, "DiT forward: %zu tokens is more than the reference handles",
			 fw.N);
		return -1;
	}
	for (int s = 0; s < nslots; s++) {
		if (c_start[s] < 0 || c_start[s] % L || c_start[s] / L + frames > 1024) {
			snprintf(err, errlen, "DiT forward: slot %d start %lld is not a frame "
				 "position below 1024", s, (long long)c_start[s]);
			return -1;
		}
	}
	if (fwd_buf_alloc(b, cf, fw.N, fw.SF)) {
		snprintf(err, errlen, "out of memory for the DiT activations (%zu tokens)", fw.N);
		goto done;
	}
	if (!c->cross_ready && fill_cross_cache(c, err, errlen))
		goto done;

	/* §2.2 patch embedding */
	for (int s = 0; s < nslots; s++)
		ops_patch_embed(b->x + (size_t)s * n * D, xin + s * in_elems, m->patch_w, m->patch_b,
				cf->in_dim, frames, c->h, c->w, D);
	/* §2.3 time embedding: e = time_embedding(sin(t)), e0 = time_projection(e) */
	ops_sin_embedding(b->emb, t, SF, cf->freq_dim);
	ops_linear(b->h, b->emb, m->time0_w, m->time0_b, SF, cf->freq_dim, D);
	ops_silu(b->h, (size_t)SF * D);
	ops_linear(b->e, b->h, m->time2_w, m->time2_b, SF, D, D);
	memcpy(b->h, b->e, sizeof(float) * SF * D);
	ops_silu(b->h, (size_t)SF * D);
	ops_linear(b->e0, b->h, m->tproj_w, m->tproj_b, SF, D, 6 * D);

	for (int l = 0; l < cf->num_layers; l++)
		if (block(&fw, l, err, errlen))
			goto done;

	/* §2.8 head: (sh, sc) = head.modulation + e (not e0) */
	for (int f = 0; f < SF; f++)
		for (int j = 0; j < 2 * D; j++)
			b->mod[(size_t)f * 2 * D + j] = m->head_mod[j] + b->e[(size_t)f * D + j % D];
	ops_modulate(b->h, b->x, b->mod, b->mod + D, 2 * (size_t)D, SF, L, D, eps);
	ops_linear(b->out, b->h, m->head_w, m->head_b, N, D, cf->out_dim * 4);
	for (int s = 0; s < nslots; s++)
		ops_unpatchify(flow + s * out_elems, b->out + (size_t)s * n * cf->out_dim * 4,
			       cf->out_dim, frames, c->h, c->w);
	rc = 0;
done:
	fwd_buf_free(b);
	return rc;
}

/* ---- the C reference as a dit_engine ---- */

static int eng_forward(void *impl, struct dit_kv *kv, int nslots, int frames, const float *x,
		       const int64_t *t, const int64_t *c_start, float *flow, char *err,
		       size_t errlen)
{
	return dit_cpu_forward(impl, kv, nslots, frames, x, t, c_start, flow, err, errlen);
}

static int eng_expand(void *impl, int slots, char *err, size_t errlen)
{
	return dit_cpu_expand(impl, slots, err, errlen);
}

static void eng_reset(void *impl)
{
	dit_cpu_reset(impl);
}

static int eng_set_context(void *impl, const float *ctx, char *err, size_t errlen)
{
	dit_cpu_set_context(impl, ctx);
	return 0;
}

static void eng_destroy(void *impl)
{
	dit_cpu_free(impl);
}

int dit_cpu_engine_open(const struct wan_dit_model *model, const struct dit_engine_params *p,
			struct dit_engine *out, char *err, size_t errlen)
{
	struct dit_cpu *c = dit_cpu_new(model, p->max_slots, p->kv_rows, p->h, p->w, p->nctx, err,
					errlen);
	if (!c)
		return -1;
	*out = (struct dit_engine){ .impl = c, .forward = eng_forward, .expand = eng_expand,
				    .reset = eng_reset, .set_context = eng_set_context,
				    .destroy = eng_destroy };
	return 0;
}
