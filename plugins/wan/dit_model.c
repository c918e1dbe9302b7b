/* dit_model.c: loading the DiT weights (dit_model.h). */
#include "dit_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wan_dit_weights.h"
#include "wt_file.h"

/* Every weight pointer of the model, in one list, so loading and freeing are one loop. */
struct slot_ref {
	float **dst;
	int block;          /* -1: global */
	const char *suffix; /* name after "blocks.N." or the global name */
};

static size_t model_slots(struct wan_dit_model *m, struct slot_ref *out)
{
	size_t n = 0;
#define G(ptr, name) out[n++] = (struct slot_ref){ &m->ptr, -1, name }
	G(patch_w, "patch_embedding.weight");
	G(patch_b, "patch_embedding.bias");
	G(text0_w, "text_embedding.0.weight");
	G(text0_b, "text_embedding.0.bias");
	G(text2_w, "text_embedding.2.weight");
	G(text2_b, "text_embedding.2.bias");
	G(time0_w, "time_embedding.0.weight");
	G(time0_b, "time_embedding.0.bias");
	G(time2_w, "time_embedding.2.weight");
	G(time2_b, "time_embedding.2.bias");
	G(tproj_w, "time_projection.1.weight");
	G(tproj_b, "time_projection.1.bias");
	G(head_mod, "head.modulation");
	G(head_w, "head.head.weight");
	G(head_b, "head.head.bias");
#undef G
	for (int i = 0; i < m->cfg.num_layers; i++) {
		struct wan_dit_block *b = &m->blocks[i];
#define B(ptr, name) out[n++] = (struct slot_ref){ &b->ptr, i, name }
		B(modulation, "modulation");
		B(sa_q_w, "self_attn.q.weight");
		B(sa_q_b, "self_attn.q.bias");
		B(sa_k_w, "self_attn.k.weight");
		B(sa_k_b, "self_attn.k.bias");
		B(sa_v_w, "self_attn.v.weight");
		B(sa_v_b, "self_attn.v.bias");
		B(sa_o_w, "self_attn.o.weight");
		B(sa_o_b, "self_attn.o.bias");
		B(sa_norm_q, "self_attn.norm_q.weight");
		B(sa_norm_k, "self_attn.norm_k.weight");
		B(norm3_w, "norm3.weight");
		B(norm3_b, "norm3.bias");
		B(ca_q_w, "cross_attn.q.weight");
		B(ca_q_b, "cross_attn.q.bias");
		B(ca_k_w, "cross_attn.k.weight");
		B(ca_k_b, "cross_attn.k.bias");
		B(ca_v_w, "cross_attn.v.weight");
		B(ca_v_b, "cross_attn.v.bias");
		B(ca_o_w, "cross_attn.o.weight");
		B(ca_o_b, "cross_attn.o.bias");
		B(ca_norm_q, "cross_attn.norm_q.weight");
		B(ca_norm_k, "cross_attn.norm_k.weight");
		B(ffn0_w, "ffn.0.weight");
		B(ffn0_b, "ffn.0.bias");
		B(ffn2_w, "ffn.2.weight");
		B(ffn2_b, "ffn.2.bias");
#undef B
	}
	return n;
}

void wan_dit_model_free(struct wan_dit_model *m)
{
	if (!m)
		return;
	if (m->blocks) {
		size_t n = 15 + (size_t)WAN_DIT_BLOCK_TENSORS * m->cfg.num_layers;
		struct slot_ref *refs = malloc(n * sizeof(*refs));
		if (refs) {
			size_t k = model_slots(m, refs);
			for (size_t i = 0; i < k; i++)
				free(*refs[i].dst);
			free(refs);
		}
	}
	free(m->blocks);
	free(m);
}

struct wan_dit_model *wan_dit_model_load(struct wt_file *f, const struct wan_dit_config *cfg,
					 char *err, size_t errlen)
{
	struct wan_dit_model *m = NULL;
	struct wan_dit_weight *table = NULL;
	struct slot_ref *refs = NULL;
	size_t count = 0;

	if (cfg->in_dim > 64 || cfg->in_dim < 1 || cfg->freq_dim % 2 || cfg->head_dim % 2 ||
	    cfg->head_dim > 256 || cfg->num_layers < 1) {
		snprintf(err, errlen,
			 "unsupported DiT config (in_dim %d, freq_dim %d, head_dim %d, layers %d)",
			 cfg->in_dim, cfg->freq_dim, cfg->head_dim, cfg->num_layers);
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		goto oom;
	m->cfg = *cfg;
	m->blocks = calloc((size_t)cfg->num_layers, sizeof(*m->blocks));
	table = wan_dit_weights_new(cfg, &count);
	refs = malloc((15 + (size_t)WAN_DIT_BLOCK_TENSORS * cfg->num_layers) * sizeof(*refs));
	if (!m->blocks || !table || !refs)
		goto oom;
	size_t n = model_slots(m, refs);
	for (size_t i = 0; i < n; i++) {
		char name[WAN_WEIGHT_NAME_MAX];
		if (refs[i].block < 0)
			snprintf(name, sizeof(name), "%s", refs[i].suffix);
		else
			snprintf(name, sizeof(name), "blocks.%d.%s", refs[i].block, refs[i].suffix);
		const struct wan_dit_weight *w = NULL;
		for (size_t j = 0; j < count && !w; j++)
			if (strcmp(table[j].name, name) == 0)
				w = &table[j];
		if (!w) {
			snprintf(err, errlen, "internal: weight '%s' is not in the DiT table", name);
			goto fail;
		}
		*refs[i].dst = wt_load_f32(f, name, w->ndim, w->shape, err, errlen);
		if (!*refs[i].dst)
			goto fail;
	}
	free(refs);
	free(table);
	return m;
oom:
	snprintf(err, errlen, "out of memory loading the DiT weights");
fail:
	free(refs);
	free(table);
	wan_dit_model_free(m);
	return NULL;
}

struct wan_dit_model *wan_dit_model_open(const char *path, const struct wan_dit_config *cfg,
					 char *err, size_t errlen)
{
	/* opens and checks the whole checkpoint first (missing, misshaped or unexpected
	 * tensors); a missing file's error says how to get weights */
	struct wt_file *f = wan_dit_weights_open(path, cfg, err, errlen);
	if (!f)
		return NULL;
	struct wan_dit_model *m = wan_dit_model_load(f, cfg, err, errlen);
	wt_close(f);
	return m;
}

int wan_dit_model_foreach(const struct wan_dit_model *m,
			  int (*fn)(void *ctx, const char *name, const float *data, size_t count),
			  void *ctx)
{
	size_t count = 0;
	int rc = -1;
	struct wan_dit_weight *table = wan_dit_weights_new(&m->cfg, &count);
	struct slot_ref *refs =
		malloc((15 + (size_t)WAN_DIT_BLOCK_TENSORS * m->cfg.num_layers) * sizeof(*refs));
	if (!table || !refs)
		goto done;
	/* model_slots only reads the pointers' addresses */
	size_t n = model_slots((struct wan_dit_model *)m, refs);
	rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		char name[WAN_WEIGHT_NAME_MAX];
		if (refs[i].block < 0)
			snprintf(name, sizeof(name), "%s", refs[i].suffix);
		else
			snprintf(name, sizeof(name), "blocks.%d.%s", refs[i].block, refs[i].suffix);
		size_t numel = 0;
		for (size_t j = 0; j < count; j++)
			if (strcmp(table[j].name, name) == 0)
				numel = (size_t)wan_dit_weight_numel(&table[j]);
		rc = fn(ctx, name, *refs[i].dst, numel);
	}
done:
	free(refs);
	free(table);
	return rc;
}
