/* wan_dit_weights.c: the DiT state dict table of spec §3.1 for any config. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wan_dit_weights.h"
#include "wt_file.h"

static void set(struct wan_dit_weight *w, int block, const char *name, enum wan_weight_init init,
		int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3, int64_t d4)
{
	const int64_t d[WAN_WEIGHT_MAX_DIMS] = { d0, d1, d2, d3, d4 };

	memset(w, 0, sizeof *w);
	if (block >= 0)
		snprintf(w->name, sizeof w->name, "blocks.%d.%s", block, name);
	else
		snprintf(w->name, sizeof w->name, "%s", name);
	w->ndim = ndim;
	memcpy(w->shape, d, sizeof d);
	for (int i = ndim; i < WAN_WEIGHT_MAX_DIMS; i++)
		w->shape[i] = 0;
	w->init = init;
	w->block = block;
}

#define N WAN_INIT_NORMAL

/* The tensors of attention ATTN ("self_attn" or "cross_attn") of block I at W; returns the
 * slot after them. */
static struct wan_dit_weight *attn_weights(struct wan_dit_weight *w, int i, const char *attn,
					   int64_t D)
{
	static const char *const proj[4] = { "q", "k", "v", "o" };
	char name[32];

	for (int p = 0; p < 4; p++) {
		snprintf(name, sizeof name, "%s.%s.weight", attn, proj[p]);
		set(w++, i, name, N, 2, D, D, 0, 0, 0);
		snprintf(name, sizeof name, "%s.%s.bias", attn, proj[p]);
		set(w++, i, name, N, 1, D, 0, 0, 0, 0);
	}
	snprintf(name, sizeof name, "%s.norm_q.weight", attn);
	set(w++, i, name, WAN_INIT_ONES, 1, D, 0, 0, 0, 0);
	snprintf(name, sizeof name, "%s.norm_k.weight", attn);
	set(w++, i, name, WAN_INIT_ONES, 1, D, 0, 0, 0, 0);
	return w;
}

void wan_dit_weights_block(const struct wan_dit_config *c, int i,
			   struct wan_dit_weight out[WAN_DIT_BLOCK_TENSORS])
{
	const int64_t D = c->dim, F = c->ffn_dim;
	struct wan_dit_weight *w = out;

	set(w++, i, "modulation", N, 3, 1, 6, D, 0, 0);
	w = attn_weights(w, i, "self_attn", D);
	set(w++, i, "norm3.weight", WAN_INIT_ONES, 1, D, 0, 0, 0, 0);
	set(w++, i, "norm3.bias", WAN_INIT_ZEROS, 1, D, 0, 0, 0, 0);
	w = attn_weights(w, i, "cross_attn", D);
	set(w++, i, "ffn.0.weight", N, 2, F, D, 0, 0, 0);
	set(w++, i, "ffn.0.bias", N, 1, F, 0, 0, 0, 0);
	set(w++, i, "ffn.2.weight", N, 2, D, F, 0, 0, 0);
	set(w++, i, "ffn.2.bias", N, 1, D, 0, 0, 0, 0);
}

static void globals(const struct wan_dit_config *c, struct wan_dit_weight *w)
{
	const int64_t D = c->dim;

	set(w++, -1, "patch_embedding.weight", N, 5, D, c->in_dim, 1, 2, 2);
	set(w++, -1, "patch_embedding.bias", N, 1, D, 0, 0, 0, 0);
	set(w++, -1, "text_embedding.0.weight", N, 2, D, c->text_dim, 0, 0, 0);
	set(w++, -1, "text_embedding.0.bias", N, 1, D, 0, 0, 0, 0);
	set(w++, -1, "text_embedding.2.weight", N, 2, D, D, 0, 0, 0);
	set(w++, -1, "text_embedding.2.bias", N, 1, D, 0, 0, 0, 0);
	set(w++, -1, "time_embedding.0.weight", N, 2, D, c->freq_dim, 0, 0, 0);
	set(w++, -1, "time_embedding.0.bias", N, 1, D, 0, 0, 0, 0);
	set(w++, -1, "time_embedding.2.weight", N, 2, D, D, 0, 0, 0);
	set(w++, -1, "time_embedding.2.bias", N, 1, D, 0, 0, 0, 0);
	set(w++, -1, "time_projection.1.weight", N, 2, 6 * D, D, 0, 0, 0);
	set(w++, -1, "time_projection.1.bias", N, 1, 6 * D, 0, 0, 0, 0);
	set(w++, -1, "head.modulation", N, 3, 1, 2, D, 0, 0);
	/* patch (1,2,2): 4 output values per channel per token */
	set(w++, -1, "head.head.weight", N, 2, 4 * (int64_t)c->out_dim, D, 0, 0, 0);
	set(w++, -1, "head.head.bias", N, 1, 4 * (int64_t)c->out_dim, 0, 0, 0, 0);
}

#undef N

struct wan_dit_weight *wan_dit_weights_new(const struct wan_dit_config *c, size_t *count)
{
	size_t n = WAN_DIT_GLOBAL_TENSORS + (size_t)WAN_DIT_BLOCK_TENSORS * (size_t)c->num_layers;
	struct wan_dit_weight *w = calloc(n, sizeof *w);

	if (!w)
		return NULL;
	globals(c, w);
	for (int i = 0; i < c->num_layers; i++)
		wan_dit_weights_block(c, i, w + WAN_DIT_GLOBAL_TENSORS + (size_t)i * WAN_DIT_BLOCK_TENSORS);
	*count = n;
	return w;
}

int64_t wan_dit_weight_numel(const struct wan_dit_weight *w)
{
	int64_t n = 1;

	for (int i = 0; i < w->ndim; i++)
		n *= w->shape[i];
	return n;
}

int64_t wan_dit_param_count(const struct wan_dit_config *c)
{
	struct wan_dit_weight g[WAN_DIT_GLOBAL_TENSORS], b[WAN_DIT_BLOCK_TENSORS];
	int64_t total = 0, block = 0;

	globals(c, g);
	wan_dit_weights_block(c, 0, b);
	for (int i = 0; i < WAN_DIT_GLOBAL_TENSORS; i++)
		total += wan_dit_weight_numel(&g[i]);
	for (int i = 0; i < WAN_DIT_BLOCK_TENSORS; i++)
		block += wan_dit_weight_numel(&b[i]);
	return total + block * c->num_layers;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int wan_dit_weights_check(const struct wt_file *f, const struct wan_dit_config *c, int strict,
			  char *err, size_t errlen)
{
	struct wan_dit_weight *tab;
	const char **names = NULL;
	size_t n;
	int rc = -1;

	tab = wan_dit_weights_new(c, &n);
	if (!tab || !(names = malloc(n * sizeof *names))) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		const struct wt_tensor *t = wt_find(f, tab[i].name);
		char want[128], got[128];
		int same;

		if (!t) {
			snprintf(err, errlen, "'%s' has no tensor '%s' (nor 'model.%s'): not a Wan2.1 "
				 "DiT checkpoint for this config", wt_path(f), tab[i].name, tab[i].name);
			goto done;
		}
		same = t->ndim == tab[i].ndim;
		for (int d = 0; same && d < t->ndim; d++)
			same = t->shape[d] == tab[i].shape[d];
		if (!same) {
			snprintf(err, errlen, "'%s': tensor '%s' has shape %s, expected %s for this "
				 "config", wt_path(f), t->name,
				 wt_shape_str(t->ndim, t->shape, got, sizeof got),
				 wt_shape_str(tab[i].ndim, tab[i].shape, want, sizeof want));
			goto done;
		}
		if (t->dtype != WT_F32 && t->dtype != WT_BF16 && t->dtype != WT_F16 &&
		    t->dtype != WT_F64) {
			snprintf(err, errlen, "'%s': tensor '%s' has dtype %s, expected a float type",
				 wt_path(f), t->name, wt_dtype_name(t->dtype));
			goto done;
		}
		names[i] = t->name;
	}
	if (strict) {
		qsort(names, n, sizeof *names, cmp_str);
		for (size_t i = 0; i < wt_count(f); i++) {
			const char *nm = wt_at(f, i)->name;

			if (!bsearch(&nm, names, n, sizeof *names, cmp_str)) {
				snprintf(err, errlen, "'%s' holds tensor '%s', which a Wan2.1 DiT of this "
					 "config does not have", wt_path(f), nm);
				goto done;
			}
		}
	}
	rc = 0;
done:
	free(names);
	free(tab);
	return rc;
}

struct wt_file *wan_dit_weights_open(const char *path, const struct wan_dit_config *c,
				     char *err, size_t errlen)
{
	struct wt_file *f;

	if (!path || !*path) {
		snprintf(err, errlen, "no DiT weights given: pass StreamDiffusionV2's model.pt, a "
			 "Wan2.1 diffusion_pytorch_model*.safetensors(.index.json), or make random "
			 "ones with 'heru-wan random-weights --model M --out FILE.safetensors'");
		return NULL;
	}
	if (access(path, F_OK) < 0) {
		snprintf(err, errlen, "DiT weights '%s' not found: download StreamDiffusionV2's "
			 "ckpts/wan_causal_dmd_v2v/model.pt (1.3B) or ckpts/wan_causal_dmd_v2v_14b/model.pt "
			 "(14B), or make random ones with 'heru-wan random-weights --model M --out %s'",
			 path, path);
		return NULL;
	}
	f = wt_open(path, err, errlen);
	if (f && wan_dit_weights_check(f, c, 1, err, errlen) < 0) {
		wt_close(f);
		return NULL;
	}
	return f;
}

/* ---- random weights ---- */

/* Counter-based generator: element pairs are hashed from (tensor key, pair index), so the
 * values do not depend on how the writer cuts the tensor into pieces or on thread count. */
static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

struct rw_fill {
	uint64_t key;
	enum wan_weight_init init;
	enum wt_dtype dtype;
	float std;
};

static void store(const struct rw_fill *f, unsigned char *dst, int64_t i, float v)
{
	if (f->dtype == WT_F32) {
		memcpy(dst + 4 * i, &v, 4);
	} else {
		uint16_t h = f->dtype == WT_BF16 ? wt_f32_to_bf16(v) : wt_f32_to_f16(v);

		memcpy(dst + 2 * i, &h, 2);
	}
}

static void rw_fill_fn(void *ctx, int64_t first, int64_t count, void *dst)
{
	const struct rw_fill *f = ctx;
	unsigned char *out = dst;

	if (f->init != WAN_INIT_NORMAL) {
		float v = f->init == WAN_INIT_ONES ? 1.0f : 0.0f;

		for (int64_t i = 0; i < count; i++)
			store(f, out, i, v);
		return;
	}
	for (int64_t p = first / 2; p * 2 < first + count; p++) {
		uint64_t r = splitmix64(f->key ^ splitmix64((uint64_t)p));
		/* u1 in (0, 1], u2 in [0, 1): 24 bits each */
		float u1 = (float)((r >> 40) + 1) * (1.0f / 16777216.0f);
		float u2 = (float)(r & 0xffffff) * (1.0f / 16777216.0f);
		float rad = sqrtf(-2.0f * logf(u1)) * f->std;
		float a = 6.28318530717958647692f * u2;
		int64_t e0 = 2 * p, e1 = 2 * p + 1;

		if (e0 >= first)
			store(f, out, e0 - first, rad * cosf(a));
		if (e1 < first + count)
			store(f, out, e1 - first, rad * sinf(a));
	}
}

int wan_dit_random_weights_save(const struct wan_dit_config *c, const char *model_label,
				const char *path, uint64_t seed, enum wt_dtype dtype,
				const char *prefix, int threads, char *err, size_t errlen)
{
	struct wan_dit_weight *tab = NULL;
	struct rw_fill *fills = NULL;
	struct wt_writer *w = NULL;
	char name[WAN_WEIGHT_NAME_MAX + 64], sbuf[32];
	size_t n = 0;
	int rc = -1;

	if (dtype != WT_F32 && dtype != WT_BF16 && dtype != WT_F16) {
		snprintf(err, errlen, "random weights can be f32, bf16 or f16, not %s",
			 wt_dtype_name(dtype));
		return -1;
	}
	if (!prefix)
		prefix = "";
	if (strlen(prefix) > 32) {
		snprintf(err, errlen, "name prefix '%.40s' is longer than 32 bytes", prefix);
		return -1;
	}
	tab = wan_dit_weights_new(c, &n);
	fills = calloc(n ? n : 1, sizeof *fills);
	w = wt_writer_new();
	if (!tab || !fills || !w) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	if (threads > 0)
		wt_writer_set_threads(w, threads);
	for (size_t i = 0; i < n; i++) {
		fills[i] = (struct rw_fill){ splitmix64(seed ^ fnv1a(tab[i].name)), tab[i].init, dtype,
					     0.02f };
		snprintf(name, sizeof name, "%s%s", prefix, tab[i].name);
		if (wt_writer_add_fill(w, name, dtype, tab[i].ndim, tab[i].shape, rw_fill_fn,
				       &fills[i], err, errlen) < 0)
			goto done;
	}
	snprintf(sbuf, sizeof sbuf, "%llu", (unsigned long long)seed);
	if (wt_writer_set_metadata(w, "format", "pt", err, errlen) < 0 ||
	    wt_writer_set_metadata(w, "heru_random_seed", sbuf, err, errlen) < 0 ||
	    (model_label &&
	     wt_writer_set_metadata(w, "heru_model", model_label, err, errlen) < 0))
		goto done;
	rc = wt_writer_save(w, path, err, errlen);
done:
	wt_writer_free(w);
	free(fills);
	free(tab);
	return rc;
}
