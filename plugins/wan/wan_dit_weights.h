/* wan_dit_weights.h: the DiT state dict of spec §3.1 for a config: every tensor name (without
 * the StreamDiffusionV2 "model." prefix; wt_find adds it) and its shape. Used by
 * random-weights and by the DiT loader. */
#ifndef HERU_WAN_DIT_WEIGHTS_H
#define HERU_WAN_DIT_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "wan_config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How random-weights fills a tensor. */
enum wan_weight_init {
	WAN_INIT_NORMAL,  /* N(0, 0.02): linear/conv weights, biases, modulation */
	WAN_INIT_ONES,    /* norm gains: norm_q/norm_k/norm3 weights */
	WAN_INIT_ZEROS,   /* norm3.bias */
};

#define WAN_WEIGHT_NAME_MAX 64
#define WAN_WEIGHT_MAX_DIMS 5

struct wan_dit_weight {
	char name[WAN_WEIGHT_NAME_MAX];   /* e.g. "blocks.3.self_attn.q.weight" */
	int ndim;
	int64_t shape[WAN_WEIGHT_MAX_DIMS];
	enum wan_weight_init init;
	int block;                        /* block index, -1 for global tensors */
};

/* Tensors per block (27) and global tensors (15). */
#define WAN_DIT_BLOCK_TENSORS 27
#define WAN_DIT_GLOBAL_TENSORS 15

/* The full table: globals first (patch_embedding, text_embedding, time_embedding,
 * time_projection, head), then blocks.0 .. blocks.{L-1} in spec §3.1 order.
 * new (free()); *COUNT gets 15 + 27*num_layers. NULL only when out of memory. */
struct wan_dit_weight *wan_dit_weights_new(const struct wan_dit_config *c, size_t *count);
/* Fills the 27 tensors of block I (names "blocks.I.*") into OUT[27]. */
void wan_dit_weights_block(const struct wan_dit_config *c, int i,
			   struct wan_dit_weight out[WAN_DIT_BLOCK_TENSORS]);
int64_t wan_dit_weight_numel(const struct wan_dit_weight *w);
/* Total parameter count: 1,418,996,800 for 1.3b, 14,288,491,584 for 14b. */
int64_t wan_dit_param_count(const struct wan_dit_config *c);

#ifdef __cplusplus
}
#endif
#endif
