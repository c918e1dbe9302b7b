/* gpu_ref.h: plain C fp32 reference of the DiT ops and forward (spec §2), used by the GPU
 * tests to check the CUDA engine. It mirrors the engine's call contract (struct
 * dit_cuda_call): the caller says which cache rows each slot writes and attends.
 * (The stream-level reference with the ring-buffer bookkeeping lives in plugins/wan/dit_*.c.) */
#ifndef TESTS_GPU_REF_H
#define TESTS_GPU_REF_H

#include <stddef.h>
#include <stdint.h>
#include "plugins/wan/cuda/dit_cuda.h"

struct ref_model;

/* Random weights (rounded to bf16 so both sides start from the same numbers). new. */
struct ref_model *ref_new(const struct dit_cuda_dims *d, const struct dit_cuda_plan *p, uint64_t seed);
void ref_free(struct ref_model *r);
/* Iterates parameters: name, host data, count; -1 past the end. */
int ref_param(struct ref_model *r, int idx, const char **name, const float **data, size_t *count);
void ref_set_context(struct ref_model *r, const float *ctx);
void ref_forward(struct ref_model *r, const struct dit_cuda_call *c, const float *x, float *x0, float *flow);
void ref_copy_slot(struct ref_model *r, int dst, int src, int rows);

/* Ops (row-major, fp32). y[m,n] = x[m,k]·W[n,k]ᵀ + b[n] (b may be NULL). */
void ref_linear(const float *x, const float *w, const float *b, float *y, int m, int n, int k);
float ref_gelu_tanh(float v);
/* o[b, sq, h, d] = softmax(q kᵀ scale) v with k/v [b, skv_max rows, h, d], kv_len[b] rows. */
void ref_attention(const float *q, const float *k, const float *v, float *o, int b, int h, int d,
		   int sq, int kv_rows, const int *kv_len, float scale);
void ref_layernorm(const float *x, float *y, int t, int d, float eps);
float bf16_round(float v);
double rel_l2(const float *a, const float *ref, size_t n);
/* 1 when any value is NaN or Inf. */
int any_nonfinite(const float *a, size_t n);
/* Uniform [-amp, amp) from a small LCG (deterministic). */
void fill_uniform(float *p, size_t n, uint64_t *state, float amp);

#endif
