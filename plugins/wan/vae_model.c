/* vae_model.c: Wan2.1 causal 3D VAE, fp32 CPU reference with streaming caches (see vae_model.h). */
#include "vae_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vae_model_internal.h"
#include "vae_ops.h"

const float vae_latent_mean[16] = {
	-0.7571f, -0.7089f, -0.9113f, 0.1075f, -0.1745f, 0.9653f, -0.1517f, 1.5508f,
	0.4134f, -0.0715f, 0.5517f, -0.3632f, -0.1922f, -0.9497f, 0.2503f, -0.2921f,
};
const float vae_latent_std[16] = {
	2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f,
	3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f,
};

struct vae_slot {
	float *d;   /* new: up to 2 frames */
	int n;      /* frames held */
	int seen;   /* resample: called before */
	size_t fe;  /* elements per frame */
};

struct vae_stream {
	const struct vae_model *m; /* borrowed */
	int first_enc, first_dec;
	int enc_h, enc_w, dec_h, dec_w;
	struct vae_slot *enc_slots, *dec_slots; /* new */
	int n_enc, n_dec;
};

/* ---- architecture ---- */

static void conv_init(struct vae_conv_w *c, int cin, int cout, int kt, int k, int stride,
		      int pad, int *slot)
{
	memset(c, 0, sizeof(*c));
	c->s.cin = cin;
	c->s.cout = cout;
	c->s.kt = kt;
	c->s.kh = c->s.kw = k;
	c->s.st = 1;
	c->s.sh = c->s.sw = stride;
	c->s.pad_top = c->s.pad_left = pad;
	c->slot = slot ? (*slot)++ : -1;
}

static int scale_in(const struct vae_config *cfg, double scale)
{
	for (int i = 0; i < cfg->n_attn; i++)
		if (cfg->attn_scales[i] == scale)
			return 1;
	return 0;
}

static struct vae_block *add_block(struct vae_coder *c, enum vae_kind kind, const char *list,
				   int index, int cin, int cout, int *slot)
{
	struct vae_block *b = &c->blocks[c->nblocks++];
	memset(b, 0, sizeof(*b));
	b->kind = kind;
	b->cin = cin;
	b->cout = cout;
	b->slot = -1;
	snprintf(b->prefix, sizeof(b->prefix), "%s.%s.%d", c->name, list, index);
	switch (kind) {
	case VK_RES:
		conv_init(&b->a, cin, cout, 3, 3, 1, 1, slot);
		conv_init(&b->b, cout, cout, 3, 3, 1, 1, slot);
		if (cin != cout) {
			b->has_sc = 1;
			conv_init(&b->sc, cin, cout, 1, 1, 1, 0, NULL);
		}
		break;
	case VK_ATTN:
		conv_init(&b->a, cin, 3 * cin, 1, 1, 1, 0, NULL);
		conv_init(&b->b, cin, cin, 1, 1, 1, 0, NULL);
		break;
	case VK_DOWN2D:
	case VK_DOWN3D:
		conv_init(&b->a, cin, cin, 1, 3, 2, 0, NULL);
		if (kind == VK_DOWN3D) {
			conv_init(&b->b, cin, cin, 3, 1, 1, 0, NULL);
			b->b.s.st = 2;
			b->slot = (*slot)++;
		}
		break;
	case VK_UP2D:
	case VK_UP3D:
		conv_init(&b->a, cin, cin / 2, 1, 3, 1, 1, NULL);
		b->cout = cin / 2;
		if (kind == VK_UP3D) {
			conv_init(&b->b, cin, 2 * cin, 3, 1, 1, 0, NULL);
			b->slot = (*slot)++;
		}
		break;
	}
	return b;
}

static int build_encoder(struct vae_coder *c, const struct vae_config *cfg)
{
	int n = cfg->n_mult, dims[VAE_MAX_MULT + 1], slot = 0, idx = 0;
	int cap = n * (2 * cfg->num_res_blocks + 1) + 3;
	c->name = "encoder";
	c->blocks = calloc((size_t)cap, sizeof(*c->blocks));
	if (!c->blocks)
		return -1;
	dims[0] = cfg->dim;
	for (int i = 0; i < n; i++)
		dims[i + 1] = cfg->dim * cfg->dim_mult[i];
	conv_init(&c->conv_in, 3, dims[0], 3, 3, 1, 1, &slot);
	double scale = 1.0;
	int out = dims[0];
	for (int i = 0; i < n; i++) {
		int in = dims[i];
		out = dims[i + 1];
		for (int r = 0; r < cfg->num_res_blocks; r++) {
			add_block(c, VK_RES, "downsamples", idx++, in, out, &slot);
			if (scale_in(cfg, scale))
				add_block(c, VK_ATTN, "downsamples", idx++, out, out, &slot);
			in = out;
		}
		if (i != n - 1) {
			add_block(c, cfg->temperal_downsample[i] ? VK_DOWN3D : VK_DOWN2D, "downsamples",
				  idx++, out, out, &slot);
			scale /= 2.0;
		}
	}
	add_block(c, VK_RES, "middle", 0, out, out, &slot);
	add_block(c, VK_ATTN, "middle", 1, out, out, &slot);
	add_block(c, VK_RES, "middle", 2, out, out, &slot);
	c->head_c = out;
	conv_init(&c->head, out, 2 * cfg->z_dim, 3, 3, 1, 1, &slot);
	c->nslots = slot;
	return 0;
}

static int build_decoder(struct vae_coder *c, const struct vae_config *cfg)
{
	int n = cfg->n_mult, dims[VAE_MAX_MULT + 1], slot = 0, idx = 0;
	int cap = n * (2 * (cfg->num_res_blocks + 1) + 1) + 3;
	c->name = "decoder";
	c->blocks = calloc((size_t)cap, sizeof(*c->blocks));
	if (!c->blocks)
		return -1;
	dims[0] = cfg->dim * cfg->dim_mult[n - 1];
	for (int i = 0; i < n; i++)
		dims[i + 1] = cfg->dim * cfg->dim_mult[n - 1 - i];
	conv_init(&c->conv_in, cfg->z_dim, dims[0], 3, 3, 1, 1, &slot);
	add_block(c, VK_RES, "middle", 0, dims[0], dims[0], &slot);
	add_block(c, VK_ATTN, "middle", 1, dims[0], dims[0], &slot);
	add_block(c, VK_RES, "middle", 2, dims[0], dims[0], &slot);
	double scale = 1.0 / (double)(1 << (n - 2 > 0 ? n - 2 : 0));
	if (n < 2)
		scale = 2.0;
	int out = dims[0];
	for (int i = 0; i < n; i++) {
		int in = dims[i];
		out = dims[i + 1];
		if (i >= 1)
			in /= 2;
		for (int r = 0; r < cfg->num_res_blocks + 1; r++) {
			add_block(c, VK_RES, "upsamples", idx++, in, out, &slot);
			if (scale_in(cfg, scale))
				add_block(c, VK_ATTN, "upsamples", idx++, out, out, &slot);
			in = out;
		}
		if (i != n - 1) {
			/* temperal_upsample = temperal_downsample reversed */
			add_block(c, cfg->temperal_downsample[n - 2 - i] ? VK_UP3D : VK_UP2D, "upsamples",
				  idx++, out, out, &slot);
			scale *= 2.0;
		}
	}
	c->head_c = out;
	conv_init(&c->head, out, 3, 3, 3, 1, 1, &slot);
	c->nslots = slot;
	return 0;
}

/* ---- tensor table ---- */

struct visit {
	int (*fn)(struct visit *v, const char *name, int ndim, const int64_t *shape, float **dst,
		  int conv);
	const struct vae_source *src;
	void (*each)(void *ctx, const char *name, int ndim, const int64_t *shape);
	void *ctx;
	char *err;
	size_t errlen;
};

static int vt(struct visit *v, const char *prefix, const char *suffix, int ndim, int64_t a,
	      int64_t b, int64_t c, int64_t d, int64_t e, float **dst, int conv)
{
	char name[128];
	int64_t shape[5] = { a, b, c, d, e };
	snprintf(name, sizeof(name), "%s%s%s", prefix, *suffix ? "." : "", suffix);
	return v->fn(v, name, ndim, shape, dst, conv);
}

static int visit_conv(struct visit *v, const char *prefix, struct vae_conv_w *c, int dims)
{
	char wn[128];
	snprintf(wn, sizeof(wn), "%s.weight", prefix);
	int rc;
	if (dims == 5)
		rc = vt(v, wn, "", 5, c->s.cout, c->s.cin, c->s.kt, c->s.kh, c->s.kw, &c->w, 1);
	else
		rc = vt(v, wn, "", 4, c->s.cout, c->s.cin, c->s.kh, c->s.kw, 0, &c->w, 1);
	if (rc)
		return rc;
	snprintf(wn, sizeof(wn), "%s.bias", prefix);
	return vt(v, wn, "", 1, c->s.cout, 0, 0, 0, 0, &c->b, 0);
}

static int visit_block(struct visit *v, struct vae_block *b)
{
	char p[128];
	int rc = 0;
	switch (b->kind) {
	case VK_RES:
		snprintf(p, sizeof(p), "%s.residual.0.gamma", b->prefix);
		rc = vt(v, p, "", 4, b->cin, 1, 1, 1, 0, &b->g1, 0);
		snprintf(p, sizeof(p), "%s.residual.2", b->prefix);
		rc = rc ? rc : visit_conv(v, p, &b->a, 5);
		snprintf(p, sizeof(p), "%s.residual.3.gamma", b->prefix);
		rc = rc ? rc : vt(v, p, "", 4, b->cout, 1, 1, 1, 0, &b->g2, 0);
		snprintf(p, sizeof(p), "%s.residual.6", b->prefix);
		rc = rc ? rc : visit_conv(v, p, &b->b, 5);
		if (b->has_sc) {
			snprintf(p, sizeof(p), "%s.shortcut", b->prefix);
			rc = rc ? rc : visit_conv(v, p, &b->sc, 5);
		}
		break;
	case VK_ATTN:
		snprintf(p, sizeof(p), "%s.norm.gamma", b->prefix);
		rc = vt(v, p, "", 3, b->cin, 1, 1, 0, 0, &b->g1, 0);
		snprintf(p, sizeof(p), "%s.to_qkv", b->prefix);
		rc = rc ? rc : visit_conv(v, p, &b->a, 4);
		snprintf(p, sizeof(p), "%s.proj", b->prefix);
		rc = rc ? rc : visit_conv(v, p, &b->b, 4);
		break;
	default:
		snprintf(p, sizeof(p), "%s.resample.1", b->prefix);
		rc = visit_conv(v, p, &b->a, 4);
		if (b->kind == VK_DOWN3D || b->kind == VK_UP3D) {
			snprintf(p, sizeof(p), "%s.time_conv", b->prefix);
			rc = rc ? rc : visit_conv(v, p, &b->b, 5);
		}
		break;
	}
	return rc;
}

static int visit_coder(struct visit *v, struct vae_coder *c)
{
	char p[64];
	snprintf(p, sizeof(p), "%s.conv1", c->name);
	int rc = visit_conv(v, p, &c->conv_in, 5);
	for (int i = 0; !rc && i < c->nblocks; i++)
		rc = visit_block(v, &c->blocks[i]);
	snprintf(p, sizeof(p), "%s.head.0.gamma", c->name);
	rc = rc ? rc : vt(v, p, "", 4, c->head_c, 1, 1, 1, 0, &c->head_g, 0);
	snprintf(p, sizeof(p), "%s.head.2", c->name);
	return rc ? rc : visit_conv(v, p, &c->head, 5);
}

static int visit_model(struct visit *v, struct vae_model *m)
{
	int rc = 0;
	if (m->what & VAE_LOAD_ENCODER) {
		rc = visit_coder(v, &m->enc);
		rc = rc ? rc : visit_conv(v, "conv1", &m->quant, 5);
	}
	if (!rc && (m->what & VAE_LOAD_DECODER)) {
		rc = visit_conv(v, "conv2", &m->post_quant, 5);
		rc = rc ? rc : visit_coder(v, &m->dec);
	}
	return rc;
}

static int64_t numel(int ndim, const int64_t *shape)
{
	int64_t n = 1;
	for (int i = 0; i < ndim; i++)
		n *= shape[i];
	return n;
}

static int load_fn(struct visit *v, const char *name, int ndim, const int64_t *shape, float **dst,
		   int conv)
{
	int64_t n = numel(ndim, shape);
	float *tmp = malloc(sizeof(float) * (size_t)n);
	float *out = conv ? malloc(sizeof(float) * (size_t)n) : tmp;
	if (!tmp || !out) {
		snprintf(v->err, v->errlen, "out of memory loading '%s'", name);
		goto fail;
	}
	if (v->src->read(v->src->ctx, name, ndim, shape, tmp, v->err, v->errlen))
		goto fail;
	if (conv) {
		int kt = ndim == 5 ? (int)shape[2] : 1;
		vae_repack_conv(tmp, out, (int)shape[0], (int)shape[1], kt, (int)shape[ndim - 2],
				(int)shape[ndim - 1]);
		free(tmp);
	}
	*dst = out;
	return 0;
fail:
	free(tmp);
	if (out != tmp)
		free(out);
	return -1;
}

static int each_fn(struct visit *v, const char *name, int ndim, const int64_t *shape, float **dst,
		   int conv)
{
	v->each(v->ctx, name, ndim, shape);
	return 0;
}

static int build(struct vae_model *m, const struct vae_config *cfg, int what)
{
	m->cfg = *cfg;
	m->what = what;
	if ((what & VAE_LOAD_ENCODER) && build_encoder(&m->enc, cfg))
		return -1;
	if ((what & VAE_LOAD_DECODER) && build_decoder(&m->dec, cfg))
		return -1;
	conv_init(&m->quant, 2 * cfg->z_dim, 2 * cfg->z_dim, 1, 1, 1, 0, NULL);
	conv_init(&m->post_quant, cfg->z_dim, cfg->z_dim, 1, 1, 1, 0, NULL);
	return 0;
}

void vae_model_each_tensor(const struct vae_config *cfg, int what,
			   void (*fn)(void *ctx, const char *name, int ndim, const int64_t *shape),
			   void *ctx)
{
	struct vae_model m;
	memset(&m, 0, sizeof(m));
	if (build(&m, cfg, what) == 0) {
		struct visit v = { .fn = each_fn, .each = fn, .ctx = ctx };
		visit_model(&v, &m);
	}
	free(m.enc.blocks);
	free(m.dec.blocks);
}

static void conv_free(struct vae_conv_w *c)
{
	free(c->w);
	free(c->b);
}

static void coder_free(struct vae_coder *c)
{
	if (!c->blocks)
		return;
	for (int i = 0; i < c->nblocks; i++) {
		struct vae_block *b = &c->blocks[i];
		free(b->g1);
		free(b->g2);
		conv_free(&b->a);
		conv_free(&b->b);
		conv_free(&b->sc);
	}
	free(c->blocks);
	conv_free(&c->conv_in);
	conv_free(&c->head);
	free(c->head_g);
}

void vae_model_free(struct vae_model *m)
{
	if (!m)
		return;
	coder_free(&m->enc);
	coder_free(&m->dec);
	conv_free(&m->quant);
	conv_free(&m->post_quant);
	free(m);
}

struct vae_model *vae_model_load(const struct vae_config *cfg, const struct vae_source *src,
				 int what, char *err, size_t errlen)
{
	struct vae_model *m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (!(what & (VAE_LOAD_ENCODER | VAE_LOAD_DECODER)) || build(m, cfg, what)) {
		snprintf(err, errlen, "cannot build the VAE architecture");
		goto fail;
	}
	struct visit v = { .fn = load_fn, .src = src, .err = err, .errlen = errlen };
	if (visit_model(&v, m))
		goto fail;
	return m;
fail:
	vae_model_free(m);
	return NULL;
}

const struct vae_config *vae_model_config(const struct vae_model *m)
{
	return &m->cfg;
}

/* ---- streams ---- */

struct vae_stream *vae_stream_new(const struct vae_model *m)
{
	struct vae_stream *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->m = m;
	s->n_enc = m->enc.nslots;
	s->n_dec = m->dec.nslots;
	s->enc_slots = calloc((size_t)s->n_enc + 1, sizeof(*s->enc_slots));
	s->dec_slots = calloc((size_t)s->n_dec + 1, sizeof(*s->dec_slots));
	if (!s->enc_slots || !s->dec_slots) {
		vae_stream_free(s);
		return NULL;
	}
	s->first_enc = s->first_dec = 1;
	return s;
}

static void slots_clear(struct vae_slot *sl, int n)
{
	for (int i = 0; i < n; i++) {
		free(sl[i].d);
		memset(&sl[i], 0, sizeof(sl[i]));
	}
}

void vae_stream_free(struct vae_stream *s)
{
	if (!s)
		return;
	if (s->enc_slots)
		slots_clear(s->enc_slots, s->n_enc);
	if (s->dec_slots)
		slots_clear(s->dec_slots, s->n_dec);
	free(s->enc_slots);
	free(s->dec_slots);
	free(s);
}

void vae_stream_reset(struct vae_stream *s)
{
	slots_clear(s->enc_slots, s->n_enc);
	slots_clear(s->dec_slots, s->n_dec);
	s->first_enc = s->first_dec = 1;
}

int vae_stream_first_encode(const struct vae_stream *s)
{
	return s->first_enc;
}

int vae_stream_first_decode(const struct vae_stream *s)
{
	return s->first_dec;
}

int vae_encode_count(const struct vae_model *m, int first, int t)
{
	int tf = vae_config_temporal(&m->cfg);
	if (first)
		return t >= 1 && (t - 1) % tf == 0 ? 1 + (t - 1) / tf : -1;
	return t >= tf && t % tf == 0 ? t / tf : -1;
}

int vae_decode_count(const struct vae_model *m, int first, int f)
{
	int tf = vae_config_temporal(&m->cfg);
	if (f < 1)
		return -1;
	return first ? 1 + tf * (f - 1) : tf * f;
}

/* ---- forward ---- */

struct act {
	float *d; /* new */
	int t, h, w, c;
};

static size_t act_n(const struct act *a)
{
	return (size_t)a->t * a->h * a->w * a->c;
}

/* Runs a causal k_t=3 conv with its cache slot (frames held in front, zeros for the rest) and
 * updates the slot to the last 2 frames of [cache, input]; replaces X with the output. */
static int cconv(const struct vae_conv_w *cw, struct vae_slot *sl, struct act *x)
{
	size_t fe = (size_t)x->h * x->w * x->c;
	int t = x->t, pre = 2;
	float *buf = calloc((size_t)(pre + t) * fe, sizeof(float));
	float *out = malloc(sizeof(float) * (size_t)t * x->h * x->w * cw->s.cout);
	if (!buf || !out || (sl->d && sl->fe != fe))
		goto fail;
	if (sl->n)
		memcpy(buf + (size_t)(pre - sl->n) * fe, sl->d, sizeof(float) * sl->n * fe);
	memcpy(buf + (size_t)pre * fe, x->d, sizeof(float) * t * fe);
	vae_conv(&cw->s, buf, pre + t, x->h, x->w, cw->w, cw->b, out, x->h, x->w);
	if (!sl->d) {
		sl->d = malloc(sizeof(float) * 2 * fe);
		if (!sl->d)
			goto fail;
		sl->fe = fe;
	}
	int nn = sl->n + t < 2 ? sl->n + t : 2;
	memcpy(sl->d, buf + (size_t)(pre + t - nn) * fe, sizeof(float) * nn * fe);
	sl->n = nn;
	free(buf);
	free(x->d);
	x->d = out;
	x->c = cw->s.cout;
	return 0;
fail:
	free(buf);
	free(out);
	return -1;
}

/* Per-frame (k_t=1) conv with spatial stride/padding from CW; output size HOUT x WOUT. */
static int fconv(const struct vae_conv_w *cw, struct act *x, int hout, int wout)
{
	float *out = malloc(sizeof(float) * (size_t)x->t * hout * wout * cw->s.cout);
	if (!out)
		return -1;
	vae_conv(&cw->s, x->d, x->t, x->h, x->w, cw->w, cw->b, out, hout, wout);
	free(x->d);
	x->d = out;
	x->h = hout;
	x->w = wout;
	x->c = cw->s.cout;
	return 0;
}

static int act_copy(const struct act *x, struct act *y)
{
	*y = *x;
	y->d = malloc(sizeof(float) * act_n(x));
	if (!y->d)
		return -1;
	memcpy(y->d, x->d, sizeof(float) * act_n(x));
	return 0;
}

static int run_res(const struct vae_block *b, struct vae_slot *slots, struct act *x)
{
	struct act sc = { 0 }, r = { 0 };
	int rc = -1;
	if (act_copy(x, &r) || act_copy(x, &sc))
		goto out;
	if (b->has_sc && fconv(&b->sc, &sc, x->h, x->w))
		goto out;
	vae_rms_norm(r.d, (size_t)r.t * r.h * r.w, r.c, b->g1, 1);
	if (cconv(&b->a, &slots[b->a.slot], &r))
		goto out;
	vae_rms_norm(r.d, (size_t)r.t * r.h * r.w, r.c, b->g2, 1);
	if (cconv(&b->b, &slots[b->b.slot], &r))
		goto out;
	vae_add(r.d, sc.d, act_n(&r));
	free(x->d);
	*x = r;
	r.d = NULL;
	rc = 0;
out:
	free(sc.d);
	free(r.d);
	return rc;
}

static int run_down(const struct vae_block *b, struct vae_slot *slots, struct act *x)
{
	if (fconv(&b->a, x, x->h / 2, x->w / 2))
		return -1;
	if (b->kind != VK_DOWN3D)
		return 0;
	struct vae_slot *sl = &slots[b->slot];
	size_t fe = (size_t)x->h * x->w * x->c;
	if (sl->d && sl->fe != fe)
		return -1;
	if (!sl->d) {
		sl->d = malloc(sizeof(float) * fe);
		if (!sl->d)
			return -1;
		sl->fe = fe;
	}
	if (!sl->seen) {
		/* first call: remember the input, no time_conv */
		sl->seen = 1;
		memcpy(sl->d, x->d + (size_t)(x->t - 1) * fe, sizeof(float) * fe);
		sl->n = 1;
		return 0;
	}
	int tin = x->t + 1;
	if (tin < 3)
		return -1;
	int tout = (tin - 3) / 2 + 1;
	float *buf = malloc(sizeof(float) * tin * fe);
	float *out = malloc(sizeof(float) * tout * fe);
	if (!buf || !out) {
		free(buf);
		free(out);
		return -1;
	}
	memcpy(buf, sl->d, sizeof(float) * fe);
	memcpy(buf + fe, x->d, sizeof(float) * x->t * fe);
	vae_conv(&b->b.s, buf, tin, x->h, x->w, b->b.w, b->b.b, out, x->h, x->w);
	memcpy(sl->d, x->d + (size_t)(x->t - 1) * fe, sizeof(float) * fe);
	free(buf);
	free(x->d);
	x->d = out;
	x->t = tout;
	return 0;
}

static int run_up(const struct vae_block *b, struct vae_slot *slots, struct act *x)
{
	if (b->kind == VK_UP3D) {
		struct vae_slot *sl = &slots[b->slot];
		if (!sl->seen) {
			/* 'Rep': no time upsampling now; the next call sees 2 zero frames in front */
			size_t fe = (size_t)x->h * x->w * x->c;
			sl->seen = 1;
			sl->d = calloc(2 * fe, sizeof(float));
			if (!sl->d)
				return -1;
			sl->fe = fe;
			sl->n = 2;
		} else {
			int t = x->t, c = x->c;
			size_t hw = (size_t)x->h * x->w;
			if (cconv(&b->b, sl, x))
				return -1;
			float *il = malloc(sizeof(float) * act_n(x));
			if (!il)
				return -1;
			for (int f = 0; f < t; f++)
				for (int s = 0; s < 2; s++)
					for (size_t i = 0; i < hw; i++)
						memcpy(il + (((size_t)(2 * f + s)) * hw + i) * c,
						       x->d + ((size_t)f * hw + i) * 2 * c + (size_t)s * c,
						       sizeof(float) * c);
			free(x->d);
			x->d = il;
			x->t = 2 * t;
			x->c = c;
		}
	}
	float *up = malloc(sizeof(float) * act_n(x) * 4);
	if (!up)
		return -1;
	vae_upsample2x(x->d, x->t, x->h, x->w, x->c, up);
	free(x->d);
	x->d = up;
	x->h *= 2;
	x->w *= 2;
	return fconv(&b->a, x, x->h, x->w);
}

static int run_coder(const struct vae_coder *c, struct vae_slot *slots, struct act *x)
{
	if (cconv(&c->conv_in, &slots[c->conv_in.slot], x))
		return -1;
	for (int i = 0; i < c->nblocks; i++) {
		const struct vae_block *b = &c->blocks[i];
		int rc;
		switch (b->kind) {
		case VK_RES:
			rc = run_res(b, slots, x);
			break;
		case VK_ATTN:
			rc = vae_attention(x->d, x->t, x->h * x->w, x->c, b->g1, b->a.w, b->a.b, b->b.w,
					   b->b.b);
			break;
		case VK_DOWN2D:
		case VK_DOWN3D:
			rc = run_down(b, slots, x);
			break;
		default:
			rc = run_up(b, slots, x);
			break;
		}
		if (rc)
			return -1;
	}
	vae_rms_norm(x->d, (size_t)x->t * x->h * x->w, x->c, c->head_g, 1);
	return cconv(&c->head, &slots[c->head.slot], x);
}

/* Encoder on frames [t0, t0+n) of FRAMES ([T][3][H][W]), appending mu to LATENTS. */
static int enc_call(const struct vae_model *m, struct vae_stream *s, const float *frames, int n,
		    int h, int w, float **latents)
{
	struct act x = { .t = n, .h = h, .w = w, .c = 3 };
	x.d = malloc(sizeof(float) * act_n(&x));
	if (!x.d)
		return -1;
	vae_nchw_to_nhwc(frames, n, 3, h, w, x.d);
	if (run_coder(&m->enc, s->enc_slots, &x) || fconv(&m->quant, &x, x.h, x.w)) {
		free(x.d);
		return -1;
	}
	/* mu = the first z channels, written channel-first */
	int z = m->cfg.z_dim;
	size_t hw = (size_t)x.h * x.w;
	for (int f = 0; f < x.t; f++)
		for (int k = 0; k < z; k++)
			for (size_t i = 0; i < hw; i++)
				(*latents)[((size_t)f * z + k) * hw + i] = x.d[((size_t)f * hw + i) * x.c + k];
	*latents += (size_t)x.t * z * hw;
	free(x.d);
	return 0;
}

int vae_encode(const struct vae_model *m, struct vae_stream *s, const float *frames, int t,
	       int h, int w, float *latents, char *err, size_t errlen)
{
	int sp = vae_config_spatial(&m->cfg), tf = vae_config_temporal(&m->cfg);
	if (!(m->what & VAE_LOAD_ENCODER)) {
		snprintf(err, errlen, "the VAE encoder weights were not loaded");
		return -1;
	}
	if (h <= 0 || w <= 0 || h % sp || w % sp || h > 8192 || w > 8192) {
		snprintf(err, errlen, "frame size %dx%d must be positive multiples of %d", h, w, sp);
		return -1;
	}
	if (vae_encode_count(m, s->first_enc, t) < 0) {
		snprintf(err, errlen, s->first_enc ? "a first encode takes 1+%dk frames, not %d"
						   : "a later encode takes %dk frames (k >= 1), not %d",
			 tf, t);
		return -1;
	}
	if (!s->first_enc && (h != s->enc_h || w != s->enc_w)) {
		snprintf(err, errlen, "frame size %dx%d differs from the stream's %dx%d; reset the stream",
			 h, w, s->enc_h, s->enc_w);
		return -1;
	}
	size_t fsz = (size_t)3 * h * w;
	float *lp = latents;
	int rc;
	if (s->first_enc) {
		slots_clear(s->enc_slots, s->n_enc);
		s->first_enc = 0;
		s->enc_h = h;
		s->enc_w = w;
		rc = enc_call(m, s, frames, 1, h, w, &lp);
		if (!rc && t > 1)
			rc = enc_call(m, s, frames + fsz, t - 1, h, w, &lp);
	} else {
		rc = 0;
		for (int i = 0; !rc && i < t / tf; i++)
			rc = enc_call(m, s, frames + (size_t)i * tf * fsz, tf, h, w, &lp);
	}
	if (rc) {
		snprintf(err, errlen, "VAE encode failed (out of memory)");
		vae_stream_reset(s);
	}
	return rc;
}

static int dec_call(const struct vae_model *m, struct vae_stream *s, const float *x0, int n,
		    int h, int w, float **frames)
{
	struct act x = { .t = n, .h = h, .w = w, .c = m->cfg.z_dim };
	size_t sz = act_n(&x);
	x.d = malloc(sizeof(float) * sz);
	if (!x.d)
		return -1;
	memcpy(x.d, x0, sizeof(float) * sz);
	if (run_coder(&m->dec, s->dec_slots, &x)) {
		free(x.d);
		return -1;
	}
	size_t total = act_n(&x);
	for (size_t i = 0; i < total; i++)
		x.d[i] = x.d[i] < -1.0f ? -1.0f : x.d[i] > 1.0f ? 1.0f : x.d[i];
	vae_nhwc_to_nchw(x.d, x.t, x.h, x.w, x.c, *frames);
	*frames += total;
	free(x.d);
	return 0;
}

int vae_decode(const struct vae_model *m, struct vae_stream *s, const float *latents, int f,
	       int h, int w, float *frames, char *err, size_t errlen)
{
	int z = m->cfg.z_dim;
	if (!(m->what & VAE_LOAD_DECODER)) {
		snprintf(err, errlen, "the VAE decoder weights were not loaded");
		return -1;
	}
	if (f < 1 || h <= 0 || w <= 0 || h > 1024 || w > 1024) {
		snprintf(err, errlen, "bad latent shape [%d,%d,%d,%d]", f, z, h, w);
		return -1;
	}
	if (!s->first_dec && (h != s->dec_h || w != s->dec_w)) {
		snprintf(err, errlen, "latent size %dx%d differs from the stream's %dx%d; reset the stream",
			 h, w, s->dec_h, s->dec_w);
		return -1;
	}
	/* z*std + mean, then conv2 (1x1x1), channels-last */
	struct act x = { .t = f, .h = h, .w = w, .c = z };
	size_t hw = (size_t)h * w;
	x.d = malloc(sizeof(float) * act_n(&x));
	if (!x.d) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int t = 0; t < f; t++)
		for (int k = 0; k < z; k++)
			for (size_t i = 0; i < hw; i++)
				x.d[((size_t)t * hw + i) * z + k] =
					latents[((size_t)t * z + k) * hw + i] * vae_latent_std[k] +
					vae_latent_mean[k];
	int rc = fconv(&m->post_quant, &x, h, w);
	float *fp = frames;
	size_t lsz = hw * z;
	if (!rc && s->first_dec) {
		slots_clear(s->dec_slots, s->n_dec);
		s->first_dec = 0;
		s->dec_h = h;
		s->dec_w = w;
		rc = dec_call(m, s, x.d, 1, h, w, &fp);
		if (!rc && f > 1)
			rc = dec_call(m, s, x.d + lsz, f - 1, h, w, &fp);
	} else {
		for (int i = 0; !rc && i < f; i++)
			rc = dec_call(m, s, x.d + (size_t)i * lsz, 1, h, w, &fp);
	}
	free(x.d);
	if (rc) {
		snprintf(err, errlen, "VAE decode failed (out of memory)");
		vae_stream_reset(s);
	}
	return rc;
}

/* ---- FLOP count (steady state) ---- */

static double conv_flops(const struct vae_conv_shape *s, int tout, int hout, int wout)
{
	return 2.0 * tout * hout * wout * (double)s->cout * s->cin * s->kt * s->kh * s->kw;
}

static double coder_flops(const struct vae_coder *c, int t, int h, int w)
{
	double f = conv_flops(&c->conv_in.s, t, h, w);
	for (int i = 0; i < c->nblocks; i++) {
		const struct vae_block *b = &c->blocks[i];
		switch (b->kind) {
		case VK_RES:
			f += conv_flops(&b->a.s, t, h, w) + conv_flops(&b->b.s, t, h, w);
			if (b->has_sc)
				f += conv_flops(&b->sc.s, t, h, w);
			break;
		case VK_ATTN: {
			double n = (double)h * w;
			f += conv_flops(&b->a.s, t, h, w) + conv_flops(&b->b.s, t, h, w);
			f += t * 4.0 * n * n * b->cin;
			break;
		}
		case VK_DOWN2D:
		case VK_DOWN3D:
			h /= 2;
			w /= 2;
			f += conv_flops(&b->a.s, t, h, w);
			if (b->kind == VK_DOWN3D) {
				t = (t + 1 - 3) / 2 + 1;
				f += conv_flops(&b->b.s, t, h, w);
			}
			break;
		default:
			if (b->kind == VK_UP3D) {
				f += conv_flops(&b->b.s, t, h, w);
				t *= 2;
			}
			h *= 2;
			w *= 2;
			f += conv_flops(&b->a.s, t, h, w);
			break;
		}
	}
	return f + conv_flops(&c->head.s, t, h, w);
}

double vae_flops_encode(const struct vae_config *cfg, int h, int w)
{
	struct vae_model m;
	memset(&m, 0, sizeof(m));
	double f = -1.0;
	if (build(&m, cfg, VAE_LOAD_ENCODER) == 0) {
		int sp = vae_config_spatial(cfg);
		f = coder_flops(&m.enc, vae_config_temporal(cfg), h, w) +
		    conv_flops(&m.quant.s, 1, h / sp, w / sp);
	}
	free(m.enc.blocks);
	return f;
}

double vae_flops_decode(const struct vae_config *cfg, int h, int w)
{
	struct vae_model m;
	memset(&m, 0, sizeof(m));
	double f = -1.0;
	if (build(&m, cfg, VAE_LOAD_DECODER) == 0) {
		int sp = vae_config_spatial(cfg);
		f = coder_flops(&m.dec, 1, h / sp, w / sp) + conv_flops(&m.post_quant.s, 1, h / sp, w / sp);
	}
	free(m.dec.blocks);
	return f;
}
