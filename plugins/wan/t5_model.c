/* t5_model.c: umT5 configs and checkpoint validation (see t5_model.h). */
#include "t5_model.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <pthread.h>
#include <unistd.h>

#include "wan_err.h"

void t5_config_umt5_xxl(struct t5_config *c)
{
	c->vocab_size = 256384;
	c->dim = 4096;
	c->dim_attn = 4096;
	c->dim_ffn = 10240;
	c->num_heads = 64;
	c->num_layers = 24;
	c->num_buckets = 32;
	c->head_dim = 64;
	c->max_dist = 128;
	c->eps = 1e-6;
}

int t5_config_validate(const struct t5_config *c, char *err, size_t errlen)
{
	if (c->vocab_size < 1 || c->vocab_size > T5_MAX_VOCAB) {
		wt_seterr(err, errlen, "t5 config: vocab_size %d is out of range [1, %d]", c->vocab_size, T5_MAX_VOCAB);
		return -1;
	}
	if (c->dim < 1 || c->dim > T5_MAX_DIM || c->dim_attn < 1 || c->dim_attn > T5_MAX_DIM ||
	    c->dim_ffn < 1 || c->dim_ffn > 4 * T5_MAX_DIM) {
		wt_seterr(err, errlen, "t5 config: dim %d, dim_attn %d or dim_ffn %d is out of range", c->dim,
			c->dim_attn, c->dim_ffn);
		return -1;
	}
	if (c->num_heads < 1 || c->dim_attn % c->num_heads) {
		wt_seterr(err, errlen, "t5 config: dim_attn %d is not a multiple of num_heads %d", c->dim_attn,
			c->num_heads);
		return -1;
	}
	if (c->num_layers < 1 || c->num_layers > T5_MAX_LAYERS) {
		wt_seterr(err, errlen, "t5 config: num_layers %d is out of range [1, %d]", c->num_layers, T5_MAX_LAYERS);
		return -1;
	}
	if (c->num_buckets < 4 || c->num_buckets > 1024 || c->num_buckets % 4) {
		wt_seterr(err, errlen, "t5 config: num_buckets %d must be a multiple of 4 in [4, 1024]", c->num_buckets);
		return -1;
	}
	if (c->max_dist <= c->num_buckets / 4 || !(c->eps > 0)) {
		wt_seterr(err, errlen, "t5 config: max_dist %d or eps %g is invalid", c->max_dist, c->eps);
		return -1;
	}
	return 0;
}

static int get_int(json_t *root, const char *key, int *out, const char *src, char *err, size_t errlen)
{
	json_t *v = json_object_get(root, key);
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (1 << 30)) {
		wt_seterr(err, errlen, "%s: \"%s\" must be a non-negative integer", src, key);
		return -1;
	}
	*out = (int)json_integer_value(v);
	return 0;
}

int t5_config_parse(const char *json, size_t len, const char *source, struct t5_config *out, char *err,
		    size_t errlen)
{
	json_error_t je;
	json_t *root = json_loadb(json, len, 0, &je);
	struct t5_config c;
	int rc = -1;

	if (!root || !json_is_object(root)) {
		wt_seterr(err, errlen, "%s: not a JSON object%s%s", source, root ? "" : ": ", root ? "" : je.text);
		goto out;
	}
	t5_config_umt5_xxl(&c);
	if (get_int(root, "vocab_size", &c.vocab_size, source, err, errlen) ||
	    get_int(root, "dim", &c.dim, source, err, errlen) ||
	    get_int(root, "dim_attn", &c.dim_attn, source, err, errlen) ||
	    get_int(root, "dim_ffn", &c.dim_ffn, source, err, errlen) ||
	    get_int(root, "num_heads", &c.num_heads, source, err, errlen) ||
	    get_int(root, "num_layers", &c.num_layers, source, err, errlen) ||
	    get_int(root, "num_buckets", &c.num_buckets, source, err, errlen))
		goto out;
	if (json_is_true(json_object_get(root, "shared_pos"))) {
		wt_seterr(err, errlen, "%s: shared_pos true (one relative bias for all layers) is not umT5 and not supported",
			source);
		goto out;
	}
	if (c.num_heads > 0)
		c.head_dim = c.dim_attn / c.num_heads;
	if (t5_config_validate(&c, err, errlen)) {
		char msg[256];
		snprintf(msg, sizeof(msg), "%s", err ? err : "");
		wt_seterr(err, errlen, "%s: %s", source, msg);
		goto out;
	}
	*out = c;
	rc = 0;
out:
	json_decref(root);
	return rc;
}

int t5_config_load(const char *spec, struct t5_config *out, char *err, size_t errlen)
{
	FILE *f;
	char buf[1 << 16];
	size_t n;

	if (!strcasecmp(spec, "umt5-xxl") || !strcasecmp(spec, "xxl")) {
		t5_config_umt5_xxl(out);
		return 0;
	}
	f = fopen(spec, "rb");
	if (!f) {
		wt_seterr(err, errlen, "cannot open t5 config '%s': %s (use umt5-xxl or a JSON file)", spec, strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf), f);
	if (!feof(f)) {
		fclose(f);
		wt_seterr(err, errlen, "t5 config '%s' is larger than %zu bytes", spec, sizeof(buf));
		return -1;
	}
	fclose(f);
	return t5_config_parse(buf, n, spec, out, err, errlen);
}

int t5_config_from_file(const struct wt_file *f, struct t5_config *out, char *err, size_t errlen)
{
	const struct wt_tensor *emb = wt_find(f, "token_embedding.weight");
	const struct wt_tensor *q = wt_find(f, "blocks.0.attn.q.weight");
	const struct wt_tensor *fc1 = wt_find(f, "blocks.0.ffn.fc1.weight");
	const struct wt_tensor *pos = wt_find(f, "blocks.0.pos_embedding.embedding.weight");
	struct t5_config c;
	char name[64];

	if (!emb || !q || !fc1 || !pos || emb->ndim != 2 || q->ndim != 2 || fc1->ndim != 2 || pos->ndim != 2) {
		wt_seterr(err, errlen, "'%s' does not look like a umT5 encoder checkpoint (token_embedding.weight, "
			"blocks.0.attn.q.weight, blocks.0.ffn.fc1.weight, blocks.0.pos_embedding.embedding.weight)",
			wt_path(f));
		return -1;
	}
	t5_config_umt5_xxl(&c);
	c.vocab_size = (int)(emb->shape[0] > T5_MAX_VOCAB ? -1 : emb->shape[0]);
	c.dim = (int)(emb->shape[1] > T5_MAX_DIM ? -1 : emb->shape[1]);
	c.dim_attn = (int)(q->shape[0] > T5_MAX_DIM ? -1 : q->shape[0]);
	c.dim_ffn = (int)(fc1->shape[0] > 4 * T5_MAX_DIM ? -1 : fc1->shape[0]);
	c.num_buckets = (int)(pos->shape[0] > 1024 ? -1 : pos->shape[0]);
	c.num_heads = (int)(pos->shape[1] > T5_MAX_DIM ? -1 : pos->shape[1]);
	for (c.num_layers = 0; c.num_layers < T5_MAX_LAYERS; c.num_layers++) {
		snprintf(name, sizeof(name), "blocks.%d.attn.q.weight", c.num_layers);
		if (!wt_find(f, name))
			break;
	}
	if (c.num_heads > 0)
		c.head_dim = c.dim_attn / c.num_heads;
	if (t5_config_validate(&c, err, errlen))
		return -1;
	*out = c;
	return 0;
}

int64_t t5_config_params(const struct t5_config *c)
{
	int64_t d = c->dim, da = c->dim_attn, f = c->dim_ffn;
	int64_t layer = 2 * d + 4 * d * da + 3 * d * f + (int64_t)c->num_buckets * c->num_heads;
	return (int64_t)c->vocab_size * d + c->num_layers * layer + d;
}

double t5_config_flops(const struct t5_config *c, int len)
{
	double d = c->dim, da = c->dim_attn, f = c->dim_ffn, l = len;
	double proj = 2.0 * l * (4 * d * da + 3 * d * f);
	double attn = 2.0 * 2.0 * l * l * da;
	return c->num_layers * (proj + attn);
}

int t5_rel_bucket(int rel, int num_buckets, int max_dist)
{
	int half = num_buckets / 2, exact = half / 2;
	int bucket = rel > 0 ? half : 0;
	int n = rel < 0 ? -rel : rel;
	if (n < exact)
		return bucket + n;
	/* torch: log(n.float() / exact) / math.log(max_dist / exact) * (half - exact), float32, .long() */
	float r = logf((float)n / (float)exact);
	r = r / (float)log((double)max_dist / exact);
	r = r * (float)(half - exact);
	int large = exact + (int)r;
	return bucket + (large < half - 1 ? large : half - 1);
}

/* ---- checkpoint validation ---- */

static const struct wt_tensor *need(const struct wt_file *f, const char *name, int64_t d0, int64_t d1,
				    int *count, char *err, size_t errlen)
{
	const struct wt_tensor *t = wt_find(f, name);
	int64_t shape[2] = {d0, d1};
	int ndim = d1 ? 2 : 1;
	char want[64], got[160];
	if (!t) {
		wt_seterr(err, errlen, "'%s' has no tensor '%s'", wt_path(f), name);
		return NULL;
	}
	if (t->dtype != WT_F32 && t->dtype != WT_BF16 && t->dtype != WT_F16) {
		wt_seterr(err, errlen, "'%s': tensor '%s' is %s, not a float type", wt_path(f), name, wt_dtype_name(t->dtype));
		return NULL;
	}
	if (t->ndim != ndim || t->shape[0] != d0 || (ndim == 2 && t->shape[1] != d1)) {
		wt_seterr(err, errlen, "'%s': tensor '%s' has shape %s, the config wants %s", wt_path(f), name,
			wt_shape_str(t->ndim, t->shape, got, sizeof(got)), wt_shape_str(ndim, shape, want, sizeof(want)));
		return NULL;
	}
	(*count)++;
	return t;
}

static const char *const layer_suffixes[] = {
	"norm1.weight", "attn.q.weight", "attn.k.weight", "attn.v.weight", "attn.o.weight", "norm2.weight",
	"ffn.gate.0.weight", "ffn.fc1.weight", "ffn.fc2.weight", "pos_embedding.embedding.weight",
};

int t5_weights_init(struct t5_weights *w, const struct wt_file *f, const struct t5_config *cfg, char *err,
		    size_t errlen)
{
	const int64_t d = cfg->dim, da = cfg->dim_attn, ff = cfg->dim_ffn;
	char name[96];
	int count = 0;

	memset(w, 0, sizeof(*w));
	if (t5_config_validate(cfg, err, errlen))
		return -1;
	w->cfg = *cfg;
	w->file = f;
	w->layers = calloc((size_t)cfg->num_layers, sizeof(*w->layers));
	if (!w->layers) {
		wt_seterr(err, errlen, "out of memory");
		return -1;
	}
	if (!(w->embedding = need(f, "token_embedding.weight", cfg->vocab_size, d, &count, err, errlen)) ||
	    !(w->norm = need(f, "norm.weight", d, 0, &count, err, errlen)))
		goto fail;
	for (int i = 0; i < cfg->num_layers; i++) {
		struct t5_layer_tensors *L = &w->layers[i];
#define NEED(field, suffix, a, b)                                                   \
	do {                                                                        \
		snprintf(name, sizeof(name), "blocks.%d.%s", i, suffix);            \
		if (!(L->field = need(f, name, a, b, &count, err, errlen)))         \
			goto fail;                                                  \
	} while (0)
		NEED(norm1, "norm1.weight", d, 0);
		NEED(q, "attn.q.weight", da, d);
		NEED(k, "attn.k.weight", da, d);
		NEED(v, "attn.v.weight", da, d);
		NEED(o, "attn.o.weight", d, da);
		NEED(norm2, "norm2.weight", d, 0);
		NEED(gate, "ffn.gate.0.weight", ff, d);
		NEED(fc1, "ffn.fc1.weight", ff, d);
		NEED(fc2, "ffn.fc2.weight", d, ff);
		NEED(pos, "pos_embedding.embedding.weight", cfg->num_buckets, cfg->num_heads);
#undef NEED
	}
	if ((size_t)count != wt_count(f)) {
		/* strict load: name the first tensor the config does not explain */
		for (size_t i = 0; i < wt_count(f); i++) {
			const struct wt_tensor *t = wt_at(f, i);
			const char *n = t->name;
			int ok = 0;
			if (!strncmp(n, "model.", 6))
				n += 6;
			if (!strcmp(n, "token_embedding.weight") || !strcmp(n, "norm.weight"))
				ok = 1;
			int li, off = 0;
			if (sscanf(n, "blocks.%d.%n", &li, &off) == 1 && off > 0 && li >= 0 && li < cfg->num_layers)
				for (size_t s = 0; s < sizeof(layer_suffixes) / sizeof(*layer_suffixes); s++)
					ok |= !strcmp(n + off, layer_suffixes[s]);
			if (!ok) {
				wt_seterr(err, errlen, "'%s' has an unexpected tensor '%s' for a %d-layer umT5 encoder",
					wt_path(f), t->name, cfg->num_layers);
				goto fail;
			}
		}
		wt_seterr(err, errlen, "'%s' holds %zu tensors, the config expects %d", wt_path(f), wt_count(f), count);
		goto fail;
	}
	return 0;
fail:
	t5_weights_release(w);
	return -1;
}

void t5_weights_release(struct t5_weights *w)
{
	free(w->layers);
	w->layers = NULL;
}

int t5_tensor_row_f32(const struct wt_tensor *t, int64_t row, float *dst)
{
	int64_t n = t->shape[1];
	size_t es = wt_dtype_size(t->dtype);
	const unsigned char *p;
	if (t->ndim != 2 || row < 0 || row >= t->shape[0])
		return -1;
	p = (const unsigned char *)t->data + (size_t)(row * n) * es;
	for (int64_t i = 0; i < n; i++) {
		if (t->dtype == WT_F32) {
			memcpy(&dst[i], p + 4 * i, 4);
		} else if (t->dtype == WT_BF16 || t->dtype == WT_F16) {
			uint16_t h;
			memcpy(&h, p + 2 * i, 2);
			dst[i] = t->dtype == WT_BF16 ? wt_bf16_to_f32(h) : wt_f16_to_f32(h);
		} else {
			return -1;
		}
	}
	return 0;
}

/* ---- random weights ---- */

struct t5_random {
	struct wt_tensor *t; /* new [cap] */
	uint16_t **buf;      /* new [cap], each new */
	int n, cap;
};

struct fill_job {
	uint16_t *dst;
	int64_t lo, hi;
	uint64_t seed;
	float scale, offset;
};

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void *fill_main(void *arg)
{
	const struct fill_job *j = arg;
	for (int64_t i = j->lo; i < j->hi; i++) {
		float u = (float)(mix64(j->seed + (uint64_t)i) >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f;
		j->dst[i] = wt_f32_to_bf16(j->offset + j->scale * u);
	}
	return NULL;
}

static const struct wt_tensor *rnd(struct t5_random *r, const char *name, int64_t d0, int64_t d1, float scale,
				   float offset, uint64_t seed, int threads)
{
	int64_t n = d0 * (d1 ? d1 : 1);
	struct wt_tensor *t = &r->t[r->n];
	uint16_t *b = malloc(sizeof(uint16_t) * (size_t)n);
	struct fill_job jobs[64];
	pthread_t tid[64];
	int started[64] = {0};
	if (!b)
		return NULL;
	if (threads > 64)
		threads = 64;
	if (n < 1 << 16)
		threads = 1;
	for (int k = 0; k < threads; k++) {
		jobs[k] = (struct fill_job){b, n * k / threads, n * (k + 1) / threads, mix64(seed) << 20, scale, offset};
		if (k > 0)
			started[k] = pthread_create(&tid[k], NULL, fill_main, &jobs[k]) == 0;
	}
	fill_main(&jobs[0]);
	for (int k = 1; k < threads; k++) {
		if (started[k])
			pthread_join(tid[k], NULL);
		else
			fill_main(&jobs[k]);
	}
	t->name = name;
	t->dtype = WT_BF16;
	t->ndim = d1 ? 2 : 1;
	t->shape[0] = d0;
	t->shape[1] = d1;
	t->data = b;
	t->nbytes = sizeof(uint16_t) * (size_t)n;
	r->buf[r->n++] = b;
	return t;
}

struct t5_random *t5_weights_random(struct t5_weights *w, const struct t5_config *c, uint64_t seed, int threads,
				    char *err, size_t errlen)
{
	struct t5_random *r = calloc(1, sizeof(*r));
	float sd = 1.7f / sqrtf((float)c->dim), sa = 1.7f / sqrtf((float)c->dim_attn), sf = 1.7f / sqrtf((float)c->dim_ffn);

	memset(w, 0, sizeof(*w));
	if (threads <= 0) {
		long nc = sysconf(_SC_NPROCESSORS_ONLN);
		threads = nc > 0 ? (int)nc : 1;
	}
	if (!r || t5_config_validate(c, err, errlen))
		goto fail;
	r->cap = 2 + 10 * c->num_layers;
	r->t = calloc((size_t)r->cap, sizeof(*r->t));
	r->buf = calloc((size_t)r->cap, sizeof(*r->buf));
	w->layers = calloc((size_t)c->num_layers, sizeof(*w->layers));
	if (!r->t || !r->buf || !w->layers)
		goto oom;
	w->cfg = *c;
	w->embedding = rnd(r, "token_embedding.weight", c->vocab_size, c->dim, 1.0f, 0, seed * 1000 + 1, threads);
	w->norm = rnd(r, "norm.weight", c->dim, 0, 0.1f, 1.0f, seed * 1000 + 2, threads);
	if (!w->embedding || !w->norm)
		goto oom;
	for (int l = 0; l < c->num_layers; l++) {
		struct t5_layer_tensors *L = &w->layers[l];
		uint64_t s = seed * 1000 + 16 + 16 * (uint64_t)l;
		/* q and k scaled down: without 1/sqrt(d) the logits would otherwise saturate softmax */
		if (!(L->norm1 = rnd(r, "norm1.weight", c->dim, 0, 0.1f, 1.0f, s, threads)) ||
		    !(L->q = rnd(r, "attn.q.weight", c->dim_attn, c->dim, 0.25f * sd, 0, s + 1, threads)) ||
		    !(L->k = rnd(r, "attn.k.weight", c->dim_attn, c->dim, 0.25f * sd, 0, s + 2, threads)) ||
		    !(L->v = rnd(r, "attn.v.weight", c->dim_attn, c->dim, sd, 0, s + 3, threads)) ||
		    !(L->o = rnd(r, "attn.o.weight", c->dim, c->dim_attn, sa, 0, s + 4, threads)) ||
		    !(L->norm2 = rnd(r, "norm2.weight", c->dim, 0, 0.1f, 1.0f, s + 5, threads)) ||
		    !(L->gate = rnd(r, "ffn.gate.0.weight", c->dim_ffn, c->dim, sd, 0, s + 6, threads)) ||
		    !(L->fc1 = rnd(r, "ffn.fc1.weight", c->dim_ffn, c->dim, sd, 0, s + 7, threads)) ||
		    !(L->fc2 = rnd(r, "ffn.fc2.weight", c->dim, c->dim_ffn, sf, 0, s + 8, threads)) ||
		    !(L->pos = rnd(r, "pos_embedding.embedding.weight", c->num_buckets, c->num_heads, 1.0f, 0, s + 9,
				   threads)))
			goto oom;
	}
	return r;
oom:
	wt_seterr(err, errlen, "out of memory for random weights of %lld parameters", (long long)t5_config_params(c));
fail:
	free(w->layers);
	w->layers = NULL;
	t5_random_free(r);
	return NULL;
}

void t5_random_free(struct t5_random *r)
{
	if (!r)
		return;
	for (int i = 0; i < r->n; i++)
		free(r->buf[i]);
	free(r->t);
	free(r->buf);
	free(r);
}
