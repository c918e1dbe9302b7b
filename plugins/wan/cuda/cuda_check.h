/* cuda_check.h: error checks for CUDA, cuBLASLt and cuDNN calls that record the file and
 * line and RETURN an error instead of exiting (a plugin must never kill the server).
 *
 * Use inside a function that has `char *err, size_t errlen` in scope and an int `rc` plus a
 * `cleanup` label (the convention of every action in this tree):
 *
 *	CU_TRY(cudaMalloc(&p, n));
 *	LT_TRY(cublasLtMatmul(...));
 *	DNN_TRY(cudnnBackendFinalize(d));
 *
 * On failure the macro writes "FILE:LINE: CALL failed: REASON" into err, sets rc = -1 and
 * jumps to cleanup. CU_RET / LT_RET / DNN_RET return -1 directly, for functions without
 * resources to undo. Plain C99, usable from .c and .cu files. */
#ifndef WAN_CUDA_CHECK_H
#define WAN_CUDA_CHECK_H

#include <stdio.h>
#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Formats "file:line: what failed: why" into err (when err is non-NULL). Returns -1. */
int wan_cuda_fail(char *err, size_t errlen, const char *file, int line, const char *what,
		  const char *why);
/* Readable names for library status codes (never NULL). */
const char *wan_cublas_status_str(int status);
const char *wan_cudnn_status_str(int status);

#ifdef __cplusplus
}
#endif

#define WAN_CU_FAIL_(call_str, why) wan_cuda_fail(err, errlen, __FILE__, __LINE__, call_str, why)

#define CU_TRY(call) do { cudaError_t cu_e_ = (call); if (cu_e_ != cudaSuccess) { \
	rc = WAN_CU_FAIL_(#call, cudaGetErrorString(cu_e_)); goto cleanup; } } while (0)
#define CU_RET(call) do { cudaError_t cu_e_ = (call); if (cu_e_ != cudaSuccess) \
	return WAN_CU_FAIL_(#call, cudaGetErrorString(cu_e_)); } while (0)
/* After a kernel launch: catches bad launch configurations (asynchronous faults show up at
 * the next synchronizing call). */
#define CU_LAUNCH_RET(what) do { cudaError_t cu_e_ = cudaGetLastError(); if (cu_e_ != cudaSuccess) \
	return WAN_CU_FAIL_(what, cudaGetErrorString(cu_e_)); } while (0)
#define LT_TRY(call) do { int lt_s_ = (int)(call); if (lt_s_ != 0) { \
	rc = WAN_CU_FAIL_(#call, wan_cublas_status_str(lt_s_)); goto cleanup; } } while (0)
#define LT_RET(call) do { int lt_s_ = (int)(call); if (lt_s_ != 0) \
	return WAN_CU_FAIL_(#call, wan_cublas_status_str(lt_s_)); } while (0)
#define DNN_TRY(call) do { int dnn_s_ = (int)(call); if (dnn_s_ != 0) { \
	rc = WAN_CU_FAIL_(#call, wan_cudnn_status_str(dnn_s_)); goto cleanup; } } while (0)
#define DNN_RET(call) do { int dnn_s_ = (int)(call); if (dnn_s_ != 0) \
	return WAN_CU_FAIL_(#call, wan_cudnn_status_str(dnn_s_)); } while (0)

#endif
