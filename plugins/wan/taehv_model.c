/* taehv_model.c: TAEHV decoder, fp32 CPU reference (see taehv_model.h). */
#include "taehv_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taehv_model_internal.h"
#include "vae_ops.h"

struct taehv_stream {
	const struct taehv_model *m; /* borrowed */
	int incremental, first;
	int h, w;
	float *mem[TAEHV_LAYERS];   /* new: previous input of each MemBlock, NULL = zeros */
	float *ctx;                 /* new: last <= 3 latents (channel-first) */
	int nctx;
};

static void tconv_init(struct tconv *c, int cin, int cout, int k)
{
	memset(c, 0, sizeof(*c));
	c->s.cin = cin;
	c->s.cout = cout;
	c->s.kt = 1;
	c->s.kh = c->s.kw = k;
	c->s.st = c->s.sh = c->s.sw = 1;
	c->s.pad_top = c->s.pad_left = k / 2;
}

static void build(struct taehv_model *m, const struct taehv_config *cfg)
{
	const int *n = cfg->widths;
	memset(m, 0, sizeof(*m));
	m->cfg = *cfg;
	static const enum tk kinds[TAEHV_LAYERS] = {
		TK_CLAMP, TK_CONV, TK_RELU, TK_MEM, TK_MEM, TK_MEM, TK_UP, TK_TGROW, TK_CONV,
		TK_MEM, TK_MEM, TK_MEM, TK_UP, TK_TGROW, TK_CONV, TK_MEM, TK_MEM, TK_MEM, TK_UP,
		TK_TGROW, TK_CONV, TK_RELU, TK_CONV,
	};
	for (int i = 0; i < TAEHV_LAYERS; i++)
		m->l[i].kind = kinds[i];
	tconv_init(&m->l[1].conv[0], TAEHV_LATENT, n[0], 3);
	tconv_init(&m->l[8].conv[0], n[0], n[1], 3);
	tconv_init(&m->l[14].conv[0], n[1], n[2], 3);
	tconv_init(&m->l[20].conv[0], n[2], n[3], 3);
	tconv_init(&m->l[22].conv[0], n[3], 3, 3);
	static const int mem_at[9] = { 3, 4, 5, 9, 10, 11, 15, 16, 17 };
	for (int i = 0; i < 9; i++) {
		struct tlayer *l = &m->l[mem_at[i]];
		l->c = n[i / 3];
		tconv_init(&l->conv[0], 2 * l->c, l->c, 3);
		tconv_init(&l->conv[1], l->c, l->c, 3);
		tconv_init(&l->conv[2], l->c, l->c, 3);
	}
	static const int tg_at[3] = { 7, 13, 19 }, tg_s[3] = { 1, 2, 2 };
	for (int i = 0; i < 3; i++) {
		struct tlayer *l = &m->l[tg_at[i]];
		l->c = n[i];
		l->stride = tg_s[i];
		tconv_init(&l->conv[0], l->c, l->c * l->stride, 1);
	}
}

static int has_bias(int idx)
{
	return idx == 1 || idx == 22;
}

typedef int (*tvisit_fn)(void *ctx, const char *name, int ndim, const int64_t *shape,
			 struct tconv *c, int is_weight, int tgrow);

static int tvisit_conv(tvisit_fn fn, void *ctx, const char *prefix, struct tconv *c, int bias,
		       int tgrow)
{
	char name[96];
	int64_t shape[4] = { c->s.cout, c->s.cin, c->s.kh, c->s.kw };
	snprintf(name, sizeof(name), "%s.weight", prefix);
	if (fn(ctx, name, 4, shape, c, 1, tgrow))
		return -1;
	if (!bias)
		return 0;
	snprintf(name, sizeof(name), "%s.bias", prefix);
	return fn(ctx, name, 1, shape, c, 0, 0);
}

static int tvisit(struct taehv_model *m, tvisit_fn fn, void *ctx)
{
	char p[64];
	for (int i = 0; i < TAEHV_LAYERS; i++) {
		struct tlayer *l = &m->l[i];
		int rc = 0;
		if (l->kind == TK_CONV) {
			snprintf(p, sizeof(p), "decoder.%d", i);
			rc = tvisit_conv(fn, ctx, p, &l->conv[0], has_bias(i), 0);
		} else if (l->kind == TK_MEM) {
			for (int k = 0; k < 3 && !rc; k++) {
				snprintf(p, sizeof(p), "decoder.%d.conv.%d", i, 2 * k);
				rc = tvisit_conv(fn, ctx, p, &l->conv[k], 1, 0);
			}
		} else if (l->kind == TK_TGROW) {
			snprintf(p, sizeof(p), "decoder.%d.conv", i);
			rc = tvisit_conv(fn, ctx, p, &l->conv[0], 0, 1);
		}
		if (rc)
			return rc;
	}
	return 0;
}

struct tload {
	const struct vae_source *src;
	char *err;
	size_t errlen;
};

static int tload_fn(void *ctx, const char *name, int ndim, const int64_t *shape, struct tconv *c,
		    int is_weight, int tgrow)
{
	struct tload *t = ctx;
	int64_t want[4] = { shape[0], shape[1], shape[2], shape[3] }, have[8];
	if (!is_weight) {
		int64_t bs[1] = { c->s.cout };
		c->b = malloc(sizeof(float) * (size_t)c->s.cout);
		if (!c->b)
			return -1;
		return t->src->read(t->src->ctx, name, 1, bs, c->b, t->err, t->errlen);
	}
	int64_t rows = want[0];
	if (tgrow) {
		int nd = t->src->shape(t->src->ctx, name, have);
		if (nd == 4 && have[0] > want[0] && have[1] == want[1] && have[2] == 1 && have[3] == 1)
			rows = have[0]; /* patch_tgrow_layers: keep the last rows */
	}
	size_t per = (size_t)want[1] * want[2] * want[3];
	float *tmp = malloc(sizeof(float) * (size_t)rows * per);
	c->w = malloc(sizeof(float) * (size_t)want[0] * per);
	if (!tmp || !c->w) {
		free(tmp);
		snprintf(t->err, t->errlen, "out of memory loading '%s'", name);
		return -1;
	}
	int64_t rshape[4] = { rows, want[1], want[2], want[3] };
	if (t->src->read(t->src->ctx, name, 4, rshape, tmp, t->err, t->errlen)) {
		free(tmp);
		return -1;
	}
	vae_repack_conv(tmp + (size_t)(rows - want[0]) * per, c->w, (int)want[0], (int)want[1], 1,
			(int)want[2], (int)want[3]);
	free(tmp);
	return 0;
}

void taehv_model_free(struct taehv_model *m)
{
	if (!m)
		return;
	for (int i = 0; i < TAEHV_LAYERS; i++)
		for (int k = 0; k < 3; k++) {
			free(m->l[i].conv[k].w);
			free(m->l[i].conv[k].b);
		}
	free(m);
}

struct taehv_model *taehv_model_load(const struct taehv_config *cfg, const struct vae_source *src,
				     char *err, size_t errlen)
{
	struct taehv_model *m = malloc(sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	build(m, cfg);
	struct tload t = { src, err, errlen };
	if (tvisit(m, tload_fn, &t)) {
		taehv_model_free(m);
		return NULL;
	}
	return m;
}

struct teach {
	void (*fn)(void *ctx, const char *name, int ndim, const int64_t *shape);
	void *ctx;
};

static int teach_fn(void *ctx, const char *name, int ndim, const int64_t *shape, struct tconv *c,
		    int is_weight, int tgrow)
{
	struct teach *e = ctx;
	int64_t bs[1] = { c->s.cout };
	e->fn(e->ctx, name, is_weight ? 4 : 1, is_weight ? shape : bs);
	return 0;
}

void taehv_model_each_tensor(const struct taehv_config *cfg,
			     void (*fn)(void *ctx, const char *name, int ndim, const int64_t *shape),
			     void *ctx)
{
	struct taehv_model *m = malloc(sizeof(*m));
	if (!m)
		return;
	build(m, cfg);
	struct teach e = { fn, ctx };
	tvisit(m, teach_fn, &e);
	free(m);
}

/* ---- streams ---- */

struct taehv_stream *taehv_stream_new(const struct taehv_model *m, int incremental)
{
	struct taehv_stream *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->m = m;
	s->incremental = incremental;
	s->first = 1;
	return s;
}

static void mem_clear(struct taehv_stream *s)
{
	for (int i = 0; i < TAEHV_LAYERS; i++) {
		free(s->mem[i]);
		s->mem[i] = NULL;
	}
}

void taehv_stream_reset(struct taehv_stream *s)
{
	mem_clear(s);
	free(s->ctx);
	s->ctx = NULL;
	s->nctx = 0;
	s->first = 1;
}

void taehv_stream_free(struct taehv_stream *s)
{
	if (!s)
		return;
	taehv_stream_reset(s);
	free(s);
}

int taehv_stream_first(const struct taehv_stream *s)
{
	return s->first;
}

int taehv_decode_count(int first, int f)
{
	if (f < 1)
		return -1;
	return first ? 4 * (f - 1) : 4 * f;
}

/* ---- forward ---- */

struct sink {
	float *frames;   /* borrowed: output [T][3][H][W] */
	int index;       /* frames produced so far in this decode */
	int skip;        /* frames to drop before emitting */
	int emitted;
};

static float *conv2d(const struct tconv *c, const float *x, int h, int w)
{
	float *out = malloc(sizeof(float) * (size_t)h * w * c->s.cout);
	if (out)
		vae_conv(&c->s, x, 1, h, w, c->w, c->b, out, h, w);
	return out;
}

/* Runs layers LI.. on one frame X (owned, [h][w][c]) depth-first, as upstream's work queue. */
static int run_from(const struct taehv_model *m, struct taehv_stream *s, int li, float *x, int h,
		    int w, int c, struct sink *o)
{
	for (; li < TAEHV_LAYERS; li++) {
		const struct tlayer *l = &m->l[li];
		size_t n = (size_t)h * w * c;
		float *y = NULL;
		switch (l->kind) {
		case TK_CLAMP:
			for (size_t i = 0; i < n; i++)
				x[i] = tanhf(x[i] / 3.0f) * 3.0f;
			continue;
		case TK_RELU:
			vae_relu(x, n);
			continue;
		case TK_CONV:
			y = conv2d(&l->conv[0], x, h, w);
			c = l->conv[0].s.cout;
			break;
		case TK_UP:
			y = malloc(sizeof(float) * n * 4);
			if (y)
				vae_upsample2x(x, 1, h, w, c, y);
			h *= 2;
			w *= 2;
			break;
		case TK_MEM: {
			size_t hw = (size_t)h * w;
			float *cat = malloc(sizeof(float) * n * 2);
			if (!cat)
				break;
			for (size_t i = 0; i < hw; i++) {
				memcpy(cat + i * 2 * c, x + i * c, sizeof(float) * c);
				if (s->mem[li])
					memcpy(cat + i * 2 * c + c, s->mem[li] + i * c, sizeof(float) * c);
				else
					memset(cat + i * 2 * c + c, 0, sizeof(float) * c);
			}
			float *a = conv2d(&l->conv[0], cat, h, w);
			free(cat);
			if (!a)
				break;
			vae_relu(a, n);
			float *b = conv2d(&l->conv[1], a, h, w);
			free(a);
			if (!b)
				break;
			vae_relu(b, n);
			y = conv2d(&l->conv[2], b, h, w);
			free(b);
			if (!y)
				break;
			vae_add(y, x, n);
			vae_relu(y, n);
			if (!s->mem[li] && !(s->mem[li] = malloc(sizeof(float) * n))) {
				free(y);
				y = NULL;
				break;
			}
			memcpy(s->mem[li], x, sizeof(float) * n);
			break;
		}
		case TK_TGROW: {
			float *g = conv2d(&l->conv[0], x, h, w);
			free(x);
			if (!g)
				return -1;
			size_t hw = (size_t)h * w;
			int rc = 0;
			for (int k = 0; k < l->stride && !rc; k++) {
				float *f = malloc(sizeof(float) * n);
				if (!f) {
					rc = -1;
					break;
				}
				for (size_t i = 0; i < hw; i++)
					memcpy(f + i * c, g + i * (size_t)c * l->stride + (size_t)k * c,
					       sizeof(float) * c);
				rc = run_from(m, s, li + 1, f, h, w, c, o);
			}
			free(g);
			return rc;
		}
		}
		free(x);
		if (!y)
			return -1;
		x = y;
	}
	/* the end: map [0,1] -> [-1,1], clamp, emit channel-first */
	if (o->index++ >= o->skip) {
		size_t hw = (size_t)h * w;
		float *dst = o->frames + (size_t)o->emitted * 3 * hw;
		for (size_t i = 0; i < hw; i++)
			for (int k = 0; k < 3; k++) {
				float v = x[i * 3 + k] * 2.0f - 1.0f;
				dst[(size_t)k * hw + i] = v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v;
			}
		o->emitted++;
	}
	free(x);
	return 0;
}

static int decode_latents(const struct taehv_model *m, struct taehv_stream *s, const float *lat,
			  int n, int h, int w, struct sink *o)
{
	size_t hw = (size_t)h * w;
	for (int t = 0; t < n; t++) {
		float *x = malloc(sizeof(float) * hw * TAEHV_LATENT);
		if (!x)
			return -1;
		vae_nchw_to_nhwc(lat + (size_t)t * TAEHV_LATENT * hw, 1, TAEHV_LATENT, h, w, x);
		if (run_from(m, s, 0, x, h, w, TAEHV_LATENT, o))
			return -1;
	}
	return 0;
}

int taehv_decode(const struct taehv_model *m, struct taehv_stream *s, const float *latents, int f,
		 int h, int w, float *frames, char *err, size_t errlen)
{
	if (f < 1 || h <= 0 || w <= 0 || h > 1024 || w > 1024) {
		snprintf(err, errlen, "bad latent shape [%d,16,%d,%d]", f, h, w);
		return -1;
	}
	if (!s->first && (h != s->h || w != s->w)) {
		snprintf(err, errlen, "latent size %dx%d differs from the stream's %dx%d; reset the stream",
			 h, w, s->h, s->w);
		return -1;
	}
	size_t lsz = (size_t)TAEHV_LATENT * h * w;
	struct sink o = { .frames = frames };
	int first = s->first, rc;
	if (first) {
		taehv_stream_reset(s);
		s->first = 0;
		s->h = h;
		s->w = w;
	}
	if (s->incremental) {
		o.skip = first ? 4 : 0;
		rc = decode_latents(m, s, latents, f, h, w, &o);
	} else {
		/* window = context + new; decode from scratch; emit the last 4*new (first: 4*(f-1)) */
		int nw = s->nctx + f;
		float *win = malloc(sizeof(float) * lsz * nw);
		if (!win) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		if (s->nctx)
			memcpy(win, s->ctx, sizeof(float) * lsz * s->nctx);
		memcpy(win + lsz * s->nctx, latents, sizeof(float) * lsz * f);
		mem_clear(s);
		o.skip = 4 * nw - taehv_decode_count(first, f);
		rc = decode_latents(m, s, win, nw, h, w, &o);
		int keep = nw < TAEHV_CONTEXT_LATENTS ? nw : TAEHV_CONTEXT_LATENTS;
		if (!rc) {
			if (!s->ctx)
				s->ctx = malloc(sizeof(float) * lsz * TAEHV_CONTEXT_LATENTS);
			if (s->ctx) {
				memcpy(s->ctx, win + lsz * (nw - keep), sizeof(float) * lsz * keep);
				s->nctx = keep;
			} else {
				rc = -1;
			}
		}
		free(win);
	}
	if (rc) {
		snprintf(err, errlen, "TAEHV decode failed (out of memory)");
		taehv_stream_reset(s);
	}
	return rc;
}

double taehv_flops_latent(const struct taehv_config *cfg, int h, int w)
{
	const int *n = cfg->widths;
	double f = 0.0, px = (double)(h / 8) * (w / 8);
	double mb[3], frames[3] = { 1, 1, 2 };
	for (int i = 0; i < 3; i++)
		mb[i] = 9.0 * (2.0 * n[i] * n[i] + 2.0 * n[i] * n[i]);
	f += px * 9.0 * 16 * n[0] + px * 3 * mb[0];           /* conv in, 3 MemBlocks */
	px *= 4;
	f += px * n[0] * n[0];                                /* TGrow(n0, 1) */
	f += px * 9.0 * n[0] * n[1] + px * 3 * mb[1];
	px *= 4;
	f += px * n[1] * 2.0 * n[1];                          /* TGrow(n1, 2) */
	f += frames[2] * (px * 9.0 * n[1] * n[2] + px * 3 * mb[2]);
	px *= 4;
	f += 2 * px * n[2] * 2.0 * n[2];                      /* TGrow(n2, 2) on 2 frames */
	f += 4 * (px * 9.0 * n[2] * n[3] + px * 9.0 * n[3] * 3);
	return 2.0 * f;
}
