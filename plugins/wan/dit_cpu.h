/* dit_cpu.h: the Wan2.1 causal DiT forward (spec §2) on the CPU in fp32, with its KV and
 * cross-attention caches: the reference the CUDA path and CI are checked against. */
#ifndef HERU_WAN_DIT_CPU_H
#define HERU_WAN_DIT_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "dit_kv.h"
#include "dit_model.h"

#ifdef __cplusplus
extern "C" {
#endif

struct dit_cpu;

/* An engine for MODEL (borrowed; must outlive it) with room for MAX_SLOTS cache slots of
 * KV_ROWS rows (tokens) each, latents of H x W (even, <= 2048) and NCTX prompts
 * (1, or one per slot). new, or NULL with ERR. */
struct dit_cpu *dit_cpu_new(const struct wan_dit_model *model, int max_slots, int kv_rows,
			    int h, int w, int nctx, char *err, size_t errlen);
void dit_cpu_free(struct dit_cpu *c);

/* Sets the text embeddings CTX [nctx, text_len, text_dim] (T5 output, copied in) and marks the
 * cross-attention cache for filling at the next forward. */
void dit_cpu_set_context(struct dit_cpu *c, const float *ctx);
/* A new stream: zero the KV caches; the cross-attention cache is filled again. */
void dit_cpu_reset(struct dit_cpu *c);
/* After the first chunk: copy cache slot 0 to slots 1..SLOTS-1 (upstream's repeat). */
int dit_cpu_expand(struct dit_cpu *c, int slots, char *err, size_t errlen);

/* One forward of NSLOTS batch elements of FRAMES latent frames each.
 * X [nslots, in_dim, frames, h, w]; T [nslots, frames] timesteps; C_START [nslots] positions
 * in tokens (multiples of L); slot s uses cache slot s, whose bookkeeping is in KV.
 * FLOW [nslots, out_dim, frames, h, w] gets the predicted flow. 0, or -1 with ERR. */
int dit_cpu_forward(struct dit_cpu *c, struct dit_kv *kv, int nslots, int frames,
		    const float *x, const int64_t *t, const int64_t *c_start, float *flow,
		    char *err, size_t errlen);

/* Inspection for tests: cache slot SLOT's key rows of LAYER ([kv_rows, D], borrowed). */
const float *dit_cpu_cache_k(const struct dit_cpu *c, int layer, int slot);

#ifdef __cplusplus
}
#endif
#endif
