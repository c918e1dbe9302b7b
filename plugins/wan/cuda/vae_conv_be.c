/* vae_conv_be.c: see vae_conv_be.h. */
#include "plugins/wan/cuda/vae_conv_be.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deprecated attribute names in cuDNN 9.19 that older 9.x libraries still require. */
#define ATTR_OPGRAPH_HANDLE ((cudnnBackendAttributeName_t)800)
#define ATTR_PLAN_HANDLE ((cudnnBackendAttributeName_t)400)

enum { UID_X = 1, UID_W, UID_Y, UID_B, UID_Z, UID_VIRT = 100 };

struct vae_conv_be {
	cudnnBackendDescriptor_t plan, vp;
};

static cudnnStatus_t tensor5v(cudnnBackendDescriptor_t *out, int64_t uid, cudnnDataType_t dt,
			      int64_t n, int64_t c, int64_t d, int64_t h, int64_t w, bool virt)
{
	/* dims in NCDHW order, strides of the NDHWC layout */
	int64_t dim[5] = { n, c, d, h, w }, str[5] = { d * h * w * c, 1, h * w * c, w * c, c };
	int64_t align = 16;
	cudnnBackendDescriptor_t t = NULL;
	cudnnStatus_t s;
	*out = NULL;
	if ((s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_TENSOR_DESCRIPTOR, &t)))
		return s;
	if ((s = cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt)) ||
	    (s = cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 5, dim)) ||
	    (s = cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 5, str)) ||
	    (s = cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid)) ||
	    (s = cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align)) ||
	    (s = cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virt)) ||
	    (s = cudnnBackendFinalize(t))) {
		cudnnBackendDestroyDescriptor(t);
		return s;
	}
	*out = t;
	return CUDNN_STATUS_SUCCESS;
}

static cudnnStatus_t tensor5(cudnnBackendDescriptor_t *out, int64_t uid, cudnnDataType_t dt,
			     int64_t n, int64_t c, int64_t d, int64_t h, int64_t w)
{
	return tensor5v(out, uid, dt, n, c, d, h, w, false);
}

/* y = mode(x[, b]) in fp32 */
static cudnnStatus_t pointwise(cudnnBackendDescriptor_t *out, cudnnPointwiseMode_t mode,
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

void vae_conv_be_free(struct vae_conv_be *c)
{
	if (!c)
		return;
	if (c->plan)
		cudnnBackendDestroyDescriptor(c->plan);
	if (c->vp)
		cudnnBackendDestroyDescriptor(c->vp);
	free(c);
}

int vae_conv_be_run(struct vae_conv_be *c, cudnnHandle_t dnn, char *err, size_t errlen)
{
	cudnnStatus_t s = cudnnBackendExecute(dnn, c->plan, c->vp);
	if (s != CUDNN_STATUS_SUCCESS) {
		snprintf(err, errlen, "cuDNN backend conv: %s", cudnnGetErrorString(s));
		return -1;
	}
	return 0;
}

static cudnnStatus_t make_vp(cudnnBackendDescriptor_t *out, const void *x, const void *w, void *y,
			     const float *bias, const void *z, void *ws)
{
	int64_t uids[5] = { UID_X, UID_W, UID_Y, UID_B, UID_Z };
	void *ptrs[5] = { (void *)x, (void *)w, y, (void *)bias, (void *)z };
	int n = 3;
	cudnnBackendDescriptor_t vp = NULL;
	cudnnStatus_t s;
	*out = NULL;
	if (bias)
		n++;
	if (z) {
		uids[n] = UID_Z;
		ptrs[n++] = (void *)z;
	}
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

struct vae_conv_be *vae_conv_be_new(cudnnHandle_t dnn, cudaStream_t st,
				    const struct vae_conv_be_shape *s, const void *x,
				    const void *w, void *y, void *ws, size_t ws_max, int maxcfg,
				    float *ms, char *err, size_t errlen)
{
	return vae_conv_be_new_fused(dnn, st, s, x, w, NULL, NULL, 0, y, ws, ws_max, maxcfg, ms, err,
				     errlen);
}

struct vae_conv_be *vae_conv_be_new_fused(cudnnHandle_t dnn, cudaStream_t st,
					  const struct vae_conv_be_shape *sh, const void *x,
					  const void *w, const float *bias, const void *z, int relu,
					  void *y, void *ws, size_t ws_max, int maxcfg, float *ms_out,
					  char *err, size_t errlen)
{
	int fused = bias || z || relu;
	cudnnBackendDescriptor_t tv[3] = { NULL }, tb = NULL, tz = NULL, pops[3] = { NULL };
	cudnnBackendDescriptor_t gops[4];
	int ngops = 0;
	cudnnDataType_t dt = sh->half ? CUDNN_DATA_HALF : CUDNN_DATA_BFLOAT16, ct = CUDNN_DATA_FLOAT;
	cudnnBackendDescriptor_t tx = NULL, tw = NULL, ty = NULL, conv = NULL, op = NULL, graph = NULL;
	cudnnBackendDescriptor_t heur = NULL, *cfgs = NULL, vp = NULL;
	struct vae_conv_be *res = NULL;
	cudaEvent_t e0 = NULL, e1 = NULL;
	int64_t ncfg = 0, got = 0, sdims = 3;
	int64_t dil[3] = { 1, 1, 1 }, str[3] = { sh->st, sh->sh, sh->sw }, pad[3] = { sh->pt, sh->ph, sh->pw };
	cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
	/* heuristics mode B: its candidates ran the H100's VAE convs at ~590 TFLOP/s against ~470
	 * for mode A's (build 10 s instead of 7 s at 480x832); HERU_VAE_BE_HEUR=a asks mode A */
	const char *he = getenv("HERU_VAE_BE_HEUR");
	cudnnBackendHeurMode_t hm = he && he[0] == 'a' ? CUDNN_HEUR_MODE_A : CUDNN_HEUR_MODE_B;
	float alpha = 1.0f, beta = 0.0f, best = 1e30f;
	cudnnStatus_t s;
	const char *what = "graph";

	if ((s = tensor5(&tx, UID_X, dt, 1, sh->cin, sh->t, sh->h, sh->w)) ||
	    (s = tensor5(&tw, UID_W, dt, sh->cout, sh->cin, sh->kt, sh->kh, sh->kw)) ||
	    (s = tensor5(&ty, UID_Y, dt, 1, sh->cout, sh->to, sh->ho, sh->wo)))
		goto fail;
	/* fused: conv -> fp32 virtual -> + bias -> + z -> ReLU -> Y; the last op writes Y */
	int nstage = (bias != NULL) + (z != NULL) + (relu != 0);
	for (int i = 0; fused && i < nstage; i++)
		if ((s = tensor5v(&tv[i], UID_VIRT + i, ct, 1, sh->cout, sh->to, sh->ho, sh->wo, true)))
			goto fail;
	if (bias) {
		int64_t bd[5] = { 1, sh->cout, 1, 1, 1 }, bs[5] = { sh->cout, 1, sh->cout, sh->cout, sh->cout };
		int64_t align = 16, uid = UID_B;
		bool virt = false;
		if ((s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_TENSOR_DESCRIPTOR, &tb)) ||
		    (s = cudnnBackendSetAttribute(tb, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &ct)) ||
		    (s = cudnnBackendSetAttribute(tb, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 5, bd)) ||
		    (s = cudnnBackendSetAttribute(tb, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 5, bs)) ||
		    (s = cudnnBackendSetAttribute(tb, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid)) ||
		    (s = cudnnBackendSetAttribute(tb, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align)) ||
		    (s = cudnnBackendSetAttribute(tb, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virt)) ||
		    (s = cudnnBackendFinalize(tb)))
			goto fail;
	}
	if (z && (s = tensor5(&tz, UID_Z, dt, 1, sh->cout, sh->to, sh->ho, sh->wo)))
		goto fail;
	what = "conv descriptor";
	if ((s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, &conv)) ||
	    (s = cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &ct)) ||
	    (s = cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode)) ||
	    (s = cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &sdims)) ||
	    (s = cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 3, dil)) ||
	    (s = cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 3, str)) ||
	    (s = cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 3, pad)) ||
	    (s = cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 3, pad)) ||
	    (s = cudnnBackendFinalize(conv)))
		goto fail;
	what = "conv operation";
	if ((s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR, &op)) ||
	    (s = cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &tx)) ||
	    (s = cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &tw)) ||
	    (s = cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
					      fused ? &tv[0] : &ty)) ||
	    (s = cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &conv)) ||
	    (s = cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha)) ||
	    (s = cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &beta)) ||
	    (s = cudnnBackendFinalize(op)))
		goto fail;
	gops[ngops++] = op;
	if (fused) {
		what = "fused epilogue";
		int k = 0;
		cudnnBackendDescriptor_t cur = tv[0];
		if (bias) {
			if ((s = pointwise(&pops[k], CUDNN_POINTWISE_ADD, cur, tb, k + 1 < nstage ? tv[k + 1] : ty)))
				goto fail;
			cur = k + 1 < nstage ? tv[k + 1] : ty;
			gops[ngops++] = pops[k++];
		}
		if (z) {
			if ((s = pointwise(&pops[k], CUDNN_POINTWISE_ADD, cur, tz, k + 1 < nstage ? tv[k + 1] : ty)))
				goto fail;
			cur = k + 1 < nstage ? tv[k + 1] : ty;
			gops[ngops++] = pops[k++];
		}
		if (relu) {
			if ((s = pointwise(&pops[k], CUDNN_POINTWISE_RELU_FWD, cur, NULL, ty)))
				goto fail;
			gops[ngops++] = pops[k++];
		}
	}
	what = "operation graph";
	if ((s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, &graph)) ||
	    (s = cudnnBackendSetAttribute(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, ngops, gops)) ||
	    (s = cudnnBackendSetAttribute(graph, ATTR_OPGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &dnn)) ||
	    (s = cudnnBackendFinalize(graph)))
		goto fail;
	what = "heuristics";
	if ((s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, &heur)) ||
	    (s = cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph)) ||
	    (s = cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &hm)) ||
	    (s = cudnnBackendFinalize(heur)) ||
	    (s = cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &ncfg, NULL)))
		goto fail;
	if (ncfg <= 0) {
		s = CUDNN_STATUS_NOT_SUPPORTED;
		goto fail;
	}
	if (ncfg > maxcfg)
		ncfg = maxcfg;
	if (!(cfgs = calloc((size_t)ncfg, sizeof(*cfgs))) || !(res = calloc(1, sizeof(*res)))) {
		s = CUDNN_STATUS_ALLOC_FAILED;
		goto fail;
	}
	for (int64_t i = 0; i < ncfg; i++)
		if ((s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &cfgs[i])))
			goto fail;
	if ((s = cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
					  ncfg, &got, cfgs)))
		goto fail;
	if (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess) {
		s = CUDNN_STATUS_INTERNAL_ERROR;
		goto fail;
	}
	what = "engine configs";
	s = CUDNN_STATUS_NOT_SUPPORTED;
	for (int64_t i = 0; i < got; i++) {
		cudnnBackendDescriptor_t plan = NULL;
		int64_t wsz = 0, n1 = 0;
		float ms = 0.0f, tot = 0.0f;
		if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan))
			continue;
		cudnnBackendSetAttribute(plan, ATTR_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &dnn);
		if (cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
					     CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfgs[i]) ||
		    cudnnBackendFinalize(plan) ||
		    cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64,
					     1, &n1, &wsz) ||
		    wsz < 0 || (size_t)wsz > ws_max || make_vp(&vp, x, w, y, bias, z, ws)) {
			cudnnBackendDestroyDescriptor(plan);
			continue;
		}
		/* one warm-up, then the median-free best of 3 */
		int ok = cudnnBackendExecute(dnn, plan, vp) == CUDNN_STATUS_SUCCESS;
		for (int k = 0; ok && k < 3; k++) {
			ok = cudaEventRecord(e0, st) == cudaSuccess &&
			     cudnnBackendExecute(dnn, plan, vp) == CUDNN_STATUS_SUCCESS &&
			     cudaEventRecord(e1, st) == cudaSuccess && cudaEventSynchronize(e1) == cudaSuccess &&
			     cudaEventElapsedTime(&ms, e0, e1) == cudaSuccess;
			tot = k == 0 || ms < tot ? ms : tot;
		}
		cudaGetLastError();
		if (ok && tot < best) {
			best = tot;
			if (res->plan)
				cudnnBackendDestroyDescriptor(res->plan);
			if (res->vp)
				cudnnBackendDestroyDescriptor(res->vp);
			res->plan = plan;
			res->vp = vp;
			s = CUDNN_STATUS_SUCCESS;
		} else {
			cudnnBackendDestroyDescriptor(plan);
			cudnnBackendDestroyDescriptor(vp);
		}
		vp = NULL;
	}
	if (!res->plan)
		goto fail;
	*ms_out = best;
	goto done;
fail:
	snprintf(err, errlen, "cuDNN backend conv (%s): %s", what, cudnnGetErrorString(s));
	vae_conv_be_free(res);
	res = NULL;
done:
	if (e0)
		cudaEventDestroy(e0);
	if (e1)
		cudaEventDestroy(e1);
	if (cfgs) {
		for (int64_t i = 0; i < ncfg; i++)
			if (cfgs[i])
				cudnnBackendDestroyDescriptor(cfgs[i]);
		free(cfgs);
	}
	cudnnBackendDescriptor_t all[14] = { heur, graph, op, conv, tx, tw, ty, tv[0], tv[1], tv[2], tb,
					     tz, pops[0], pops[1] };
	for (int i = 0; i < 14; i++)
		if (all[i])
			cudnnBackendDestroyDescriptor(all[i]);
	if (pops[2])
		cudnnBackendDestroyDescriptor(pops[2]);
	return res;
}
