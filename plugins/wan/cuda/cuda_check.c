/* cuda_check.c: error formatting for cuda_check.h. */
#include "plugins/wan/cuda/cuda_check.h"

#include <string.h>
#include <cublasLt.h>
#include <cudnn.h>

int wan_cuda_fail(char *err, size_t errlen, const char *file, int line, const char *what,
		  const char *why)
{
	const char *base = strrchr(file, '/');

	if (err && errlen)
		snprintf(err, errlen, "%s:%d: %s failed: %s", base ? base + 1 : file, line, what,
			 why ? why : "unknown error");
	return -1;
}

const char *wan_cublas_status_str(int status)
{
	return cublasGetStatusString((cublasStatus_t)status);
}

const char *wan_cudnn_status_str(int status)
{
	return cudnnGetErrorString((cudnnStatus_t)status);
}
