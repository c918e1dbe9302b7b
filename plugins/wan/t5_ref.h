/* t5_ref.h: the umT5 encoder forward pass in plain C, fp32 (spec §6). The reference the CUDA
 * encoder is tested against, and the `--device cpu` path of heru-wan t5-encode. */
#ifndef HERU_WAN_T5_REF_H
#define HERU_WAN_T5_REF_H

#include <stddef.h>
#include <stdint.h>

#include "t5_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Encodes one sequence. IDS, MASK: [LEN] (mask 0 marks padding; ids must be < vocab_size).
 * OUT: [LEN, dim] f32; rows from the number of non-zero mask entries on are zero, as
 * WanTextEncoder returns them. Weights are converted to f32 one matrix at a time, so any
 * float checkpoint (the bf16 .pth included) works in about one matrix of extra memory.
 * THREADS <= 0 uses the online CPUs. When the mask is a prefix (the tokenizer's), only the real
 * rows are computed: padded keys are masked and padded rows are zeroed, so this is exact.
 * Returns 0, or -1 with ERR (bad ids, out of memory). */
int t5_encode_ref(const struct t5_weights *w, const int64_t *ids, const int64_t *mask, int len, int threads,
		  float *out, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
