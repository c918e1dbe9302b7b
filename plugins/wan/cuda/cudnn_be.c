/* cudnn_be.c: see cudnn_be.h. */
#include "plugins/wan/cuda/cudnn_be.h"

#include <stdlib.h>

/* Deprecated attribute names in cuDNN 9.19 that older 9.x libraries still require. */
#define ATTR_OPGRAPH_HANDLE ((cudnnBackendAttributeName_t)800)
#define ATTR_PLAN_HANDLE ((cudnnBackendAttributeName_t)400)

cudnnStatus_t cudnn_be_tensor(cudnnBackendDescriptor_t *out, int64_t uid, cudnnDataType_t dt,
			      int ndim, const int64_t *dim, const int64_t *stride, bool virt,
			      bool by_value)
{
	cudnnBackendDescriptor_t d = NULL;
	int64_t align = 16;
	cudnnStatus_t s;

	*out = NULL;
	if ((s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_TENSOR_DESCRIPTOR, &d)))
		return s;
	if ((s = cudnnBackendSetAttribute(d, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt)) ||
	    (s = cudnnBackendSetAttribute(d, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, ndim, dim)) ||
	    (s = cudnnBackendSetAttribute(d, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, ndim, stride)) ||
	    (s = cudnnBackendSetAttribute(d, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid)) ||
	    (s = cudnnBackendSetAttribute(d, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align)) ||
	    (s = cudnnBackendSetAttribute(d, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virt)) ||
	    (by_value && (s = cudnnBackendSetAttribute(d, CUDNN_ATTR_TENSOR_IS_BY_VALUE,
						      CUDNN_TYPE_BOOLEAN, 1, &by_value))) ||
	    (s = cudnnBackendFinalize(d))) {
		cudnnBackendDestroyDescriptor(d);
		return s;
	}
	*out = d;
	return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnn_be_matmul(cudnnBackendDescriptor_t *out, cudnnBackendDescriptor_t a,
			      cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t c)
{
	cudnnBackendDescriptor_t mm = NULL, op = NULL;
	cudnnDataType_t ct = CUDNN_DATA_FLOAT;
	cudnnStatus_t s;

	*out = NULL;
	if ((s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_MATMUL_DESCRIPTOR, &mm)))
		return s;
	if ((s = cudnnBackendSetAttribute(mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &ct)) ||
	    (s = cudnnBackendFinalize(mm)) ||
	    (s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, &op)) ||
	    (s = cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a)) ||
	    (s = cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b)) ||
	    (s = cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c)) ||
	    (s = cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &mm)) ||
	    (s = cudnnBackendFinalize(op))) {
		if (op)
			cudnnBackendDestroyDescriptor(op);
		cudnnBackendDestroyDescriptor(mm);
		return s;
	}
	cudnnBackendDestroyDescriptor(mm);
	*out = op;
	return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnn_be_pointwise(cudnnBackendDescriptor_t *out, cudnnPointwiseMode_t mode,
				 cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t b,
				 cudnnBackendDescriptor_t y)
{
	cudnnBackendDescriptor_t pw = NULL, op = NULL;
	cudnnDataType_t ct = CUDNN_DATA_FLOAT;
	cudnnStatus_t s;

	*out = NULL;
	if ((s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, &pw)))
		return s;
	if ((s = cudnnBackendSetAttribute(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode)) ||
	    (s = cudnnBackendSetAttribute(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &ct)) ||
	    (s = cudnnBackendFinalize(pw)) ||
	    (s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, &op)) ||
	    (s = cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw)) ||
	    (s = cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x)) ||
	    (b && (s = cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b))) ||
	    (s = cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y)) ||
	    (s = cudnnBackendFinalize(op))) {
		if (op)
			cudnnBackendDestroyDescriptor(op);
		cudnnBackendDestroyDescriptor(pw);
		return s;
	}
	cudnnBackendDestroyDescriptor(pw);
	*out = op;
	return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnn_be_reduction(cudnnBackendDescriptor_t *out, cudnnReduceTensorOp_t mode,
				 cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y)
{
	cudnnBackendDescriptor_t rd = NULL, op = NULL;
	cudnnDataType_t ct = CUDNN_DATA_FLOAT;
	cudnnStatus_t s;

	*out = NULL;
	if ((s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_REDUCTION_DESCRIPTOR, &rd)))
		return s;
	if ((s = cudnnBackendSetAttribute(rd, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode)) ||
	    (s = cudnnBackendSetAttribute(rd, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &ct)) ||
	    (s = cudnnBackendFinalize(rd)) ||
	    (s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, &op)) ||
	    (s = cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x)) ||
	    (s = cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y)) ||
	    (s = cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &rd)) ||
	    (s = cudnnBackendFinalize(op))) {
		if (op)
			cudnnBackendDestroyDescriptor(op);
		cudnnBackendDestroyDescriptor(rd);
		return s;
	}
	cudnnBackendDestroyDescriptor(rd);
	*out = op;
	return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnn_be_graph(cudnnBackendDescriptor_t *out, cudnnHandle_t dnn,
			     const cudnnBackendDescriptor_t *ops, int nops)
{
	cudnnBackendDescriptor_t g = NULL;
	cudnnStatus_t s;

	*out = NULL;
	if ((s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, &g)))
		return s;
	if ((s = cudnnBackendSetAttribute(g, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, nops, ops)) ||
	    (s = cudnnBackendSetAttribute(g, ATTR_OPGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &dnn)) ||
	    (s = cudnnBackendFinalize(g))) {
		cudnnBackendDestroyDescriptor(g);
		return s;
	}
	*out = g;
	return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnn_be_heur(cudnnBackendDescriptor_t *out, cudnnBackendDescriptor_t graph,
			    cudnnBackendHeurMode_t mode, int64_t *count)
{
	cudnnBackendDescriptor_t h = NULL;
	cudnnStatus_t s;

	*out = NULL;
	*count = 0;
	if ((s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, &h)))
		return s;
	if ((s = cudnnBackendSetAttribute(h, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph)) ||
	    (s = cudnnBackendSetAttribute(h, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode)) ||
	    (s = cudnnBackendFinalize(h)) ||
	    (s = cudnnBackendGetAttribute(h, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, count, NULL))) {
		cudnnBackendDestroyDescriptor(h);
		return s;
	}
	*out = h;
	return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnn_be_engine_cfgs(cudnnBackendDescriptor_t heur, int64_t n,
				   cudnnBackendDescriptor_t **cfgs, int64_t *got)
{
	cudnnBackendDescriptor_t *c;
	cudnnStatus_t s;

	*got = 0;
	*cfgs = NULL;
	if (n <= 0)
		return CUDNN_STATUS_NOT_SUPPORTED;
	if (!(c = calloc((size_t)n, sizeof(*c))))
		return CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
	*cfgs = c;
	for (int64_t i = 0; i < n; i++)
		if ((s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &c[i])))
			return s;
	return cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
					n, got, c);
}

void cudnn_be_free_cfgs(cudnnBackendDescriptor_t *cfgs, int64_t n)
{
	if (!cfgs)
		return;
	for (int64_t i = 0; i < n; i++)
		if (cfgs[i])
			cudnnBackendDestroyDescriptor(cfgs[i]);
	free(cfgs);
}

cudnnStatus_t cudnn_be_plan(cudnnBackendDescriptor_t *out, cudnnHandle_t dnn,
			    cudnnBackendDescriptor_t cfg, int64_t *ws)
{
	cudnnBackendDescriptor_t p = NULL;
	int64_t got = 0;
	cudnnStatus_t s;

	*out = NULL;
	if ((s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &p)))
		return s;
	/* the deprecated handle attribute older 9.x libraries require; its status is ignored */
	cudnnBackendSetAttribute(p, ATTR_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &dnn);
	if ((s = cudnnBackendSetAttribute(p, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
					  CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg)) ||
	    (s = cudnnBackendFinalize(p)) ||
	    (s = cudnnBackendGetAttribute(p, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64,
					  1, &got, ws))) {
		cudnnBackendDestroyDescriptor(p);
		return s;
	}
	*out = p;
	return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnn_be_variant_pack(cudnnBackendDescriptor_t *out, int n, const int64_t *uids,
				    void *const *ptrs, void *ws)
{
	cudnnBackendDescriptor_t vp = NULL;
	cudnnStatus_t s;

	*out = NULL;
	if ((s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp)))
		return s;
	if ((s = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids)) ||
	    (s = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs)) ||
	    (s = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws)) ||
	    (s = cudnnBackendFinalize(vp))) {
		cudnnBackendDestroyDescriptor(vp);
		return s;
	}
	*out = vp;
	return CUDNN_STATUS_SUCCESS;
}
