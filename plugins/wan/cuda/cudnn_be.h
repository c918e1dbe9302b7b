/* cudnn_be.h: the cuDNN 9 backend-graph boilerplate shared by the fused attention
 * (attn_cudnn.c) and the VAE's NDHWC convolutions (vae_conv_be.c).
 *
 * Each builder creates one backend descriptor, sets its attributes, finalizes it and returns
 * CUDNN_STATUS_SUCCESS with *out new (the caller destroys it), or the first failing status
 * with *out NULL (nothing left to free). The chain of a backend graph is:
 * tensors and operations -> cudnn_be_graph -> cudnn_be_heur -> cudnn_be_engine_cfgs ->
 * cudnn_be_plan per engine config -> cudnn_be_variant_pack -> cudnnBackendExecute.
 * All math (matmul, pointwise, reduction) is computed in fp32. */
#ifndef WAN_CUDA_CUDNN_BE_H
#define WAN_CUDA_CUDNN_BE_H

#include <stdbool.h>
#include <stdint.h>
#include <cudnn.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A tensor of NDIM dims with the given strides (elements), 16-byte aligned. VIRT: an
 * intermediate the engine never materializes; BY_VALUE: a host scalar passed in the variant
 * pack (the attribute is set only when true). */
cudnnStatus_t cudnn_be_tensor(cudnnBackendDescriptor_t *out, int64_t uid, cudnnDataType_t dt,
			      int ndim, const int64_t *dim, const int64_t *stride, bool virt,
			      bool by_value);
/* C = A·B (batched matmul). */
cudnnStatus_t cudnn_be_matmul(cudnnBackendDescriptor_t *out, cudnnBackendDescriptor_t a,
			      cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t c);
/* Y = MODE(X[, B]); B may be NULL for unary modes. */
cudnnStatus_t cudnn_be_pointwise(cudnnBackendDescriptor_t *out, cudnnPointwiseMode_t mode,
				 cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t b,
				 cudnnBackendDescriptor_t y);
/* Y = MODE-reduction of X over the dims where Y has size 1. */
cudnnStatus_t cudnn_be_reduction(cudnnBackendDescriptor_t *out, cudnnReduceTensorOp_t mode,
				 cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y);
/* The operation graph of the NOPS operations OPS (borrowed) on handle DNN. */
cudnnStatus_t cudnn_be_graph(cudnnBackendDescriptor_t *out, cudnnHandle_t dnn,
			     const cudnnBackendDescriptor_t *ops, int nops);
/* The engine heuristics of MODE for GRAPH; *count gets how many engine configs it offers
 * (may be 0). */
cudnnStatus_t cudnn_be_heur(cudnnBackendDescriptor_t *out, cudnnBackendDescriptor_t graph,
			    cudnnBackendHeurMode_t mode, int64_t *count);
/* The first N engine configs of HEUR, best first: *cfgs gets a new array of N slots (free it
 * with cudnn_be_free_cfgs(*cfgs, N), also on failure, where it may be NULL), *got how many
 * of them the heuristics filled. */
cudnnStatus_t cudnn_be_engine_cfgs(cudnnBackendDescriptor_t heur, int64_t n,
				   cudnnBackendDescriptor_t **cfgs, int64_t *got);
void cudnn_be_free_cfgs(cudnnBackendDescriptor_t *cfgs, int64_t n);
/* The execution plan of engine config CFG on DNN; *ws gets its workspace size in bytes. */
cudnnStatus_t cudnn_be_plan(cudnnBackendDescriptor_t *out, cudnnHandle_t dnn,
			    cudnnBackendDescriptor_t cfg, int64_t *ws);
/* The variant pack binding the N device pointers PTRS (or host pointers of by-value tensors)
 * to the tensor uids UIDS, with workspace WS. */
cudnnStatus_t cudnn_be_variant_pack(cudnnBackendDescriptor_t *out, int n, const int64_t *uids,
				    void *const *ptrs, void *ws);

#ifdef __cplusplus
}
#endif
#endif
