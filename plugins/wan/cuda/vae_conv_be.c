/* vae_conv_be.c: see vae_conv_be.h. */
#include "plugins/wan/cuda/vae_conv_be.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugins/wan/cuda/cudnn_be.h"

enum { UID_X = 1, UID_W, UID_Y, UID_B, UID_Z, UID_VIRT = 100 };

struct vae_conv_be {
	cudnnBackendDescriptor_t plan, vp;
};

static cudnnStatus_t tensor5v(cudnnBackendDescriptor_t *out, int64_t uid, cudnnDataType_t dt,
			      int64_t n, int64_t c, int64_t d, int64_t h, int64_t w, bool virt)
{
	/* dims in NCDHW order, strides of the NDHWC layout */
	int64_t dim[5] = { n, c, d, h, w }, str[5] = { d * h * w * c, 1, h * w * c, w * c, c };
	return cudnn_be_tensor(out, uid, dt, 5, dim, str, virt, false);
}

static cudnnStatus_t tensor5(cudnnBackendDescriptor_t *out, int64_t uid, cudnnDataType_t dt,
			     int64_t n, int64_t c, int64_t d, int64_t h, int64_t w)
{
	return tensor5v(out, uid, dt, n, c, d, h, w, false);
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
	if (bias)
		n++;
	if (z) {
		uids[n] = UID_Z;
		ptrs[n++] = (void *)z;
	}
	return cudnn_be_variant_pack(out, n, uids, ptrs, ws);
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
		if ((s = cudnn_be_tensor(&tb, UID_B, ct, 5, bd, bs, false, false)))
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
			if ((s = cudnn_be_pointwise(&pops[k], CUDNN_POINTWISE_ADD, cur, tb, k + 1 < nstage ? tv[k + 1] : ty)))
				goto fail;
			cur = k + 1 < nstage ? tv[k + 1] : ty;
			gops[ngops++] = pops[k++];
		}
		if (z) {
			if ((s = cudnn_be_pointwise(&pops[k], CUDNN_POINTWISE_ADD, cur, tz, k + 1 < nstage ? tv[k + 1] : ty)))
				goto fail;
			cur = k + 1 < nstage ? tv[k + 1] : ty;
			gops[ngops++] = pops[k++];
		}
		if (relu) {
			if ((s = cudnn_be_pointwise(&pops[k], CUDNN_POINTWISE_RELU_FWD, cur, NULL, ty)))
				goto fail;
			gops[ngops++] = pops[k++];
		}
	}
	what = "operation graph";
	if ((s = cudnn_be_graph(&graph, dnn, gops, ngops)))
		goto fail;
	what = "heuristics";
	if ((s = cudnn_be_heur(&heur, graph, hm, &ncfg)))
		goto fail;
	if (ncfg <= 0) {
		s = CUDNN_STATUS_NOT_SUPPORTED;
		goto fail;
	}
	if (ncfg > maxcfg)
		ncfg = maxcfg;
	if (!(res = calloc(1, sizeof(*res)))) {
		s = CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
		goto fail;
	}
	if ((s = cudnn_be_engine_cfgs(heur, ncfg, &cfgs, &got)))
		goto fail;
	if (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess) {
		s = CUDNN_STATUS_INTERNAL_ERROR;
		goto fail;
	}
	what = "engine configs";
	s = CUDNN_STATUS_NOT_SUPPORTED;
	for (int64_t i = 0; i < got; i++) {
		cudnnBackendDescriptor_t plan = NULL;
		int64_t wsz = 0;
		float ms = 0.0f, tot = 0.0f;
		if (cudnn_be_plan(&plan, dnn, cfgs[i], &wsz))
			continue;
		if (wsz < 0 || (size_t)wsz > ws_max || make_vp(&vp, x, w, y, bias, z, ws)) {
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
	cudnn_be_free_cfgs(cfgs, ncfg);
	cudnnBackendDescriptor_t all[14] = { heur, graph, op, conv, tx, tw, ty, tv[0], tv[1], tv[2], tb,
					     tz, pops[0], pops[1] };
	for (int i = 0; i < 14; i++)
		if (all[i])
			cudnnBackendDestroyDescriptor(all[i]);
	if (pops[2])
		cudnnBackendDestroyDescriptor(pops[2]);
	return res;
}
