/* wan_dit_weights.c: the DiT state dict table of spec §3.1 for any config. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wan_dit_weights.h"

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

void wan_dit_weights_block(const struct wan_dit_config *c, int i,
			   struct wan_dit_weight out[WAN_DIT_BLOCK_TENSORS])
{
	static const char *const proj[4] = { "q", "k", "v", "o" };
	const int64_t D = c->dim, F = c->ffn_dim;
	struct wan_dit_weight *w = out;
	char name[32];

	set(w++, i, "modulation", N, 3, 1, 6, D, 0, 0);
	for (int p = 0; p < 4; p++) {
		snprintf(name, sizeof name, "self_attn.%s.weight", proj[p]);
		set(w++, i, name, N, 2, D, D, 0, 0, 0);
		snprintf(name, sizeof name, "self_attn.%s.bias", proj[p]);
		set(w++, i, name, N, 1, D, 0, 0, 0, 0);
	}
	set(w++, i, "self_attn.norm_q.weight", WAN_INIT_ONES, 1, D, 0, 0, 0, 0);
	set(w++, i, "self_attn.norm_k.weight", WAN_INIT_ONES, 1, D, 0, 0, 0, 0);
	set(w++, i, "norm3.weight", WAN_INIT_ONES, 1, D, 0, 0, 0, 0);
	set(w++, i, "norm3.bias", WAN_INIT_ZEROS, 1, D, 0, 0, 0, 0);
	for (int p = 0; p < 4; p++) {
		snprintf(name, sizeof name, "cross_attn.%s.weight", proj[p]);
		set(w++, i, name, N, 2, D, D, 0, 0, 0);
		snprintf(name, sizeof name, "cross_attn.%s.bias", proj[p]);
		set(w++, i, name, N, 1, D, 0, 0, 0, 0);
	}
	set(w++, i, "cross_attn.norm_q.weight", WAN_INIT_ONES, 1, D, 0, 0, 0, 0);
	set(w++, i, "cross_attn.norm_k.weight", WAN_INIT_ONES, 1, D, 0, 0, 0, 0);
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
