/* wan_dit_weights.h: the DiT state dict of spec §3.1 for a config: every tensor name (without
 * the StreamDiffusionV2 "model." prefix; wt_find adds it) and its shape. Used by
 * random-weights and by the DiT loader. */
#ifndef HERU_WAN_DIT_WEIGHTS_H
#define HERU_WAN_DIT_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "wan_config.h"
#include "wt_file.h"

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

/* Checks that F holds every tensor of the table for C (directly or with the "model." prefix)
 * with exactly its shape and a float dtype. STRICT also refuses tensors that are not in the
 * table (as upstream's load_state_dict(strict=True) does). 0, or -1 with ERR naming the file
 * and the first missing, misshaped or unexpected tensor. */
int wan_dit_weights_check(const struct wt_file *f, const struct wan_dit_config *c, int strict,
			  char *err, size_t errlen);

/* Opens the DiT weights at PATH (safetensors, shard index or torch .pt/.pth) and runs the
 * strict check above. A missing file gives an error naming the path and how to get weights.
 * new (wt_close), NULL with ERR. */
struct wt_file *wan_dit_weights_open(const char *path, const struct wan_dit_config *c,
				     char *err, size_t errlen);

/* Writes every tensor of the table to PATH (safetensors) with deterministic random values:
 * N(0, 0.02) for WAN_INIT_NORMAL, ones and zeros for the others. Each tensor's values depend
 * only on SEED and its name (not on the thread count). DTYPE: WT_BF16, WT_F32 or WT_F16.
 * PREFIX (e.g. "model.", may be NULL) is prepended to every name; MODEL_LABEL (may be NULL)
 * goes into the file's metadata. THREADS <= 0: all CPUs (at most 16). 0 or -1 with ERR. */
int wan_dit_random_weights_save(const struct wan_dit_config *c, const char *model_label,
				const char *path, uint64_t seed, enum wt_dtype dtype,
				const char *prefix, int threads, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
