/* vae_cuda.c: the Wan VAE on one GPU (see vae_cuda.h for the design). */
#include "plugins/wan/cuda/vae_cuda.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "plugins/wan/cuda/cuda_check.h"
#include "plugins/wan/cuda/gemm_lt.h"
#include "plugins/wan/cuda/vae_conv_be.h"
#include "plugins/wan/cuda/vae_kernels.h"
#include "plugins/wan/taehv_model_internal.h"
#include "plugins/wan/vae_model_internal.h"
#include "plugins/wan/wt_file.h"

/* The legacy cuDNN convolution API is deprecated in cuDNN 9 but still the direct way to run
 * NDHWC bf16 3D convolutions with tensor cores; its behaviour is checked by tests/gpu_vae.c. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#define BF 2 /* bytes per bf16 */
#define WS_BYTES ((size_t)256 << 20)

enum op_kind {
	OP_CONV, OP_GEMM, OP_RMS, OP_BIASRES, OP_UP, OP_SOFTMAX, OP_TRANSPOSE, OP_ADD, OP_COPY,
	OP_FRAMES_IN, OP_LAT_IN, OP_LAT_OUT, OP_FRAMES_OUT,
	OP_TIN, OP_TOUT, OP_MEMCAT, OP_BIASACT, OP_RMSRES,
};

struct op {
	enum op_kind k;
	const void *a, *b;       /* inputs */
	void *y;                 /* output */
	const float *f1, *f2;    /* bias / gamma */
	int i[8];
	int64_t n;
	cudnnTensorDescriptor_t xd, yd;
	cudnnFilterDescriptor_t wd;
	cudnnConvolutionDescriptor_t cd;
	cudnnConvolutionFwdAlgo_t algo;
	size_t ws;
	double flops;            /* conv / GEMM FLOPs, for the profile */
	int dt;                  /* VAE_DT_*: the 16-bit type of the activations */
	int f32out;              /* GEMM: f32 result */
	/* fused conv (cudnnConvolutionBiasActivationForward): y = act(conv + z + bias) */
	int fused;
	const void *z;           /* residual (alpha2 = 1) or NULL (z = y, alpha2 = 0) */
	const void *bias16;      /* bias in the activation type */
	cudnnTensorDescriptor_t bd;
	cudnnActivationDescriptor_t ad;
	struct vae_conv_be *be;  /* new: the conv through the backend API (faster engine) */
	float be_ms;             /* its time at build */
	struct vae_conv_be_shape bsh;
};

struct plan {
	struct op *ops; /* new */
	int n, cap;
	cudaGraphExec_t exec;
	int runs, no_graph;
};

struct slotbuf {
	char *d;     /* device; front frames of cache, then the call's frames */
	int front, cap;
	size_t fe;   /* elements per frame */
};

struct dmap {
	const void *host;
	void *dev, *dev16;
};

struct vae_cuda {
	const struct vae_model *m; /* borrowed */
	int what, H, W, find;
	cudaStream_t st;
	cudnnHandle_t dnn;
	struct wan_gemm *gemm;
	void **allocs;
	int nallocs, capallocs;
	size_t wbytes, abytes;
	void *ws;
	struct slotbuf *eslots, *dslots;
	struct plan enc_first, enc_steady, dec_first, dec_steady;
	float *in_dev, *out_dev, *mean, *std;
	int first_enc, first_dec;
	cudaEvent_t ev0, ev1;
	double gpu_ms; /* GPU time of the plans run by the last encode/decode call */
	struct dmap *maps;
	int nmaps, capmaps;
	int enc_dt, dec_dt;        /* VAE_DT_*: encoder fp16, decoder bf16 (HERU_VAE_ENC/DEC_DTYPE) */
	int fuse;                  /* fold bias/residual/ReLU into the convs (HERU_VAE_FUSE=1) */
	int be;                    /* time backend-API engines per conv (default; HERU_VAE_BE=0) */
	int be_fuse;               /* and their fused bias/residual/ReLU forms (HERU_VAE_BE_FUSE) */
	int merge;                 /* bias+residual merged into the next norm (HERU_VAE_MERGE=0: off) */
};

struct tns {
	void *d;
	int t, h, w, c;
};

/* ---- memory ---- */

static void *dalloc(struct vae_cuda *v, size_t bytes, int weights, char *err, size_t errlen)
{
	void *p = NULL;
	if (v->nallocs == v->capallocs) {
		int cap = v->capallocs ? 2 * v->capallocs : 256;
		void **a = realloc(v->allocs, sizeof(*a) * cap);
		if (!a) {
			snprintf(err, errlen, "out of memory");
			return NULL;
		}
		v->allocs = a;
		v->capallocs = cap;
	}
	cudaError_t e = cudaMalloc(&p, bytes ? bytes : 16);
	if (e != cudaSuccess) {
		snprintf(err, errlen, "cudaMalloc(%zu) failed: %s", bytes, cudaGetErrorString(e));
		return NULL;
	}
	v->allocs[v->nallocs++] = p;
	*(weights ? &v->wbytes : &v->abytes) += bytes;
	return p;
}

static struct dmap *find_map(struct vae_cuda *v, const void *host)
{
	for (int i = 0; i < v->nmaps; i++)
		if (v->maps[i].host == host)
			return &v->maps[i];
	return NULL;
}

static struct dmap *new_map(struct vae_cuda *v, const void *host)
{
	if (v->nmaps == v->capmaps) {
		int cap = v->capmaps ? 2 * v->capmaps : 256;
		struct dmap *m = realloc(v->maps, sizeof(*m) * cap);
		if (!m)
			return NULL;
		v->maps = m;
		v->capmaps = cap;
	}
	struct dmap *m = &v->maps[v->nmaps++];
	memset(m, 0, sizeof(*m));
	m->host = host;
	return m;
}

/* f32 vector on the device (gammas, biases), and a 16-bit copy of type DT when BF16. */
static const float *up_f32(struct vae_cuda *v, const float *host, int n, void **bf16, int dt,
			   char *err, size_t errlen)
{
	struct dmap *m = find_map(v, host);
	if (!m) {
		if (!(m = new_map(v, host)) || !(m->dev = dalloc(v, sizeof(float) * n, 1, err, errlen)))
			return NULL;
		if (cudaMemcpy(m->dev, host, sizeof(float) * n, cudaMemcpyHostToDevice) != cudaSuccess) {
			snprintf(err, errlen, "cudaMemcpy of weights failed");
			return NULL;
		}
	}
	if (bf16 && !m->dev16) {
		if (!(m->dev16 = dalloc(v, sizeof(uint16_t) * n, 1, err, errlen)) ||
		    vae_k_f32_to(NULL, dt, m->dev, m->dev16, n, err, errlen) ||
		    cudaDeviceSynchronize() != cudaSuccess) {
			if (!err[0])
				snprintf(err, errlen, "cannot convert a bias on the GPU");
			return NULL;
		}
	}
	if (bf16)
		*bf16 = m->dev16;
	return m->dev;
}

/* Conv weight as DT [cout][kt][kh][kw][cin] (cuDNN KDRSC; for 1x1 the GEMM's W[N,K]). */
static void *up_conv(struct vae_cuda *v, const struct vae_conv_w *cw, int dt, char *err,
		     size_t errlen)
{
	struct dmap *m = find_map(v, cw->w);
	if (m)
		return m->dev;
	const struct vae_conv_shape *s = &cw->s;
	size_t taps = (size_t)s->kt * s->kh * s->kw, n = taps * s->cin * s->cout;
	float *tmp = malloc(sizeof(float) * n), *dtmp = NULL;
	if (!tmp || !(m = new_map(v, cw->w)) || !(m->dev = dalloc(v, n * BF, 1, err, errlen))) {
		free(tmp);
		if (!err[0])
			snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t tp = 0; tp < taps; tp++)
		for (int ci = 0; ci < s->cin; ci++)
			for (int co = 0; co < s->cout; co++)
				tmp[((size_t)co * taps + tp) * s->cin + ci] =
					cw->w[(tp * s->cin + ci) * s->cout + co];
	cudaError_t e = cudaMalloc((void **)&dtmp, sizeof(float) * n);
	if (e == cudaSuccess)
		e = cudaMemcpy(dtmp, tmp, sizeof(float) * n, cudaMemcpyHostToDevice);
	free(tmp);
	if (e == cudaSuccess && vae_k_f32_to(NULL, dt, dtmp, m->dev, (int64_t)n, err, errlen))
		e = cudaErrorUnknown;
	if (e == cudaSuccess)
		e = cudaDeviceSynchronize();
	cudaFree(dtmp);
	if (e != cudaSuccess) {
		if (!err[0])
			snprintf(err, errlen, "upload of weights failed: %s", cudaGetErrorString(e));
		return NULL;
	}
	return m->dev;
}

/* ---- plan building ---- */

static struct op *add_op(struct plan *p, enum op_kind k)
{
	if (p->n == p->cap) {
		int cap = p->cap ? 2 * p->cap : 256;
		struct op *o = realloc(p->ops, sizeof(*o) * cap);
		if (!o)
			return NULL;
		p->ops = o;
		p->cap = cap;
	}
	struct op *o = &p->ops[p->n++];
	memset(o, 0, sizeof(*o));
	o->k = k;
	return o;
}

struct bctx {
	struct vae_cuda *v;
	struct plan *p;
	struct slotbuf *slots;
	int first;
	char *err;
	size_t errlen;
	int fail;
	int dt; /* VAE_DT_* of this plan's activations */
};

#define B_CHECK(x) do { if (!(x)) { b->fail = 1; if (!b->err[0]) snprintf(b->err, b->errlen, \
	"cannot plan the VAE (%s:%d)", __FILE__, __LINE__); return NULL; } } while (0)

static void *b_alloc(struct bctx *b, size_t elems)
{
	return dalloc(b->v, elems * BF, 0, b->err, b->errlen);
}

/* Where the producer of a cached conv's input writes T frames (after the front cache). */
static void *slot_in(struct bctx *b, int slot, int front, int t, int h, int w, int c)
{
	struct slotbuf *s = &b->slots[slot];
	size_t fe = (size_t)h * w * c;
	if (!s->d) {
		s->d = b_alloc(b, fe * (front + t));
		if (!s->d)
			return NULL;
		s->front = front;
		s->cap = t;
		s->fe = fe;
		cudaMemset(s->d, 0, fe * (front + t) * BF);
	}
	if (s->fe != fe || s->front != front || t > s->cap)
		return NULL;
	return s->d + (size_t)front * fe * BF;
}

static cudnnDataType_t dnn_type(int dt)
{
	return dt == VAE_DT_F16 ? CUDNN_DATA_HALF : CUDNN_DATA_BFLOAT16;
}

static int set_desc5(cudnnTensorDescriptor_t d, int dt, int c, int t, int h, int w)
{
	int dims[5] = { 1, c, t, h, w };
	int str[5] = { t * h * w * c, 1, h * w * c, w * c, c };
	return cudnnSetTensorNdDescriptor(d, dnn_type(dt), 5, dims, str) != CUDNN_STATUS_SUCCESS;
}

/* Conv over X [t][h][w][cin] (no time padding) with CW's weights and kernel; output allocated,
 * without bias. Kernel/stride/pad come from CW's shape; STRIDE_HW overrides the spatial stride
 * (downsample), PAD the spatial padding. */
static void *b_conv(struct bctx *b, const void *x, int t, int h, int w,
		    const struct vae_conv_w *cw, int *tout, int *hout, int *wout)
{
	struct vae_cuda *v = b->v;
	const struct vae_conv_shape *s = &cw->s;
	struct op *o = add_op(b->p, OP_CONV);
	B_CHECK(o);
	o->dt = b->dt;
	void *wt = up_conv(v, cw, b->dt, b->err, b->errlen);
	B_CHECK(wt);
	int pad[3] = { 0, s->pad_top, s->pad_left }, str[3] = { s->st, s->sh, s->sw },
	    dil[3] = { 1, 1, 1 };
	int fdim[5] = { s->cout, s->cin, s->kt, s->kh, s->kw };
	B_CHECK(cudnnCreateTensorDescriptor(&o->xd) == 0 && cudnnCreateTensorDescriptor(&o->yd) == 0 &&
		cudnnCreateFilterDescriptor(&o->wd) == 0 && cudnnCreateConvolutionDescriptor(&o->cd) == 0);
	B_CHECK(set_desc5(o->xd, b->dt, s->cin, t, h, w) == 0);
	B_CHECK(cudnnSetFilterNdDescriptor(o->wd, dnn_type(b->dt), CUDNN_TENSOR_NHWC, 5, fdim) == 0);
	B_CHECK(cudnnSetConvolutionNdDescriptor(o->cd, 3, pad, str, dil, CUDNN_CROSS_CORRELATION,
						CUDNN_DATA_FLOAT) == 0);
	B_CHECK(cudnnSetConvolutionMathType(o->cd, CUDNN_TENSOR_OP_MATH) == 0);
	int od[5];
	B_CHECK(cudnnGetConvolutionNdForwardOutputDim(o->cd, o->xd, o->wd, 5, od) == 0);
	B_CHECK(od[1] == s->cout && od[2] >= 1);
	*tout = od[2];
	*hout = od[3];
	*wout = od[4];
	B_CHECK(set_desc5(o->yd, b->dt, s->cout, od[2], od[3], od[4]) == 0);
	void *y = b_alloc(b, (size_t)od[2] * od[3] * od[4] * s->cout);
	B_CHECK(y);
	cudnnConvolutionFwdAlgoPerf_t perf[8];
	int got = 0;
	if (v->find) {
		B_CHECK(cudnnFindConvolutionForwardAlgorithmEx(v->dnn, o->xd, x, o->wd, wt, o->cd, o->yd, y,
							       8, &got, perf, v->ws, WS_BYTES) == 0);
	} else {
		B_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(v->dnn, o->xd, o->wd, o->cd, o->yd, 8, &got,
							       perf) == 0);
	}
	int pick = -1;
	for (int i = 0; i < got && pick < 0; i++)
		if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= WS_BYTES)
			pick = i;
	B_CHECK(pick >= 0);
	o->algo = perf[pick].algo;
	o->ws = perf[pick].memory;
	if (v->be) {
		struct vae_conv_be_shape sh = { b->dt == VAE_DT_F16, s->cin, s->cout, t, h, w, od[2], od[3],
						od[4], s->kt, s->kh, s->kw, s->st, s->sh, s->sw, 0,
						s->pad_top, s->pad_left };
		float ms = 0.0f;
		char e2[256];
		o->be = vae_conv_be_new(v->dnn, v->st, &sh, x, wt, y, v->ws, WS_BYTES, 16, &ms, e2,
					sizeof(e2));
		o->be_ms = ms;
		o->bsh = sh;
		if (o->be && v->find && perf[pick].time < ms) { /* the legacy algorithm is faster */
			vae_conv_be_free(o->be);
			o->be = NULL;
		}
		cudaGetLastError();
	}
	o->flops = 2.0 * od[2] * od[3] * od[4] * (double)s->cout * s->cin * s->kt * s->kh * s->kw;
	o->a = x;
	o->b = wt;
	o->y = y;
	return y;
}

static struct op *b_op(struct bctx *b, enum op_kind k)
{
	struct op *o = add_op(b->p, k);
	if (!o)
		b->fail = 1;
	else
		o->dt = b->dt;
	return o;
}

/* A new op of kind K reading A and writing Y, with the integer arguments I0, I1, I2 (the
 * others zero); NULL (and b->fail) when out of memory. */
static struct op *b_io(struct bctx *b, enum op_kind k, const void *a, void *y, int i0, int i1,
		       int i2)
{
	struct op *o = b_op(b, k);
	if (!o)
		return NULL;
	o->a = a;
	o->y = y;
	o->i[0] = i0;
	o->i[1] = i1;
	o->i[2] = i2;
	return o;
}

/* A device-to-device copy of BYTES from SRC to DST. */
static int b_copy(struct bctx *b, const void *src, void *dst, size_t bytes)
{
	struct op *o = b_io(b, OP_COPY, src, dst, 0, 0, 0);
	if (!o)
		return -1;
	o->n = (int64_t)bytes;
	return 0;
}

static int exec_op(struct vae_cuda *v, const struct op *o, char *err, size_t errlen);
static const float *wf(struct bctx *b, const float *host, int n, void **b16);

/* Folds BIAS (host f32, C channels), the residual RES (or NULL) and ReLU (RELU) into the conv
 * just planned, so that its output is the finished activation. Returns 0 when cuDNN runs the
 * fused form (tried once here), else -1 and the conv stays as it was (the caller then adds
 * its own elementwise op). Only when the engine was asked to fuse. */
static int b_fuse(struct bctx *b, const float *bias, int c, const void *res, int relu)
{
	struct vae_cuda *v = b->v;
	if (!(v->fuse || v->be_fuse) || b->fail || !b->p->n || !bias)
		return -1;
	struct op *o = &b->p->ops[b->p->n - 1];
	void *b16 = NULL;
	if (o->k != OP_CONV)
		return -1;
	if (o->be) {
		/* the epilogue in the backend graph, kept when it costs under 10% over the plain conv
		 * (the elementwise pass it replaces costs more) */
		const float *bd = wf(b, bias, c, NULL);
		float ms = 0.0f;
		char e2[256];
		struct vae_conv_be *f = !bd || !v->be_fuse ? NULL :
			vae_conv_be_new_fused(v->dnn, v->st, &o->bsh, o->a, o->b, bd, res, relu, o->y,
					      v->ws, WS_BYTES, 8, &ms, e2, sizeof(e2));
		cudaGetLastError();
		if (!f || ms > 1.1f * o->be_ms) {
			vae_conv_be_free(f);
			return -1;
		}
		vae_conv_be_free(o->be);
		o->be = f;
		o->be_ms = ms;
		return 0;
	}
	if (!v->fuse || !wf(b, bias, c, &b16) || !b16)
		return -1;
	int dims[5] = { 1, c, 1, 1, 1 }, str[5] = { c, 1, 1, 1, 1 };
	struct op save = *o;
	if (cudnnCreateTensorDescriptor(&o->bd) ||
	    cudnnSetTensorNdDescriptor(o->bd, dnn_type(o->dt), 5, dims, str) ||
	    cudnnCreateActivationDescriptor(&o->ad) ||
	    cudnnSetActivationDescriptor(o->ad, relu ? CUDNN_ACTIVATION_RELU : CUDNN_ACTIVATION_IDENTITY,
					 CUDNN_NOT_PROPAGATE_NAN, 0.0))
		goto no;
	if (!relu) {
		size_t ws = 0;
		o->algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
		if (cudnnGetConvolutionForwardWorkspaceSize(v->dnn, o->xd, o->wd, o->cd, o->yd, o->algo,
							    &ws) || ws > WS_BYTES)
			goto no;
		o->ws = ws;
	}
	o->fused = 1;
	o->z = res;
	o->bias16 = b16;
	char e2[256];
	if (exec_op(v, o, e2, sizeof(e2)) || cudaStreamSynchronize(v->st) != cudaSuccess)
		goto no;
	return 0;
no:
	cudaGetLastError();
	if (o->bd)
		cudnnDestroyTensorDescriptor(o->bd);
	if (o->ad)
		cudnnDestroyActivationDescriptor(o->ad);
	*o = save;
	o->bd = NULL;
	o->ad = NULL;
	return -1;
}

/* Moves the last FRONT frames of a slot's [front + t] buffer to its front. */
static void b_cache(struct bctx *b, int slot, int t)
{
	struct slotbuf *s = &b->slots[slot];
	for (int i = 0; i < s->front; i++)
		if (b_copy(b, s->d + (size_t)(t + i) * s->fe * BF, s->d + (size_t)i * s->fe * BF,
			   s->fe * BF))
			return;
}

static void b_biasres(struct bctx *b, const void *src, const float *bias, const void *res,
		      void *dst, int t, int h, int w, int c, int dh, int dw)
{
	struct op *o = b_io(b, OP_BIASRES, src, dst, t, h, w);
	if (!o)
		return;
	o->f1 = bias;
	o->b = res;
	o->i[3] = c;
	o->i[4] = dh;
	o->i[5] = dw;
}

static void b_rms(struct bctx *b, const void *src, const float *bias, const float *gamma,
		  void *dst, int64_t p, int c, int silu)
{
	struct op *o = b_io(b, OP_RMS, src, dst, c, silu, 0);
	if (!o)
		return;
	o->f1 = bias;
	o->f2 = gamma;
	o->n = p;
}

static void b_gemm(struct bctx *b, int m, int n, int k, const void *x, int ldx, const void *w,
		   int ldw, const void *bias16, void *y, int ldy)
{
	struct op *o = b_io(b, OP_GEMM, x, y, m, n, k);
	if (!o)
		return;
	o->b = w;
	o->f1 = bias16;
	o->i[3] = ldx;
	o->i[4] = ldw;
	o->i[5] = ldy;
	o->flops = 2.0 * m * n * (double)k;
}

static const float *wf(struct bctx *b, const float *host, int n, void **b16)
{
	const float *d = up_f32(b->v, host, n, b16, b->dt, b->err, b->errlen);
	if (!d)
		b->fail = 1;
	return d;
}

/* A cached k_t=3 conv whose input the caller wrote at slot_in(); returns its output. */
static void *b_cconv(struct bctx *b, const struct vae_conv_w *cw, int t, int h, int w)
{
	struct slotbuf *s = &b->slots[cw->slot];
	int to, ho, wo;
	void *y = b_conv(b, s->d, s->front + t, h, w, cw, &to, &ho, &wo);
	if (y)
		b_cache(b, cw->slot, t);
	return y;
}

static int b_res(struct bctx *b, const struct vae_block *blk, struct tns *x)
{
	int64_t p = (int64_t)x->t * x->h * x->w;
	void *ain = slot_in(b, blk->a.slot, 2, x->t, x->h, x->w, blk->cin);
	if (!ain)
		return -1;
	b_rms(b, x->d, NULL, wf(b, blk->g1, blk->cin, NULL), ain, p, blk->cin, 1);
	void *ta = b_cconv(b, &blk->a, x->t, x->h, x->w);
	void *bin = slot_in(b, blk->b.slot, 2, x->t, x->h, x->w, blk->cout);
	if (!ta || !bin)
		return -1;
	b_rms(b, ta, wf(b, blk->a.b, blk->cout, NULL), wf(b, blk->g2, blk->cout, NULL), bin, p,
	      blk->cout, 1);
	struct slotbuf *bs = &b->slots[blk->b.slot];
	int to, ho, wo;
	void *tb = b_conv(b, bs->d, bs->front + x->t, x->h, x->w, &blk->b, &to, &ho, &wo);
	if (!tb)
		return -1;
	const void *res = x->d;
	if (blk->has_sc) {
		void *sc = b_alloc(b, (size_t)p * blk->cout), *b16 = NULL;
		void *w = up_conv(b->v, &blk->sc, b->dt, b->err, b->errlen);
		wf(b, blk->sc.b, blk->cout, &b16);
		if (!sc || !w || !b16)
			return -1;
		/* the shortcut runs first: the fused conv reads it */
		struct op *cv = &b->p->ops[b->p->n - 1], tmp = *cv;
		b->p->n--;
		b_gemm(b, (int)p, blk->cout, blk->cin, x->d, blk->cin, w, blk->cin, b16, sc, blk->cout);
		struct op *no = add_op(b->p, OP_CONV);
		if (!no)
			return -1;
		*no = tmp;
		res = sc;
	}
	void *nx = tb;
	int fused = !b_fuse(b, blk->b.b, blk->cout, res, 0);
	b_cache(b, blk->b.slot, x->t); /* before the bias+residual op, so the next norm can merge */
	if (!fused) {
		nx = b_alloc(b, (size_t)p * blk->cout);
		if (!nx)
			return -1;
		b_biasres(b, tb, wf(b, blk->b.b, blk->cout, NULL), res, nx, x->t, x->h, x->w, blk->cout,
			  x->h, x->w);
	}
	x->d = nx;
	x->c = blk->cout;
	return b->fail ? -1 : 0;
}

static int b_attn(struct bctx *b, const struct vae_block *blk, struct tns *x)
{
	int c = x->c, n = x->h * x->w;
	int64_t p = (int64_t)x->t * n;
	void *xn = b_alloc(b, (size_t)p * c), *qkv = b_alloc(b, (size_t)p * 3 * c);
	/* scores f32 (2 x 16-bit elements each), probabilities 16-bit */
	void *s = b_alloc(b, (size_t)2 * n * n), *pb = b_alloc(b, (size_t)n * n);
	void *vt = b_alloc(b, (size_t)c * n);
	void *o = b_alloc(b, (size_t)p * c), *pr = b_alloc(b, (size_t)p * c);
	void *wq = up_conv(b->v, &blk->a, b->dt, b->err, b->errlen);
	void *wp = up_conv(b->v, &blk->b, b->dt, b->err, b->errlen);
	void *bq = NULL, *bp = NULL;
	wf(b, blk->a.b, 3 * c, &bq);
	wf(b, blk->b.b, c, &bp);
	if (!xn || !qkv || !s || !pb || !vt || !o || !pr || !wq || !wp || !bq || !bp)
		return -1;
	b_rms(b, x->d, NULL, wf(b, blk->g1, c, NULL), xn, p, c, 0);
	b_gemm(b, (int)p, 3 * c, c, xn, c, wq, c, bq, qkv, 3 * c);
	for (int f = 0; f < x->t; f++) {
		char *q = (char *)qkv + (size_t)f * n * 3 * c * BF;
		b_gemm(b, n, n, c, q, 3 * c, q + (size_t)c * BF, 3 * c, NULL, s, n);
		if (b->fail)
			return -1;
		b->p->ops[b->p->n - 1].f32out = 1;
		struct op *op = b_io(b, OP_SOFTMAX, s, pb, n, n, 0);
		if (!op)
			return -1;
		op->n = c;
		if (!b_io(b, OP_TRANSPOSE, q + (size_t)2 * c * BF, vt, 3 * c, n, c))
			return -1;
		b_gemm(b, n, c, n, pb, n, vt, n, NULL, (char *)o + (size_t)f * n * c * BF, c);
	}
	b_gemm(b, (int)p, c, c, o, c, wp, c, bp, pr, c);
	struct op *op = b_io(b, OP_ADD, pr, x->d, 0, 0, 0);
	if (!op)
		return -1;
	op->n = p * c;
	return b->fail ? -1 : 0;
}

static int b_down(struct bctx *b, const struct vae_block *blk, struct tns *x)
{
	int t = x->t, h = x->h, w = x->w, c = x->c, to, ho, wo;
	void *pad = b_alloc(b, (size_t)t * (h + 1) * (w + 1) * c);
	if (!pad)
		return -1;
	cudaMemset(pad, 0, (size_t)t * (h + 1) * (w + 1) * c * BF);
	b_biasres(b, x->d, NULL, NULL, pad, t, h, w, c, h + 1, w + 1);
	void *ts = b_conv(b, pad, t, h + 1, w + 1, &blk->a, &to, &ho, &wo);
	if (!ts || ho != h / 2 || wo != w / 2)
		return -1;
	const float *bias = wf(b, blk->a.b, c, NULL);
	size_t fe = (size_t)ho * wo * c;
	if (blk->kind == VK_DOWN2D || b->first) {
		void *nx = b_alloc(b, (size_t)t * fe);
		if (!nx)
			return -1;
		b_biasres(b, ts, bias, NULL, nx, t, ho, wo, c, ho, wo);
		if (blk->kind == VK_DOWN3D) {
			/* first call: remember the last frame, no time_conv */
			if (!slot_in(b, blk->slot, 1, t, ho, wo, c))
				return -1;
			if (b_copy(b, (char *)nx + (size_t)(t - 1) * fe * BF, b->slots[blk->slot].d,
				   fe * BF))
				return -1;
		}
		x->d = nx;
	} else {
		void *sin = slot_in(b, blk->slot, 1, t, ho, wo, c);
		if (!sin)
			return -1;
		b_biasres(b, ts, bias, NULL, sin, t, ho, wo, c, ho, wo);
		int tt, h2, w2;
		void *y = b_conv(b, b->slots[blk->slot].d, 1 + t, ho, wo, &blk->b, &tt, &h2, &w2);
		void *nx = y ? b_alloc(b, (size_t)tt * fe) : NULL;
		if (!nx)
			return -1;
		b_cache(b, blk->slot, t);
		b_biasres(b, y, wf(b, blk->b.b, c, NULL), NULL, nx, tt, ho, wo, c, ho, wo);
		x->d = nx;
		x->t = tt;
	}
	x->h = ho;
	x->w = wo;
	return b->fail ? -1 : 0;
}

static int b_up(struct bctx *b, const struct vae_block *blk, struct tns *x)
{
	int t = x->t, h = x->h, w = x->w, c = x->c, to, ho, wo;
	void *up;
	if (blk->kind == VK_UP3D && !b->first) {
		void *sin = slot_in(b, blk->slot, 2, t, h, w, c);
		if (!sin)
			return -1;
		b_biasres(b, x->d, NULL, NULL, sin, t, h, w, c, h, w);
		int tt, h2, w2;
		void *y = b_conv(b, b->slots[blk->slot].d, 2 + t, h, w, &blk->b, &tt, &h2, &w2);
		if (!y)
			return -1;
		b_cache(b, blk->slot, t);
		up = b_alloc(b, (size_t)2 * t * 4 * h * w * c);
		struct op *o = b_io(b, OP_UP, y, up, t, h, w);
		if (!up || !o)
			return -1;
		o->f1 = wf(b, blk->b.b, 2 * c, NULL);
		o->i[3] = c;
		o->i[4] = 1;
		t *= 2;
	} else {
		up = b_alloc(b, (size_t)t * 4 * h * w * c);
		struct op *o = b_io(b, OP_UP, x->d, up, t, h, w);
		if (!up || !o)
			return -1;
		o->i[3] = c;
	}
	void *tc = b_conv(b, up, t, 2 * h, 2 * w, &blk->a, &to, &ho, &wo);
	if (!tc)
		return -1;
	void *nx = tc;
	if (b_fuse(b, blk->a.b, blk->cout, NULL, 0)) {
		nx = b_alloc(b, (size_t)t * ho * wo * blk->cout);
		if (!nx)
			return -1;
		b_biasres(b, tc, wf(b, blk->a.b, blk->cout, NULL), NULL, nx, t, ho, wo, blk->cout, ho, wo);
	}
	x->d = nx;
	x->t = t;
	x->h = ho;
	x->w = wo;
	x->c = blk->cout;
	return b->fail ? -1 : 0;
}

/* The coder body after conv_in's input was written into its slot; X gets the head conv's
 * output (no bias). */
static int b_coder(struct bctx *b, const struct vae_coder *cd, struct tns *x)
{
	void *t0 = b_cconv(b, &cd->conv_in, x->t, x->h, x->w);
	int64_t p = (int64_t)x->t * x->h * x->w;
	if (!t0)
		return -1;
	void *nx = t0;
	/* b_cconv's cache copies follow the conv: fuse into the conv before them */
	int ncopy = b->slots[cd->conv_in.slot].front;
	struct op cp[2];
	memcpy(cp, &b->p->ops[b->p->n - ncopy], sizeof(struct op) * ncopy);
	b->p->n -= ncopy;
	int fused = !b_fuse(b, cd->conv_in.b, cd->conv_in.s.cout, NULL, 0);
	for (int i = 0; i < ncopy; i++) {
		struct op *o = add_op(b->p, OP_COPY);
		if (!o)
			return -1;
		*o = cp[i];
	}
	if (!fused) {
		nx = b_alloc(b, (size_t)p * cd->conv_in.s.cout);
		if (!nx)
			return -1;
		b_biasres(b, t0, wf(b, cd->conv_in.b, cd->conv_in.s.cout, NULL), NULL, nx, x->t, x->h,
			  x->w, cd->conv_in.s.cout, x->h, x->w);
	}
	x->d = nx;
	x->c = cd->conv_in.s.cout;
	for (int i = 0; i < cd->nblocks; i++) {
		const struct vae_block *blk = &cd->blocks[i];
		int rc;
		switch (blk->kind) {
		case VK_RES: rc = b_res(b, blk, x); break;
		case VK_ATTN: rc = b_attn(b, blk, x); break;
		case VK_DOWN2D:
		case VK_DOWN3D: rc = b_down(b, blk, x); break;
		default: rc = b_up(b, blk, x); break;
		}
		if (rc)
			return -1;
	}
	p = (int64_t)x->t * x->h * x->w;
	void *hin = slot_in(b, cd->head.slot, 2, x->t, x->h, x->w, x->c);
	if (!hin)
		return -1;
	b_rms(b, x->d, NULL, wf(b, cd->head_g, x->c, NULL), hin, p, x->c, 1);
	void *th = b_cconv(b, &cd->head, x->t, x->h, x->w);
	if (!th)
		return -1;
	x->d = th;
	x->c = cd->head.s.cout;
	return b->fail ? -1 : 0;
}

static int build_encoder(struct vae_cuda *v, struct plan *p, int first, char *err, size_t errlen)
{
	const struct vae_model *m = v->m;
	int t = first ? 1 : vae_config_temporal(&m->cfg), z = m->cfg.z_dim;
	struct bctx bc = { v, p, v->eslots, first, err, errlen, 0, v->enc_dt }, *b = &bc;
	struct tns x = { NULL, t, v->H, v->W, 3 };
	void *cin = slot_in(b, m->enc.conv_in.slot, 2, t, v->H, v->W, 3);
	struct op *o = b_io(b, OP_FRAMES_IN, v->in_dev, cin, t, v->H, v->W);
	if (!cin || !o)
		return -1;
	if (b_coder(b, &m->enc, &x))
		return -1;
	int hw = x.h * x.w;
	void *hb = b_alloc(b, (size_t)x.t * hw * 2 * z), *q = b_alloc(b, (size_t)x.t * hw * 2 * z);
	void *wq = up_conv(v, &m->quant, b->dt, err, errlen), *bq = NULL;
	wf(b, m->quant.b, 2 * z, &bq);
	if (!hb || !q || !wq || !bq)
		return -1;
	b_biasres(b, x.d, wf(b, m->enc.head.b, 2 * z, NULL), NULL, hb, x.t, x.h, x.w, 2 * z, x.h, x.w);
	b_gemm(b, x.t * hw, 2 * z, 2 * z, hb, 2 * z, wq, 2 * z, bq, q, 2 * z);
	for (int f = 0; f < x.t; f++)
		if (!b_io(b, OP_LAT_OUT, (char *)q + (size_t)f * hw * 2 * z * BF,
			  v->out_dev + (size_t)f * z * hw, 2 * z, z, hw))
			return -1;
	return b->fail ? -1 : 0;
}

static int build_decoder(struct vae_cuda *v, struct plan *p, int first, char *err, size_t errlen)
{
	const struct vae_model *m = v->m;
	int sp = vae_config_spatial(&m->cfg), z = m->cfg.z_dim, h = v->H / sp, w = v->W / sp;
	struct bctx bc = { v, p, v->dslots, first, err, errlen, 0, v->dec_dt }, *b = &bc;
	struct tns x = { NULL, 1, h, w, z };
	void *li = b_alloc(b, (size_t)h * w * z), *bq = NULL;
	void *wq = up_conv(v, &m->post_quant, b->dt, err, errlen);
	wf(b, m->post_quant.b, z, &bq);
	void *cin = slot_in(b, m->dec.conv_in.slot, 2, 1, h, w, z);
	struct op *o = b_io(b, OP_LAT_IN, v->in_dev, li, z, h, w);
	if (!li || !wq || !bq || !cin || !o)
		return -1;
	o->f1 = v->mean;
	o->f2 = v->std;
	b_gemm(b, h * w, z, z, li, z, wq, z, bq, cin, z);
	if (b_coder(b, &m->dec, &x))
		return -1;
	if (!(o = b_io(b, OP_FRAMES_OUT, x.d, v->out_dev, x.t, x.h, x.w)))
		return -1;
	o->f1 = wf(b, m->dec.head.b, 3, NULL);
	return b->fail ? -1 : 0;
}

/* Peephole: a bias+residual op (no padding pitch) directly followed by the norm of its output
 * becomes one op that writes both (one read of the sum less). */
static void merge_ops(struct plan *p)
{
	int w = 0;
	for (int i = 0; i < p->n; i++) {
		struct op *o = &p->ops[i], *q = i + 1 < p->n ? &p->ops[i + 1] : NULL;
		int c = o->i[3];
		if (q && o->k == OP_BIASRES && q->k == OP_RMS && q->a == o->y && !q->f1 &&
		    o->dt == q->dt && o->i[4] == o->i[1] && o->i[5] == o->i[2] && q->i[0] == c &&
		    c % 8 == 0 && c <= 512 && (int64_t)o->i[0] * o->i[1] * o->i[2] == q->n &&
		    !((uintptr_t)o->a & 15) && !((uintptr_t)o->b & 15) && !((uintptr_t)o->y & 15) &&
		    !((uintptr_t)q->y & 15)) {
			struct op m = *q;
			m.k = OP_RMSRES;
			m.a = o->a;
			m.f1 = o->f1;
			m.b = o->b;
			m.z = o->y;
			p->ops[w++] = m;
			i++;
			continue;
		}
		p->ops[w++] = *o;
	}
	p->n = w;
}

/* ---- execution ---- */

static int exec_op(struct vae_cuda *v, const struct op *o, char *err, size_t errlen)
{
	cudaStream_t st = v->st;
	switch (o->k) {
	case OP_CONV: {
		float one = 1.0f, zero = 0.0f;
		if (o->be)
			return vae_conv_be_run(o->be, v->dnn, err, errlen);
		if (o->fused) {
			DNN_RET(cudnnConvolutionBiasActivationForward(
				v->dnn, &one, o->xd, o->a, o->wd, o->b, o->cd, o->algo, v->ws, o->ws,
				o->z ? &one : &zero, o->yd, o->z ? o->z : o->y, o->bd, o->bias16, o->ad,
				o->yd, o->y));
			return 0;
		}
		DNN_RET(cudnnConvolutionForward(v->dnn, &one, o->xd, o->a, o->wd, o->b, o->cd, o->algo,
						v->ws, o->ws, &zero, o->yd, o->y));
		return 0;
	}
	case OP_GEMM: {
		enum wan_gemm_type t = o->dt == VAE_DT_F16 ? WAN_GEMM_F16 : WAN_GEMM_BF16;
		return wan_gemm_ex(v->gemm, st, t, o->f32out ? WAN_GEMM_F32 : t, o->i[0], o->i[1], o->i[2],
				   o->a, o->i[3], o->b, o->i[4], o->f1,
				   o->f1 ? WAN_EPI_BIAS : WAN_EPI_NONE, o->y, o->i[5], err, errlen);
	}
	case OP_RMS:
		return vae_k_rms(st, o->dt, o->a, o->f1, o->f2, o->y, o->n, o->i[0], o->i[1], err, errlen);
	case OP_RMSRES:
		return vae_k_rms_res(st, o->dt, o->a, o->f1, o->b, (void *)o->z, o->f2, o->y, o->n, o->i[0],
				     o->i[1], err, errlen);
	case OP_BIASRES:
		return vae_k_bias_res(st, o->dt, o->a, o->f1, o->b, o->y, o->i[0], o->i[1], o->i[2], o->i[3],
				      o->i[4], o->i[5], err, errlen);
	case OP_UP:
		return vae_k_upsample(st, o->dt, o->a, o->f1, o->y, o->i[0], o->i[1], o->i[2], o->i[3], o->i[4],
				      err, errlen);
	case OP_SOFTMAX:
		return vae_k_softmax(st, o->dt, o->a, o->y, o->i[0], o->i[1], 1.0f / sqrtf((float)o->n),
				     err, errlen);
	case OP_TRANSPOSE:
		return vae_k_transpose(st, o->a, o->i[0], o->y, o->i[1], o->i[2], err, errlen);
	case OP_ADD:
		return vae_k_add(st, o->dt, o->y, o->a, o->n, err, errlen);
	case OP_COPY:
		CU_RET(cudaMemcpyAsync(o->y, o->a, (size_t)o->n, cudaMemcpyDeviceToDevice, st));
		return 0;
	case OP_FRAMES_IN:
		return vae_k_frames_in(st, o->dt, o->a, o->y, o->i[0], o->i[1], o->i[2], err, errlen);
	case OP_LAT_IN:
		return vae_k_latent_in(st, o->dt, o->a, o->y, o->i[0], o->i[1], o->i[2], o->f1, o->f2, err, errlen);
	case OP_LAT_OUT:
		return vae_k_latent_out(st, o->dt, o->a, o->i[0], o->y, o->i[1], o->i[2], err, errlen);
	case OP_FRAMES_OUT:
		return vae_k_frames_out(st, o->dt, o->a, o->f1, o->y, o->i[0], o->i[1], o->i[2], err, errlen);
	case OP_TIN:
		return vae_k_taehv_in(st, o->a, o->y, o->i[0], o->i[1], o->i[2], err, errlen);
	case OP_TOUT:
		return vae_k_taehv_out(st, o->a, o->f1, o->y, o->i[0], o->i[1], o->i[2], err, errlen);
	case OP_MEMCAT:
		return vae_k_memcat(st, o->a, o->b, o->y, o->i[0], o->n, o->i[1], err, errlen);
	case OP_BIASACT:
		return vae_k_bias_act(st, o->a, o->f1, o->b, o->y, o->n, o->i[0], o->i[1], err, errlen);
	}
	return -1;
}

static int exec_ops(struct vae_cuda *v, struct plan *p, char *err, size_t errlen)
{
	for (int i = 0; i < p->n; i++)
		if (exec_op(v, &p->ops[i], err, errlen))
			return -1;
	return 0;
}

/* Runs P: eagerly the first time; a steady plan is captured into a graph on its second run. */
static int run_plan(struct vae_cuda *v, struct plan *p, int steady, char *err, size_t errlen)
{
	int rc = 0;
	if (p->exec) {
		CU_TRY(cudaGraphLaunch(p->exec, v->st));
	} else if (steady && p->runs >= 1 && !p->no_graph && !getenv("HERU_VAE_NO_GRAPH")) {
		cudaGraph_t g = NULL;
		CU_TRY(cudaStreamBeginCapture(v->st, cudaStreamCaptureModeThreadLocal));
		int erc = exec_ops(v, p, err, errlen);
		cudaError_t ce = cudaStreamEndCapture(v->st, &g);
		if (erc || ce != cudaSuccess || cudaGraphInstantiate(&p->exec, g, 0) != cudaSuccess) {
			/* not capturable here: stay eager */
			cudaGetLastError();
			p->exec = NULL;
			p->no_graph = 1;
			if (g)
				cudaGraphDestroy(g);
			if (exec_ops(v, p, err, errlen))
				return -1;
		} else {
			cudaGraphDestroy(g);
			CU_TRY(cudaGraphLaunch(p->exec, v->st));
		}
	} else if (exec_ops(v, p, err, errlen)) {
		return -1;
	}
	p->runs++;
cleanup:
	return rc;
}

int vae_cuda_profile(struct vae_cuda *v, int decode, double *ms, double *flops, char *err,
		     size_t errlen)
{
	struct plan *p = decode ? &v->dec_steady : &v->enc_steady;
	cudaEvent_t *ev = calloc((size_t)p->n + 1, sizeof(*ev));
	int rc = 0;
	if (!ev) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int k = 0; k < VAE_PROF_N; k++)
		ms[k] = flops[k] = 0.0;
	for (int i = 0; i <= p->n; i++)
		CU_TRY(cudaEventCreate(&ev[i]));
	CU_TRY(cudaEventRecord(ev[0], v->st));
	for (int i = 0; i < p->n; i++) {
		if (exec_op(v, &p->ops[i], err, errlen)) {
			rc = -1;
			goto cleanup;
		}
		CU_TRY(cudaEventRecord(ev[i + 1], v->st));
	}
	CU_TRY(cudaStreamSynchronize(v->st));
	for (int i = 0; i < p->n; i++) {
		float t = 0.0f;
		CU_TRY(cudaEventElapsedTime(&t, ev[i], ev[i + 1]));
		enum op_kind k = p->ops[i].k;
		int cls = k == OP_CONV ? VAE_PROF_CONV : k == OP_GEMM ? VAE_PROF_GEMM :
			  k == OP_RMS || k == OP_RMSRES ? VAE_PROF_NORM : k == OP_COPY ? VAE_PROF_COPY : VAE_PROF_ELEM;
		ms[cls] += t;
		flops[cls] += p->ops[i].flops;
	}
cleanup:
	for (int i = 0; i <= p->n; i++)
		if (ev[i])
			cudaEventDestroy(ev[i]);
	free(ev);
	return rc;
}

/* ---- API ---- */

static void plan_free(struct plan *p)
{
	for (int i = 0; i < p->n; i++) {
		struct op *o = &p->ops[i];
		if (o->k != OP_CONV)
			continue;
		if (o->xd)
			cudnnDestroyTensorDescriptor(o->xd);
		if (o->yd)
			cudnnDestroyTensorDescriptor(o->yd);
		if (o->wd)
			cudnnDestroyFilterDescriptor(o->wd);
		if (o->cd)
			cudnnDestroyConvolutionDescriptor(o->cd);
		if (o->bd)
			cudnnDestroyTensorDescriptor(o->bd);
		if (o->ad)
			cudnnDestroyActivationDescriptor(o->ad);
		vae_conv_be_free(o->be);
	}
	if (p->exec)
		cudaGraphExecDestroy(p->exec);
	free(p->ops);
	memset(p, 0, sizeof(*p));
}

void vae_cuda_free(struct vae_cuda *v)
{
	if (!v)
		return;
	if (v->st)
		cudaStreamSynchronize(v->st);
	plan_free(&v->enc_first);
	plan_free(&v->enc_steady);
	plan_free(&v->dec_first);
	plan_free(&v->dec_steady);
	for (int i = 0; i < v->nallocs; i++)
		cudaFree(v->allocs[i]);
	free(v->allocs);
	free(v->maps);
	free(v->eslots);
	free(v->dslots);
	if (v->gemm)
		wan_gemm_free(v->gemm);
	if (v->dnn)
		cudnnDestroy(v->dnn);
	if (v->ev0)
		cudaEventDestroy(v->ev0);
	if (v->ev1)
		cudaEventDestroy(v->ev1);
	if (v->st)
		cudaStreamDestroy(v->st);
	free(v);
}

int vae_cuda_reset(struct vae_cuda *v, char *err, size_t errlen)
{
	int rc = 0;
	struct slotbuf *sl[2] = { v->eslots, v->dslots };
	int n[2] = { v->m ? v->m->enc.nslots : 0, v->m ? v->m->dec.nslots : 0 };
	for (int k = 0; k < 2; k++)
		for (int i = 0; sl[k] && i < n[k]; i++)
			if (sl[k][i].d)
				CU_TRY(cudaMemsetAsync(sl[k][i].d, 0,
						       sl[k][i].fe * (sl[k][i].front + sl[k][i].cap) * BF, v->st));
	CU_TRY(cudaStreamSynchronize(v->st));
	v->first_enc = v->first_dec = 1;
cleanup:
	return rc;
}

/* Stream, events, cuDNN and cuBLASLt handles and the conv workspace. */
static int engine_init(struct vae_cuda *v, char *err, size_t errlen)
{
	int rc = 0;
	CU_TRY(cudaStreamCreateWithFlags(&v->st, cudaStreamNonBlocking));
	CU_TRY(cudaEventCreate(&v->ev0));
	CU_TRY(cudaEventCreate(&v->ev1));
	DNN_TRY(cudnnCreate(&v->dnn));
	DNN_TRY(cudnnSetStream(v->dnn, v->st));
	if (!(v->gemm = wan_gemm_new((size_t)32 << 20, err, errlen)) ||
	    !(v->ws = dalloc(v, WS_BYTES, 0, err, errlen)))
		return -1;
cleanup:
	return rc;
}

/* 1 when environment variable NAME is "1", 0 when "0", else DEF */
static int env_flag(const char *name, int def)
{
	const char *e = getenv(name);
	return e && !strcmp(e, "1") ? 1 : e && !strcmp(e, "0") ? 0 : def;
}

/* VAE_DT_* named by environment variable NAME ("bf16" or "fp16"), else DEF. */
static int env_dtype(const char *name, int def)
{
	const char *e = getenv(name);
	if (e && !strcmp(e, "bf16"))
		return VAE_DT_BF16;
	if (e && (!strcmp(e, "fp16") || !strcmp(e, "f16")))
		return VAE_DT_F16;
	return def;
}

struct vae_cuda *vae_cuda_new(const struct vae_model *m, int what, int h, int w, int find,
			      char *err, size_t errlen)
{
	const struct vae_config *cfg = &m->cfg;
	int sp = vae_config_spatial(cfg), tf = vae_config_temporal(cfg), rc = 0;
	struct vae_cuda *v = calloc(1, sizeof(*v));
	err[0] = 0;
	if (!v) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	v->m = m;
	v->what = what & m->what;
	v->H = h;
	v->W = w;
	v->find = find;
	v->first_enc = v->first_dec = 1;
	v->fuse = env_flag("HERU_VAE_FUSE", 0);
	v->be = env_flag("HERU_VAE_BE", 1);
	v->be_fuse = env_flag("HERU_VAE_BE_FUSE", 0);
	v->merge = env_flag("HERU_VAE_MERGE", 1);
	v->enc_dt = env_dtype("HERU_VAE_ENC_DTYPE", VAE_DT_F16);
	v->dec_dt = env_dtype("HERU_VAE_DEC_DTYPE", VAE_DT_BF16);
	if (h <= 0 || w <= 0 || h % sp || w % sp || !v->what) {
		snprintf(err, errlen, "VAE on CUDA: %dx%d must be positive multiples of %d (and weights loaded)",
			 h, w, sp);
		goto fail;
	}
	if (engine_init(v, err, errlen))
		goto fail;
	v->eslots = calloc((size_t)m->enc.nslots + 1, sizeof(*v->eslots));
	v->dslots = calloc((size_t)m->dec.nslots + 1, sizeof(*v->dslots));
	size_t io = (size_t)tf * 3 * h * w;
	if (!v->eslots || !v->dslots ||
	    !(v->in_dev = dalloc(v, io * sizeof(float), 0, err, errlen)) ||
	    !(v->out_dev = dalloc(v, io * sizeof(float), 0, err, errlen)) ||
	    !(v->mean = dalloc(v, 16 * sizeof(float), 1, err, errlen)) ||
	    !(v->std = dalloc(v, 16 * sizeof(float), 1, err, errlen)))
		goto fail;
	CU_TRY(cudaMemcpy(v->mean, vae_latent_mean, sizeof(vae_latent_mean), cudaMemcpyHostToDevice));
	CU_TRY(cudaMemcpy(v->std, vae_latent_std, sizeof(vae_latent_std), cudaMemcpyHostToDevice));
	/* steady plans first: they size the cache buffers */
	if ((v->what & VAE_LOAD_ENCODER) &&
	    (build_encoder(v, &v->enc_steady, 0, err, errlen) || build_encoder(v, &v->enc_first, 1, err, errlen)))
		goto fail;
	if ((v->what & VAE_LOAD_DECODER) &&
	    (build_decoder(v, &v->dec_steady, 0, err, errlen) || build_decoder(v, &v->dec_first, 1, err, errlen)))
		goto fail;
	if (v->merge) {
		merge_ops(&v->enc_first);
		merge_ops(&v->enc_steady);
		merge_ops(&v->dec_first);
		merge_ops(&v->dec_steady);
	}
	CU_TRY(cudaDeviceSynchronize()); /* the build's cudaMemset calls ran on the default stream */
	if (vae_cuda_reset(v, err, errlen))
		goto fail;
	return v;
cleanup:
	if (!rc)
		return v;
fail:
	if (!err[0])
		snprintf(err, errlen, "cannot build the CUDA VAE");
	vae_cuda_free(v);
	return NULL;
}

int vae_cuda_first_encode(const struct vae_cuda *v)
{
	return v->first_enc;
}

int vae_cuda_first_decode(const struct vae_cuda *v)
{
	return v->first_dec;
}

int vae_cuda_encoder_fp16(const struct vae_cuda *v)
{
	return v->enc_dt == VAE_DT_F16;
}

int vae_cuda_decoder_fp16(const struct vae_cuda *v)
{
	return v->dec_dt == VAE_DT_F16;
}

size_t vae_cuda_weight_bytes(const struct vae_cuda *v)
{
	return v->wbytes;
}

double vae_cuda_last_gpu_ms(const struct vae_cuda *v)
{
	return v->gpu_ms;
}

size_t vae_cuda_act_bytes(const struct vae_cuda *v)
{
	return v->abytes;
}

/* Copies IN_N floats from IN (host) to IN_DEV, runs P, copies OUT_N floats (none when 0) from
 * OUT_DEV to OUT (host) and adds the plan's GPU time to *GPU_MS. */
static int timed_run(struct vae_cuda *v, struct plan *p, int steady, float *in_dev, const float *in,
		     size_t in_n, float *out, const float *out_dev, size_t out_n, double *gpu_ms,
		     char *err, size_t errlen)
{
	int rc = 0;
	float ms = 0.0f;
	CU_TRY(cudaMemcpyAsync(in_dev, in, in_n * sizeof(float), cudaMemcpyHostToDevice, v->st));
	CU_TRY(cudaEventRecord(v->ev0, v->st));
	if (run_plan(v, p, steady, err, errlen))
		return -1;
	CU_TRY(cudaEventRecord(v->ev1, v->st));
	if (out_n)
		CU_TRY(cudaMemcpyAsync(out, out_dev, out_n * sizeof(float), cudaMemcpyDeviceToHost, v->st));
	CU_TRY(cudaStreamSynchronize(v->st));
	CU_TRY(cudaEventElapsedTime(&ms, v->ev0, v->ev1));
	*gpu_ms += ms;
cleanup:
	return rc;
}

/* One encode or decode call: while *IS_FIRST, plan FIRST maps IN1 input floats to OUT1 output
 * floats once; then NSTEADY runs of plan STEADY map INS floats to OUTS floats each. A failure
 * resets the caches. */
static int run_calls(struct vae_cuda *v, struct plan *first, int *is_first, struct plan *steady,
		     int nsteady, const float *in, size_t in1, size_t ins, float *out, size_t out1,
		     size_t outs, char *err, size_t errlen)
{
	v->gpu_ms = 0.0;
	if (*is_first) {
		if (timed_run(v, first, 0, v->in_dev, in, in1, out, v->out_dev, out1, &v->gpu_ms, err,
			      errlen))
			goto fail;
		*is_first = 0;
		in += in1;
		out += out1;
	}
	for (int i = 0; i < nsteady; i++, in += ins, out += outs)
		if (timed_run(v, steady, 1, v->in_dev, in, ins, out, v->out_dev, outs, &v->gpu_ms, err,
			      errlen))
			goto fail;
	return 0;
fail:
	vae_cuda_reset(v, err + strlen(err), errlen - strlen(err));
	return -1;
}

int vae_cuda_encode(struct vae_cuda *v, const float *frames, int t, float *latents, char *err,
		    size_t errlen)
{
	const struct vae_config *cfg = &v->m->cfg;
	int tf = vae_config_temporal(cfg), sp = vae_config_spatial(cfg);
	size_t fsz = (size_t)3 * v->H * v->W, lsz = (size_t)cfg->z_dim * (v->H / sp) * (v->W / sp);
	if (!(v->what & VAE_LOAD_ENCODER) || vae_encode_count(v->m, v->first_enc, t) < 0) {
		snprintf(err, errlen, "CUDA VAE encode: %s", !(v->what & VAE_LOAD_ENCODER) ?
			 "the encoder was not built" : "bad frame count for this call");
		return -1;
	}
	/* the count check above makes t - first a multiple of tf */
	return run_calls(v, &v->enc_first, &v->first_enc, &v->enc_steady, (t - v->first_enc) / tf,
			 frames, fsz, (size_t)tf * fsz, latents, lsz, lsz, err, errlen);
}

int vae_cuda_decode(struct vae_cuda *v, const float *latents, int f, float *frames, char *err,
		    size_t errlen)
{
	const struct vae_config *cfg = &v->m->cfg;
	int tf = vae_config_temporal(cfg), sp = vae_config_spatial(cfg);
	size_t fsz = (size_t)3 * v->H * v->W, lsz = (size_t)cfg->z_dim * (v->H / sp) * (v->W / sp);
	if (!(v->what & VAE_LOAD_DECODER) || f < 1) {
		snprintf(err, errlen, "CUDA VAE decode: %s", !(v->what & VAE_LOAD_DECODER) ?
			 "the decoder was not built" : "no latents");
		return -1;
	}
	return run_calls(v, &v->dec_first, &v->first_dec, &v->dec_steady, f - v->first_dec, latents,
			 lsz, lsz, frames, fsz, (size_t)tf * fsz, err, errlen);
}

/* ---- TAEHV ---- */

#define TAEHV_CUDA_MAXF 4 /* latents per plan run */

struct taehv_cuda {
	struct vae_cuda *e;             /* new: engine context (stream, handles, memory) */
	const struct taehv_model *m;    /* borrowed */
	int h, w, incremental, first;
	void *mem[TAEHV_LAYERS];        /* bf16 [P][c]: each MemBlock's previous input */
	size_t mem_bytes[TAEHV_LAYERS];
	struct plan plans[TAEHV_CUDA_MAXF + 1];
	float *in_dev, *out_dev;        /* f32 [4][16][h][w], [16][3][8h][8w] */
	float *ctx;                     /* new: host, last <= 3 latents */
	int nctx;
	double gpu_ms;
};

static struct vae_conv_w tcw(const struct tconv *tc)
{
	struct vae_conv_w cw = { tc->s, tc->w, tc->b, -1 };
	return cw;
}

static void b_biasact(struct bctx *b, const void *src, const float *bias, const void *res,
		      void *dst, int64_t n, int c, int relu)
{
	struct op *o = b_io(b, OP_BIASACT, src, dst, c, relu, 0);
	if (!o)
		return;
	o->f1 = bias;
	o->b = res;
	o->n = n;
}

static int build_taehv(struct taehv_cuda *t, struct plan *p, int nf, char *err, size_t errlen)
{
	struct vae_cuda *v = t->e;
	const struct taehv_model *m = t->m;
	struct bctx bc = { v, p, NULL, 0, err, errlen, 0, VAE_DT_BF16 }, *b = &bc;
	int f = nf, h = t->h, w = t->w, c = TAEHV_LATENT, to, ho, wo;
	void *x = b_alloc(b, (size_t)f * h * w * c);
	struct op *o = b_io(b, OP_TIN, t->in_dev, x, f, h, w);
	if (!x || !o)
		return -1;
	for (int li = 1; li < TAEHV_LAYERS; li++) {
		const struct tlayer *l = &m->l[li];
		int64_t px = (int64_t)f * h * w;
		if (l->kind == TK_CONV) {
			struct vae_conv_w cw = tcw(&l->conv[0]);
			void *y = b_conv(b, x, f, h, w, &cw, &to, &ho, &wo);
			if (!y)
				return -1;
			c = cw.s.cout;
			int relu = li + 1 < TAEHV_LAYERS && m->l[li + 1].kind == TK_RELU;
			if (li == TAEHV_LAYERS - 1) {
				if (!(o = b_io(b, OP_TOUT, y, t->out_dev, f, h, w)))
					return -1;
				o->f1 = wf(b, cw.b, 3, NULL);
			} else if (cw.b && !b_fuse(b, cw.b, c, NULL, relu)) {
				x = y;
			} else if (cw.b || relu) {
				void *nx = b_alloc(b, (size_t)px * c);
				if (!nx)
					return -1;
				b_biasact(b, y, cw.b ? wf(b, cw.b, c, NULL) : NULL, NULL, nx, px * c, c, relu);
				x = nx;
			} else {
				x = y;
			}
			if (relu)
				li++;
		} else if (l->kind == TK_MEM) {
			int64_t pp = (int64_t)h * w;
			if (!t->mem[li]) {
				t->mem_bytes[li] = (size_t)pp * c * BF;
				if (!(t->mem[li] = dalloc(v, t->mem_bytes[li], 0, err, errlen)))
					return -1;
			}
			void *cat = b_alloc(b, (size_t)px * 2 * c);
			if (!cat || !(o = b_io(b, OP_MEMCAT, x, cat, f, c, 0)))
				return -1;
			o->b = t->mem[li];
			o->n = pp;
			if (b_copy(b, (char *)x + (size_t)(f - 1) * pp * c * BF, t->mem[li],
				   (size_t)pp * c * BF))
				return -1;
			const void *in = cat;
			for (int k = 0; k < 3; k++) {
				struct vae_conv_w cw = tcw(&l->conv[k]);
				void *y = b_conv(b, in, f, h, w, &cw, &to, &ho, &wo);
				if (!y)
					return -1;
				if (!b_fuse(b, cw.b, c, k == 2 ? x : NULL, 1)) {
					in = y;
					continue;
				}
				void *nx = b_alloc(b, (size_t)px * c);
				if (!nx)
					return -1;
				b_biasact(b, y, wf(b, cw.b, c, NULL), k == 2 ? x : NULL, nx, px * c, c, 1);
				in = nx;
			}
			x = (void *)in;
		} else if (l->kind == TK_UP) {
			/* Upsample then TGrow == TGrow (1x1 conv) at low resolution then upsample */
			const struct tlayer *g = &m->l[li + 1];
			struct vae_conv_w cw = tcw(&g->conv[0]);
			void *wt = up_conv(v, &cw, VAE_DT_BF16, err, errlen);
			void *gy = b_alloc(b, (size_t)px * g->stride * c);
			void *up = b_alloc(b, (size_t)px * g->stride * 4 * c);
			if (!wt || !gy || !up || g->kind != TK_TGROW)
				return -1;
			b_gemm(b, (int)px, g->stride * c, c, x, c, wt, c, NULL, gy, g->stride * c);
			if (!(o = b_io(b, OP_UP, gy, up, f, h, w)))
				return -1;
			o->i[3] = c;
			o->i[4] = g->stride == 2;
			f *= g->stride;
			h *= 2;
			w *= 2;
			x = up;
			li++;
		}
		if (b->fail)
			return -1;
	}
	return b->fail ? -1 : 0;
}

void taehv_cuda_free(struct taehv_cuda *t)
{
	if (!t)
		return;
	if (t->e)
		cudaStreamSynchronize(t->e->st);
	for (int i = 0; i <= TAEHV_CUDA_MAXF; i++)
		plan_free(&t->plans[i]);
	vae_cuda_free(t->e);
	free(t->ctx);
	free(t);
}

static int taehv_zero_mem(struct taehv_cuda *t, char *err, size_t errlen)
{
	struct vae_cuda *v = t->e;
	int rc = 0;
	for (int i = 0; i < TAEHV_LAYERS; i++)
		if (t->mem[i])
			CU_TRY(cudaMemsetAsync(t->mem[i], 0, t->mem_bytes[i], v->st));
cleanup:
	return rc;
}

int taehv_cuda_reset(struct taehv_cuda *t, char *err, size_t errlen)
{
	t->first = 1;
	t->nctx = 0;
	if (taehv_zero_mem(t, err, errlen))
		return -1;
	return cudaStreamSynchronize(t->e->st) == cudaSuccess ? 0 : -1;
}

struct taehv_cuda *taehv_cuda_new(const struct taehv_model *m, int incremental, int h, int w,
				  char *err, size_t errlen)
{
	struct taehv_cuda *t = calloc(1, sizeof(*t));
	err[0] = 0;
	if (!t || !(t->e = calloc(1, sizeof(*t->e)))) {
		free(t);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->m = m;
	t->h = h;
	t->w = w;
	t->incremental = incremental;
	t->first = 1;
	size_t lsz = (size_t)TAEHV_LATENT * h * w;
	if (h <= 0 || w <= 0 || h > 1024 || w > 1024) {
		snprintf(err, errlen, "TAEHV on CUDA: bad latent size %dx%d", h, w);
		goto fail;
	}
	t->e->find = !getenv("HERU_VAE_NO_FIND");
	t->e->fuse = env_flag("HERU_VAE_FUSE", 0);
	t->e->be = env_flag("HERU_VAE_BE", 1);
	t->e->be_fuse = env_flag("HERU_VAE_BE_FUSE", 0);
	if (engine_init(t->e, err, errlen) ||
	    !(t->in_dev = dalloc(t->e, lsz * TAEHV_CUDA_MAXF * sizeof(float), 0, err, errlen)) ||
	    !(t->out_dev = dalloc(t->e, (size_t)3 * 64 * h * w * 4 * TAEHV_CUDA_MAXF * sizeof(float), 0,
				  err, errlen)) ||
	    !(t->ctx = malloc(sizeof(float) * lsz * TAEHV_CONTEXT_LATENTS)))
		goto fail;
	/* every plan the mode's calls run, now, so that no stream pays a plan's build (cuDNN's
	 * algorithm search, seconds at 512x512) between its frames: incremental mode runs 1 latent
	 * (2 in a first chunk); context mode windows of up to TAEHV_CONTEXT_LATENTS + 1 */
	for (int n = 1; n <= (incremental ? 2 : TAEHV_CUDA_MAXF); n++)
		if (build_taehv(t, &t->plans[n], n, err, errlen))
			goto fail;
	if (cudaDeviceSynchronize() != cudaSuccess || taehv_cuda_reset(t, err, errlen))
		goto fail;
	return t;
fail:
	if (!err[0])
		snprintf(err, errlen, "cannot build the CUDA TAEHV decoder");
	taehv_cuda_free(t);
	return NULL;
}

/* Decodes N (<= 4) latents at LAT (host) with the current memories; frames [skip, 4n) of the
 * output go to OUT. */
static int taehv_run(struct taehv_cuda *t, const float *lat, int n, int skip, float *out,
		     char *err, size_t errlen)
{
	struct vae_cuda *v = t->e;
	size_t lsz = (size_t)TAEHV_LATENT * t->h * t->w, fsz = (size_t)3 * 64 * t->h * t->w;
	struct plan *p = &t->plans[n];
	if (!p->n && build_taehv(t, p, n, err, errlen))
		return -1;
	return timed_run(v, p, 1, t->in_dev, lat, lsz * n, out, t->out_dev + (size_t)skip * fsz,
			 4 * n > skip ? fsz * (4 * n - skip) : 0, &t->gpu_ms, err, errlen);
}

int taehv_cuda_decode(struct taehv_cuda *t, const float *latents, int f, float *frames, char *err,
		      size_t errlen)
{
	size_t lsz = (size_t)TAEHV_LATENT * t->h * t->w, fsz = (size_t)3 * 64 * t->h * t->w;
	const float *src = latents;
	float *win = NULL;
	int nw = f, skip, first = t->first;
	if (f < 1) {
		snprintf(err, errlen, "TAEHV decode: no latents");
		return -1;
	}
	t->gpu_ms = 0.0;
	if (first && taehv_zero_mem(t, err, errlen))
		return -1;
	t->first = 0;
	if (t->incremental) {
		skip = first ? 4 : 0;
	} else {
		nw = t->nctx + f;
		if (!(win = malloc(sizeof(float) * lsz * nw))) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		memcpy(win, t->ctx, sizeof(float) * lsz * t->nctx);
		memcpy(win + lsz * t->nctx, latents, sizeof(float) * lsz * f);
		src = win;
		skip = 4 * nw - taehv_decode_count(first, f);
		if (taehv_zero_mem(t, err, errlen))
			goto fail;
	}
	float *out = frames;
	for (int i = 0; i < nw; i += TAEHV_CUDA_MAXF) {
		int n = nw - i < TAEHV_CUDA_MAXF ? nw - i : TAEHV_CUDA_MAXF;
		int s = skip > 4 * n ? 4 * n : skip;
		if (taehv_run(t, src + (size_t)i * lsz, n, s, out, err, errlen))
			goto fail;
		out += (size_t)(4 * n - s) * fsz;
		skip -= s;
	}
	if (!t->incremental) {
		int keep = nw < TAEHV_CONTEXT_LATENTS ? nw : TAEHV_CONTEXT_LATENTS;
		memcpy(t->ctx, win + lsz * (nw - keep), sizeof(float) * lsz * keep);
		t->nctx = keep;
	}
	free(win);
	return 0;
fail:
	free(win);
	taehv_cuda_reset(t, err + strlen(err), errlen - strlen(err));
	return -1;
}

double taehv_cuda_last_gpu_ms(const struct taehv_cuda *t)
{
	return t->gpu_ms;
}
