/* dit_model.h: the Wan2.1 causal DiT weights in host fp32, loaded with every shape checked
 * against the config (names and shapes from wan_dit_weights, spec §3.1). */
#ifndef HERU_WAN_DIT_MODEL_H
#define HERU_WAN_DIT_MODEL_H

#include <stddef.h>

#include "wan_config.h"

#ifdef __cplusplus
extern "C" {
#endif

struct wt_file;

/* One transformer block (spec §2.5); all owned by the model. */
struct wan_dit_block {
	float *modulation;                         /* [6, D] */
	float *sa_q_w, *sa_q_b, *sa_k_w, *sa_k_b;  /* self_attn.{q,k}: [D, D], [D] */
	float *sa_v_w, *sa_v_b, *sa_o_w, *sa_o_b;
	float *sa_norm_q, *sa_norm_k;              /* [D] */
	float *norm3_w, *norm3_b;                  /* [D] */
	float *ca_q_w, *ca_q_b, *ca_k_w, *ca_k_b;  /* cross_attn.* */
	float *ca_v_w, *ca_v_b, *ca_o_w, *ca_o_b;
	float *ca_norm_q, *ca_norm_k;
	float *ffn0_w, *ffn0_b;                    /* [F, D], [F] */
	float *ffn2_w, *ffn2_b;                    /* [D, F], [D] */
};

struct wan_dit_model {
	struct wan_dit_config cfg;
	float *patch_w, *patch_b;       /* [D, in_dim*4] (conv [D, in, 1, 2, 2]), [D] */
	float *text0_w, *text0_b;       /* [D, text_dim], [D] */
	float *text2_w, *text2_b;       /* [D, D], [D] */
	float *time0_w, *time0_b;       /* [D, freq_dim], [D] */
	float *time2_w, *time2_b;       /* [D, D], [D] */
	float *tproj_w, *tproj_b;       /* time_projection.1: [6D, D], [6D] */
	float *head_mod;                /* [2, D] */
	float *head_w, *head_b;         /* [out_dim*4, D], [out_dim*4] */
	struct wan_dit_block *blocks;   /* [num_layers] */
};

/* Loads every tensor of the config from F (safetensors or torch checkpoint, optional "model."
 * prefix) converting to fp32. new, or NULL with ERR naming the file and the tensor. The
 * config must have in_dim <= 64, freq_dim even and head_dim even and <= 256. */
struct wan_dit_model *wan_dit_model_load(struct wt_file *f, const struct wan_dit_config *cfg,
					 char *err, size_t errlen);
/* Opens PATH, checks it strictly (wan_dit_weights_open: every tensor present with its shape,
 * nothing unexpected) and loads it; a missing file's error says how to get one. new. */
struct wan_dit_model *wan_dit_model_open(const char *path, const struct wan_dit_config *cfg,
					 char *err, size_t errlen);
void wan_dit_model_free(struct wan_dit_model *m);

/* Calls FN for every tensor with its state-dict name (spec §3.1, no "model." prefix), its
 * fp32 data (borrowed) and its element count, in wan_dit_weights order within each group
 * (for devices that upload the weights). Stops at FN's first nonzero return and returns it;
 * 0 when all were visited, -1 when out of memory. */
int wan_dit_model_foreach(const struct wan_dit_model *m,
			  int (*fn)(void *ctx, const char *name, const float *data, size_t count),
			  void *ctx);

#ifdef __cplusplus
}
#endif
#endif
