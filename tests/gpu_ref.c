/* gpu_ref.c: see gpu_ref.h. Straightforward loops, fp32 (fp64 for RoPE angles and the
 * timestep embedding, as upstream). */
#include "tests/gpu_ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

float bf16_round(float v)
{
	uint32_t u;

	memcpy(&u, &v, 4);
	if ((u & 0x7f800000u) == 0x7f800000u)
		return v;
	u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
	memcpy(&v, &u, 4);
	return v;
}

void fill_uniform(float *p, size_t n, uint64_t *s, float amp)
{
	for (size_t i = 0; i < n; i++) {
		*s = *s * 6364136223846793005ull + 1442695040888963407ull;
		p[i] = amp * ((float)(*s >> 40) / 8388608.0f - 1.0f);
	}
}

double rel_l2(const float *a, const float *ref, size_t n)
{
	double num = 0, den = 0;

	for (size_t i = 0; i < n; i++) {
		double d = (double)a[i] - ref[i];

		num += d * d;
		den += (double)ref[i] * ref[i];
	}
	return den > 0 ? sqrt(num / den) : sqrt(num);
}

int any_nonfinite(const float *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(a[i]))
			return 1;
	return 0;
}

void ref_linear(const float *x, const float *w, const float *b, float *y, int m, int n, int k)
{
	for (int i = 0; i < m; i++) {
		const float *xr = x + (size_t)i * k;

		for (int j = 0; j < n; j++) {
			const float *wr = w + (size_t)j * k;
			float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
			int kk = 0;

			for (; kk + 4 <= k; kk += 4) {
				s0 += xr[kk] * wr[kk];
				s1 += xr[kk + 1] * wr[kk + 1];
				s2 += xr[kk + 2] * wr[kk + 2];
				s3 += xr[kk + 3] * wr[kk + 3];
			}
			for (; kk < k; kk++)
				s0 += xr[kk] * wr[kk];
			y[(size_t)i * n + j] = s0 + s1 + s2 + s3 + (b ? b[j] : 0.0f);
		}
	}
}

float ref_gelu_tanh(float v)
{
	return 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
}

static float silu_f(float v)
{
	return v / (1.0f + expf(-v));
}

void ref_attention(const float *q, const float *k, const float *v, float *o, int b, int h, int d,
		   int sq, int kv_rows, const int *kv_len, float scale)
{
	int D = h * d;
	float *s = malloc((size_t)kv_rows * sizeof(float));

	for (int bb = 0; bb < b; bb++)
		for (int hh = 0; hh < h; hh++)
			for (int i = 0; i < sq; i++) {
				const float *qr = q + ((size_t)bb * sq + i) * D + hh * d;
				float mx = -INFINITY, sum = 0;
				int n = kv_len[bb];

				for (int j = 0; j < n; j++) {
					const float *kr = k + ((size_t)bb * kv_rows + j) * D + hh * d;
					float acc = 0;

					for (int c = 0; c < d; c++)
						acc += qr[c] * kr[c];
					s[j] = acc * scale;
					if (s[j] > mx)
						mx = s[j];
				}
				for (int j = 0; j < n; j++) {
					s[j] = expf(s[j] - mx);
					sum += s[j];
				}
				for (int c = 0; c < d; c++) {
					float acc = 0;

					for (int j = 0; j < n; j++)
						acc += s[j] * v[((size_t)bb * kv_rows + j) * D + hh * d + c];
					o[((size_t)bb * sq + i) * D + hh * d + c] = acc / sum;
				}
			}
	free(s);
}

void ref_layernorm(const float *x, float *y, int t, int d, float eps)
{
	for (int i = 0; i < t; i++) {
		const float *r = x + (size_t)i * d;
		double m = 0, v = 0;

		for (int c = 0; c < d; c++)
			m += r[c];
		m /= d;
		for (int c = 0; c < d; c++)
			v += (r[c] - m) * (r[c] - m);
		v /= d;
		for (int c = 0; c < d; c++)
			y[(size_t)i * d + c] = (float)((r[c] - m) / sqrt(v + eps));
	}
}

static void rmsnorm(float *x, int t, int d, const float *g, float eps)
{
	for (int i = 0; i < t; i++) {
		float *r = x + (size_t)i * d;
		double s = 0;

		for (int c = 0; c < d; c++)
			s += (double)r[c] * r[c];
		s = 1.0 / sqrt(s / d + eps);
		for (int c = 0; c < d; c++)
			r[c] = (float)(r[c] * s) * g[c];
	}
}

/* ---- model ---- */

#define NPER 27
static const char *const blk_names[NPER] = {
	"modulation", "self_attn.q.weight", "self_attn.q.bias", "self_attn.k.weight",
	"self_attn.k.bias", "self_attn.v.weight", "self_attn.v.bias", "self_attn.o.weight",
	"self_attn.o.bias", "self_attn.norm_q.weight", "self_attn.norm_k.weight", "norm3.weight",
	"norm3.bias", "cross_attn.q.weight", "cross_attn.q.bias", "cross_attn.k.weight",
	"cross_attn.k.bias", "cross_attn.v.weight", "cross_attn.v.bias", "cross_attn.o.weight",
	"cross_attn.o.bias", "cross_attn.norm_q.weight", "cross_attn.norm_k.weight", "ffn.0.weight",
	"ffn.0.bias", "ffn.2.weight", "ffn.2.bias",
};
enum { B_MOD, B_QW, B_QB, B_KW, B_KB, B_VW, B_VB, B_OW, B_OB, B_GQ, B_GK, B_N3G, B_N3B, B_CQW,
       B_CQB, B_CKW, B_CKB, B_CVW, B_CVB, B_COW, B_COB, B_CGQ, B_CGK, B_F1W, B_F1B, B_F2W, B_F2B };
#define NGLOB 15
static const char *const glob_names[NGLOB] = {
	"patch_embedding.weight", "patch_embedding.bias", "text_embedding.0.weight",
	"text_embedding.0.bias", "text_embedding.2.weight", "text_embedding.2.bias",
	"time_embedding.0.weight", "time_embedding.0.bias", "time_embedding.2.weight",
	"time_embedding.2.bias", "time_projection.1.weight", "time_projection.1.bias",
	"head.modulation", "head.head.weight", "head.head.bias",
};
enum { G_PEW, G_PEB, G_T0W, G_T0B, G_T2W, G_T2B, G_E0W, G_E0B, G_E2W, G_E2B, G_TPW, G_TPB,
       G_HMOD, G_HW, G_HB };

struct ref_model {
	struct dit_cuda_dims d;
	struct dit_cuda_plan p;
	int l, kv_rows, hd;
	float *g[NGLOB];
	size_t gn[NGLOB];
	float ***b;       /* [layers][NPER] */
	size_t bn[NPER];
	char (*bname)[96];
	float **kc, **vc, **xk, **xv;
};

struct ref_model *ref_new(const struct dit_cuda_dims *d, const struct dit_cuda_plan *p, uint64_t seed)
{
	struct ref_model *r = calloc(1, sizeof(*r));
	size_t D = d->dim, F = d->ffn_dim;
	uint64_t st = seed;
	float sd = 1.0f / sqrtf((float)D);

	r->d = *d;
	r->p = *p;
	r->l = (p->lat_h / 2) * (p->lat_w / 2);
	r->kv_rows = p->kv_frames * r->l;
	r->hd = d->dim / d->num_heads;
	{
		size_t gn[NGLOB] = {D * 64, D, D * d->text_dim, D, D * D, D, D * 256, D, D * D, D,
				    6 * D * D, 6 * D, 2 * D, 64 * D, 64};
		float amp[NGLOB] = {0.125f, 0.02f, 1.0f / sqrtf((float)d->text_dim), 0.02f, sd, 0.02f,
				    1.0f / 16, 0.02f, sd, 0.02f, sd, 0.02f, 0.1f, sd, 0.02f};

		for (int i = 0; i < NGLOB; i++) {
			r->gn[i] = gn[i];
			r->g[i] = malloc(gn[i] * sizeof(float));
			fill_uniform(r->g[i], gn[i], &st, amp[i]);
		}
	}
	{
		size_t bn[NPER] = {6 * D, D * D, D, D * D, D, D * D, D, D * D, D, D, D, D, D, D * D, D,
				   D * D, D, D * D, D, D * D, D, D, D, F * D, F, D * F, D};

		memcpy(r->bn, bn, sizeof(bn));
	}
	r->b = calloc((size_t)d->num_layers, sizeof(*r->b));
	r->bname = calloc((size_t)d->num_layers * NPER, sizeof(*r->bname));
	r->kc = calloc((size_t)d->num_layers, sizeof(float *));
	r->vc = calloc((size_t)d->num_layers, sizeof(float *));
	r->xk = calloc((size_t)d->num_layers, sizeof(float *));
	r->xv = calloc((size_t)d->num_layers, sizeof(float *));
	for (int li = 0; li < d->num_layers; li++) {
		r->b[li] = calloc(NPER, sizeof(float *));
		for (int k = 0; k < NPER; k++) {
			int is_norm = k == B_GQ || k == B_GK || k == B_N3G || k == B_CGQ || k == B_CGK;
			int is_bias = strstr(blk_names[k], "bias") != NULL;
			float amp = k == B_MOD ? 0.1f : is_norm ? 0.1f : is_bias ? 0.02f :
				    k == B_F2W ? 1.0f / sqrtf((float)F) : sd;
			float *t = malloc(r->bn[k] * sizeof(float));

			fill_uniform(t, r->bn[k], &st, amp);
			if (is_norm)
				for (size_t i = 0; i < r->bn[k]; i++)
					t[i] += 1.0f;
			r->b[li][k] = t;
			snprintf(r->bname[li * NPER + k], 96, "blocks.%d.%s", li, blk_names[k]);
		}
		r->kc[li] = calloc((size_t)p->slots * r->kv_rows * D, sizeof(float));
		r->vc[li] = calloc((size_t)p->slots * r->kv_rows * D, sizeof(float));
		r->xk[li] = calloc((size_t)d->text_len * D, sizeof(float));
		r->xv[li] = calloc((size_t)d->text_len * D, sizeof(float));
	}
	/* everything the GPU stores as bf16 starts as a bf16 number on both sides */
	for (int i = 0; i < NGLOB; i++)
		if (i != G_HMOD)
			for (size_t j = 0; j < r->gn[i]; j++)
				r->g[i][j] = bf16_round(r->g[i][j]);
	for (int li = 0; li < d->num_layers; li++)
		for (int k = 0; k < NPER; k++) {
			int f32 = k == B_MOD || k == B_GQ || k == B_GK || k == B_N3G || k == B_N3B ||
				  k == B_CGQ || k == B_CGK;

			if (!f32)
				for (size_t j = 0; j < r->bn[k]; j++)
					r->b[li][k][j] = bf16_round(r->b[li][k][j]);
		}
	return r;
}

void ref_free(struct ref_model *r)
{
	if (!r)
		return;
	for (int i = 0; i < NGLOB; i++)
		free(r->g[i]);
	for (int li = 0; li < r->d.num_layers; li++) {
		for (int k = 0; k < NPER; k++)
			free(r->b[li][k]);
		free(r->b[li]);
		free(r->kc[li]);
		free(r->vc[li]);
		free(r->xk[li]);
		free(r->xv[li]);
	}
	free(r->b);
	free(r->bname);
	free(r->kc);
	free(r->vc);
	free(r->xk);
	free(r->xv);
	free(r);
}

int ref_param(struct ref_model *r, int idx, const char **name, const float **data, size_t *count)
{
	if (idx < NGLOB) {
		*name = glob_names[idx];
		*data = r->g[idx];
		*count = r->gn[idx];
		return 0;
	}
	idx -= NGLOB;
	if (idx >= NPER * r->d.num_layers)
		return -1;
	*name = r->bname[idx];
	*data = r->b[idx / NPER][idx % NPER];
	*count = r->bn[idx % NPER];
	return 0;
}

void ref_set_context(struct ref_model *r, const float *ctx)
{
	int D = r->d.dim, tl = r->d.text_len;
	float *h = malloc((size_t)tl * D * sizeof(float)), *c = malloc((size_t)tl * D * sizeof(float));

	ref_linear(ctx, r->g[G_T0W], r->g[G_T0B], h, tl, D, r->d.text_dim);
	for (size_t i = 0; i < (size_t)tl * D; i++)
		h[i] = ref_gelu_tanh(h[i]);
	ref_linear(h, r->g[G_T2W], r->g[G_T2B], c, tl, D, D);
	for (int li = 0; li < r->d.num_layers; li++) {
		float **b = r->b[li];

		ref_linear(c, b[B_CKW], b[B_CKB], r->xk[li], tl, D, D);
		rmsnorm(r->xk[li], tl, D, b[B_CGK], (float)r->d.eps);
		ref_linear(c, b[B_CVW], b[B_CVB], r->xv[li], tl, D, D);
	}
	free(h);
	free(c);
}

void ref_copy_slot(struct ref_model *r, int dst, int src, int rows)
{
	size_t D = r->d.dim, sb = (size_t)r->kv_rows * D;

	for (int li = 0; li < r->d.num_layers; li++) {
		memcpy(r->kc[li] + dst * sb, r->kc[li] + src * sb, rows * D * sizeof(float));
		memcpy(r->vc[li] + dst * sb, r->vc[li] + src * sb, rows * D * sizeof(float));
	}
}

static void apply_rope(float *row, int D, int hd, int pt, int py, int px)
{
	int half = hd / 2, ch = hd / 6, ct = half - 2 * ch;

	for (int h0 = 0; h0 < D; h0 += hd)
		for (int j = 0; j < half; j++) {
			int local = j < ct ? j : (j < ct + ch ? j - ct : j - ct - ch);
			int dimx = j < ct ? 2 * ct : 2 * ch, pos = j < ct ? pt : (j < ct + ch ? py : px);
			double ang = pos * pow(10000.0, -(2.0 * local) / dimx);
			double a = row[h0 + 2 * j], b = row[h0 + 2 * j + 1];

			row[h0 + 2 * j] = (float)(a * cos(ang) - b * sin(ang));
			row[h0 + 2 * j + 1] = (float)(a * sin(ang) + b * cos(ang));
		}
}

void ref_forward(struct ref_model *r, const struct dit_cuda_call *c, const float *xin, float *x0,
		 float *flow)
{
	int D = r->d.dim, FF = r->d.ffn_dim, L = r->l, B = c->slots, Fr = c->frames, n = Fr * L;
	int T = B * n, M = B * Fr, H = r->p.lat_h, W = r->p.lat_w, w2 = W / 2, h2 = H / 2;
	float eps = (float)r->d.eps;
	float *x = malloc((size_t)T * D * 4), *hb = malloc((size_t)T * D * 4);
	float *q = malloc((size_t)T * D * 4), *k = malloc((size_t)T * D * 4), *v = malloc((size_t)T * D * 4);
	float *a = malloc((size_t)T * D * 4), *y = malloc((size_t)T * D * 4);
	float *f1 = malloc((size_t)T * FF * 4), *cols = malloc((size_t)T * 64 * 4);
	float *temb = malloc((size_t)M * 256 * 4), *e1 = malloc((size_t)M * D * 4);
	float *e = malloc((size_t)M * D * 4), *e0 = malloc((size_t)M * 6 * D * 4), *tmp = calloc((size_t)M * D, 4);
	float *o = malloc((size_t)T * 64 * 4);
	int kvl[DIT_CUDA_MAX_SLOTS];

	/* patch embedding */
	for (int t = 0; t < T; t++) {
		int bb = t / n, i = t % n, f = i / L, yy = (i % L) / w2, xx = i % w2;

		for (int col = 0; col < 64; col++) {
			int ch = col / 4, dy = (col / 2) % 2, dx = col % 2;

			cols[(size_t)t * 64 + col] = xin[((((size_t)bb * 16 + ch) * Fr + f) * H + 2 * yy + dy) * W + 2 * xx + dx];
		}
	}
	ref_linear(cols, r->g[G_PEW], r->g[G_PEB], x, T, D, 64);
	/* time embedding */
	for (int mm = 0; mm < M; mm++) {
		double tv = c->t[mm / Fr][mm % Fr];

		for (int i = 0; i < 128; i++) {
			double om = pow(10000.0, -(double)i / 128.0);

			temb[mm * 256 + i] = (float)cos(tv * om);
			temb[mm * 256 + 128 + i] = (float)sin(tv * om);
		}
	}
	ref_linear(temb, r->g[G_E0W], r->g[G_E0B], e1, M, D, 256);
	for (size_t i = 0; i < (size_t)M * D; i++)
		tmp[i] = silu_f(e1[i]);
	ref_linear(tmp, r->g[G_E2W], r->g[G_E2B], e, M, D, D);
	for (size_t i = 0; i < (size_t)M * D; i++)
		tmp[i] = silu_f(e[i]);
	ref_linear(tmp, r->g[G_TPW], r->g[G_TPB], e0, M, 6 * D, D);
	for (int bb = 0; bb < B; bb++)
		kvl[bb] = c->kv_len[bb];
	for (int li = 0; li < r->d.num_layers; li++) {
		float **b = r->b[li];
		size_t sb = (size_t)r->kv_rows * D;

#define MOD(t, j, ch) (b[B_MOD][(j) * D + (ch)] + e0[((size_t)((t) / n * Fr + ((t) % n) / L) * 6 + (j)) * D + (ch)])
		ref_layernorm(x, hb, T, D, eps);
		for (int t = 0; t < T; t++)
			for (int ch = 0; ch < D; ch++)
				hb[(size_t)t * D + ch] = hb[(size_t)t * D + ch] * (1 + MOD(t, 1, ch)) + MOD(t, 0, ch);
		ref_linear(hb, b[B_QW], b[B_QB], q, T, D, D);
		ref_linear(hb, b[B_KW], b[B_KB], k, T, D, D);
		ref_linear(hb, b[B_VW], b[B_VB], v, T, D, D);
		rmsnorm(q, T, D, b[B_GQ], eps);
		rmsnorm(k, T, D, b[B_GK], eps);
		for (int t = 0; t < T; t++) {
			int bb = t / n, i = t % n, pt = c->start_frame[bb] + i / L, py = (i % L) / w2, px = i % w2;
			size_t row = (size_t)bb * sb + (size_t)(c->write_row[bb] + i) * D;

			apply_rope(q + (size_t)t * D, D, r->hd, pt, py, px);
			apply_rope(k + (size_t)t * D, D, r->hd, pt, py, px);
			memcpy(r->kc[li] + row, k + (size_t)t * D, D * 4);
			memcpy(r->vc[li] + row, v + (size_t)t * D, D * 4);
		}
		ref_attention(q, r->kc[li], r->vc[li], a, B, r->d.num_heads, r->hd, n, r->kv_rows, kvl,
			      1.0f / sqrtf((float)r->hd));
		ref_linear(a, b[B_OW], b[B_OB], y, T, D, D);
		for (int t = 0; t < T; t++)
			for (int ch = 0; ch < D; ch++)
				x[(size_t)t * D + ch] += y[(size_t)t * D + ch] * MOD(t, 2, ch);
		ref_layernorm(x, hb, T, D, eps);
		for (size_t i = 0; i < (size_t)T * D; i++)
			hb[i] = hb[i] * b[B_N3G][i % D] + b[B_N3B][i % D];
		ref_linear(hb, b[B_CQW], b[B_CQB], q, T, D, D);
		rmsnorm(q, T, D, b[B_CGQ], eps);
		{
			int tl = r->d.text_len;

			ref_attention(q, r->xk[li], r->xv[li], a, 1, r->d.num_heads, r->hd, T, tl, &tl,
				      1.0f / sqrtf((float)r->hd));
		}
		ref_linear(a, b[B_COW], b[B_COB], y, T, D, D);
		for (size_t i = 0; i < (size_t)T * D; i++)
			x[i] += y[i];
		ref_layernorm(x, hb, T, D, eps);
		for (int t = 0; t < T; t++)
			for (int ch = 0; ch < D; ch++)
				hb[(size_t)t * D + ch] = hb[(size_t)t * D + ch] * (1 + MOD(t, 4, ch)) + MOD(t, 3, ch);
		ref_linear(hb, b[B_F1W], b[B_F1B], f1, T, FF, D);
		for (size_t i = 0; i < (size_t)T * FF; i++)
			f1[i] = ref_gelu_tanh(f1[i]);
		ref_linear(f1, b[B_F2W], b[B_F2B], y, T, D, FF);
		for (int t = 0; t < T; t++)
			for (int ch = 0; ch < D; ch++)
				x[(size_t)t * D + ch] += y[(size_t)t * D + ch] * MOD(t, 5, ch);
#undef MOD
	}
	/* head */
	ref_layernorm(x, hb, T, D, eps);
	for (int t = 0; t < T; t++) {
		size_t mi = (size_t)(t / n * Fr + (t % n) / L);

		for (int ch = 0; ch < D; ch++) {
			float sh = r->g[G_HMOD][ch] + e[mi * D + ch], sc = r->g[G_HMOD][D + ch] + e[mi * D + ch];

			hb[(size_t)t * D + ch] = hb[(size_t)t * D + ch] * (1 + sc) + sh;
		}
	}
	ref_linear(hb, r->g[G_HW], r->g[G_HB], o, T, 64, D);
	for (int bb = 0; bb < B; bb++)
		for (int ch = 0; ch < 16; ch++)
			for (int f = 0; f < Fr; f++)
				for (int yy = 0; yy < H; yy++)
					for (int xx = 0; xx < W; xx++) {
						size_t i = ((((size_t)bb * 16 + ch) * Fr + f) * H + yy) * W + xx;
						size_t t = (size_t)bb * n + (size_t)f * L + (yy / 2) * w2 + xx / 2;
						float val = o[t * 64 + ((yy % 2) * 2 + xx % 2) * 16 + ch];

						if (flow)
							flow[i] = val;
						if (x0)
							x0[i] = xin[i] - c->sigma[bb][f] * val;
					}
	(void)h2;
	free(x); free(hb); free(q); free(k); free(v); free(a); free(y); free(f1); free(cols);
	free(temb); free(e1); free(e); free(e0); free(tmp); free(o);
}
