/* t5_cuda.h: the umT5 encoder on one GPU, bf16 weights and GEMM operands with fp32
 * accumulation, fp32 residual stream, RMS statistics and softmax (spec §6). Plain C: no CUDA
 * types, so the CLI includes it with or without CUDA (HERU_HAVE_CUDA says whether it exists).
 *
 * One t5_cuda is used by one thread at a time: it owns a stream, the weights (one device
 * allocation) and the activations for sequences up to max_len. */
#ifndef WAN_CUDA_T5_CUDA_H
#define WAN_CUDA_T5_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "t5_model.h"

#ifdef __cplusplus
extern "C" {
#endif

struct t5_cuda; /* opaque */

/* Uploads W's tensors (any float dtype; converted to bf16; W borrowed during the call only).
 * Returns new, or NULL with ERR (no GPU, out of device memory). */
struct t5_cuda *t5_cuda_new(const struct t5_weights *w, int max_len, char *err, size_t errlen);
void t5_cuda_free(struct t5_cuda *t);

/* Encodes IDS, MASK [LEN] (host) into OUT [LEN, dim] f32 (host), rows past the real tokens
 * zero, like t5_encode_ref. */
int t5_cuda_encode(struct t5_cuda *t, const int64_t *ids, const int64_t *mask, int len, float *out, char *err,
		   size_t errlen);

/* Times the forward pass alone (inputs already on the device, CUDA events): TOKENS real
 * tokens of a max_len sequence, ITERS runs after one warm-up. */
int t5_cuda_bench(struct t5_cuda *t, int tokens, int iters, double *best_ms, double *mean_ms, char *err,
		  size_t errlen);

/* Bytes of device memory held for weights and for activations. */
size_t t5_cuda_weight_bytes(const struct t5_cuda *t);
size_t t5_cuda_activation_bytes(const struct t5_cuda *t);

#ifdef __cplusplus
}
#endif
#endif
