/* dit_cuda.c: see dit_cuda.h (DESIGN there). The forward follows spec §2 op by op:
 * patchify+embed, time MLP, per layer (LN+mod -> fused QKV GEMM -> RMSNorm+RoPE+cache write
 * -> self-attention -> O GEMM -> gated residual -> LN3 -> cross q GEMM -> RMSNorm -> cross
 * attention -> O GEMM -> residual -> LN+mod -> FFN (GEMM+bias+GELU, GEMM+bias) -> gated
 * residual), then head LN+mod -> GEMM -> unpatchify + x0. */
#include "plugins/wan/cuda/dit_cuda.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cuda_runtime.h>
#include "plugins/wan/cuda/arena.h"
#include "plugins/wan/cuda/attn_cudnn.h"
#include "plugins/wan/cuda/cuda_check.h"
#include "plugins/wan/cuda/gemm_lt.h"
#include "plugins/wan/cuda/kernels.h"
#include "plugins/wan/cuda/sink_kernels.h"

#define ROPE_POSITIONS 1024
/* a stream of S slots with a K-frame cache runs S + K - 2 call shapes (batch mode, adaptive
 * sink on: the first chunk, the first steady call, S + K - 5 ragged warm-up calls, the full
 * cache; dit_stream_prepare builds them all at load) */
#define GRAPH_CACHE_MAX 24
#define GRAPH_RAGGED_RESERVE 4 /* entries only uniform shapes may take */
#define PROF_EVENTS 4096
#define BF 2 /* bytes per bf16 */

const char *const dit_cuda_comp_names[DIT_C_COUNT] = {
	"embed+time", "norms/rope/residual", "qkv gemm", "self-attention", "o/cross-q gemms",
	"cross-attention", "ffn gemms", "head",
};

struct layer_w {
	float *mod;                 /* [6, D] */
	void *wqkv, *bqkv;          /* [3D, D], [3D] */
	float *gq, *gk;             /* [D] */
	void *wo, *bo;
	float *n3g, *n3b;
	void *cwq, *cbq, *cwk, *cbk, *cwv, *cbv, *cwo, *cbo;
	float *cgq, *cgk;
	void *w1, *b1, *w2, *b2;    /* [F, D], [F], [D, F], [D] */
	void *kc, *vc;              /* self cache [slots, kv_rows, D] */
	void *xk, *xv;              /* cross cache [contexts, text_len, D] */
};

struct graph_entry {
	int slots, frames, kv_len;      /* kv_len 0: ragged, per-slot lengths in kv[] */
	int nsink;                      /* > 0: the adaptive sink decided on the device */
	int sink_cached;                /* ... with the sink frames' means kept from the last call */
	int kv[DIT_CUDA_MAX_SLOTS];
	cudaGraphExec_t exec;
};

struct dit_cuda {
	struct dit_cuda_dims d;
	struct dit_cuda_plan p;
	int l, h2, w2, hd, kv_rows, max_tokens, max_frames_total, ncontexts, nctx_set;
	cudaStream_t st;
	/* time embedding cache: the modulation vectors (mvec, hvec, e) of the call shape and
	 * timesteps below are in place; the graphs do not compute them (emb_cache on) */
	int emb_cache, emb_ok, emb_b, emb_f;
	int emb_t[DIT_CUDA_MAX_SLOTS * DIT_CUDA_MAX_FRAMES];
	struct wan_gemm *gemm;
	struct wan_attn *attn;
	struct wan_arena params, acts;
	int use_graphs, use_cudnn;
	/* globals */
	void *pe_w, *pe_b, *te0_w, *te0_b, *te2_w, *te2_b, *tp_w, *tp_b;
	void *tx0_w, *tx0_b, *tx2_w, *tx2_b, *head_w, *head_b;
	float *head_mod;
	float *mods;                /* all layers' modulation [num_layers, 6, D] */
	struct layer_w *layers;     /* new [num_layers] */
	/* activations */
	float *x_in, *x0, *flow, *x;      /* x: residual stream f32 [T, D] */
	void *cols, *hbuf, *qkv, *qbuf, *abuf, *ybuf, *fbuf, *obuf;
	float *temb, *e1, *e, *e0;        /* [M,256], [M,D], [M,D], [M,6D] */
	float *mvec, *hvec;               /* modulation + e0 per layer [layers, M, 6, D]; head [M, 2, D] */
	void *ctx_in, *ctx_h, *ctx;       /* [contexts·text_len, text_dim], [.., D] x2 */
	void *kst, *vst;                  /* hooked path: new K/V before the write [T, D] */
	int *zero_rows;                   /* device zeros [DIT_CUDA_MAX_SLOTS] */
	float *means, *h_means;           /* hooked path: [slots, 2·(kv_frames+1), D], pinned copy */
	int *h_kvlen;                     /* pinned, [DIT_CUDA_MAX_SLOTS] */
	struct wan_sink_ring *h_rings;    /* pinned staging of the sink path's upload [num_layers][slots] */
	struct wan_sink_params *h_sink_params;
	void *rope;                       /* float2 [1024][hd/2] */
	int *call_i;                      /* device: t[M], start[B], write[B], kvlen[B] */
	float *call_f;                    /* device: sigma[M] */
	int *h_call_i;                    /* pinned host staging */
	float *h_call_f;
	struct wan_sink_ring *sink_rings; /* device sink path: [num_layers][slots] */
	struct wan_sink_params *sink_params;
	struct wan_sink_rec *sink_rec;    /* [num_layers][slots] */
	float *smean;                     /* kept sink-frame means [num_layers][slots][2][kv_frames][D] */
	float *sink_part, *fresh_part;    /* chunk sums of the sink frames' and the new tokens' rows */
	double *sink_dots;                /* decision scratch [slots][ceil(D/64)][2 + 4·(kv_frames-1)] */
	int *sink_count;                  /* decision arrival counters [DIT_CUDA_MAX_SLOTS] */
	int smean_ns, smean_slots;        /* smean holds ns sink frames of slots < smean_slots; 0: stale */
	struct graph_entry graphs[GRAPH_CACHE_MAX];
	int ngraphs;
	struct dit_cuda_counters counters;
	/* profiling */
	cudaEvent_t *ev;
	int nev, ev_cat[PROF_EVENTS], profiling;
};

/* ---- planning ---- */

static void *aalloc(struct wan_arena *a, size_t bytes, int *failed, char *err, size_t errlen)
{
	return wan_arena_alloc(a, bytes, failed, err, errlen);
}

/* Lays out the parameter arena (measure or real). */
static void layout_params(struct dit_cuda *m, int *f, char *err, size_t errlen)
{
	struct wan_arena *a = &m->params;
	size_t D = m->d.dim, F = m->d.ffn_dim;

	m->pe_w = aalloc(a, D * 64 * BF, f, err, errlen);
	m->pe_b = aalloc(a, D * BF, f, err, errlen);
	m->te0_w = aalloc(a, D * m->d.freq_dim * BF, f, err, errlen);
	m->te0_b = aalloc(a, D * BF, f, err, errlen);
	m->te2_w = aalloc(a, D * D * BF, f, err, errlen);
	m->te2_b = aalloc(a, D * BF, f, err, errlen);
	m->tp_w = aalloc(a, 6 * D * D * BF, f, err, errlen);
	m->tp_b = aalloc(a, 6 * D * BF, f, err, errlen);
	m->tx0_w = aalloc(a, D * m->d.text_dim * BF, f, err, errlen);
	m->tx0_b = aalloc(a, D * BF, f, err, errlen);
	m->tx2_w = aalloc(a, D * D * BF, f, err, errlen);
	m->tx2_b = aalloc(a, D * BF, f, err, errlen);
	m->head_w = aalloc(a, 64 * D * BF, f, err, errlen);
	m->head_b = aalloc(a, 64 * BF, f, err, errlen);
	m->head_mod = aalloc(a, 2 * D * 4, f, err, errlen);
	m->mods = aalloc(a, (size_t)m->d.num_layers * 6 * D * 4, f, err, errlen);
	for (int i = 0; i < m->d.num_layers; i++) {
		struct layer_w *w = &m->layers[i];

		w->mod = m->mods ? m->mods + (size_t)i * 6 * D : NULL;
		w->wqkv = aalloc(a, 3 * D * D * BF, f, err, errlen);
		w->bqkv = aalloc(a, 3 * D * BF, f, err, errlen);
		w->gq = aalloc(a, D * 4, f, err, errlen);
		w->gk = aalloc(a, D * 4, f, err, errlen);
		w->wo = aalloc(a, D * D * BF, f, err, errlen);
		w->bo = aalloc(a, D * BF, f, err, errlen);
		w->n3g = aalloc(a, D * 4, f, err, errlen);
		w->n3b = aalloc(a, D * 4, f, err, errlen);
		w->cwq = aalloc(a, D * D * BF, f, err, errlen);
		w->cbq = aalloc(a, D * BF, f, err, errlen);
		w->cwk = aalloc(a, D * D * BF, f, err, errlen);
		w->cbk = aalloc(a, D * BF, f, err, errlen);
		w->cwv = aalloc(a, D * D * BF, f, err, errlen);
		w->cbv = aalloc(a, D * BF, f, err, errlen);
		w->cwo = aalloc(a, D * D * BF, f, err, errlen);
		w->cbo = aalloc(a, D * BF, f, err, errlen);
		w->cgq = aalloc(a, D * 4, f, err, errlen);
		w->cgk = aalloc(a, D * 4, f, err, errlen);
		w->w1 = aalloc(a, F * D * BF, f, err, errlen);
		w->b1 = aalloc(a, F * BF, f, err, errlen);
		w->w2 = aalloc(a, D * F * BF, f, err, errlen);
		w->b2 = aalloc(a, D * BF, f, err, errlen);
	}
}

/* Lays out activations and caches. */
static void layout_acts(struct dit_cuda *m, int *f, char *err, size_t errlen)
{
	struct wan_arena *a = &m->acts;
	size_t D = m->d.dim, F = m->d.ffn_dim, T = m->max_tokens, M = m->max_frames_total;
	size_t px = (size_t)m->p.lat_h * m->p.lat_w * 16 * M;

	m->x_in = aalloc(a, px * 4, f, err, errlen);
	m->x0 = aalloc(a, px * 4, f, err, errlen);
	m->flow = aalloc(a, px * 4, f, err, errlen);
	m->x = aalloc(a, T * D * 4, f, err, errlen);
	m->cols = aalloc(a, T * 64 * BF, f, err, errlen);
	m->hbuf = aalloc(a, T * D * BF, f, err, errlen);
	m->qkv = aalloc(a, T * 3 * D * BF, f, err, errlen);
	m->qbuf = aalloc(a, T * D * BF, f, err, errlen);
	m->abuf = aalloc(a, T * D * BF, f, err, errlen);
	m->ybuf = aalloc(a, T * D * BF, f, err, errlen);
	m->fbuf = aalloc(a, T * F * BF, f, err, errlen);
	m->obuf = aalloc(a, T * 64 * BF, f, err, errlen);
	m->temb = aalloc(a, M * 256 * 4, f, err, errlen);
	m->e1 = aalloc(a, M * D * 4, f, err, errlen);
	m->e = aalloc(a, M * D * 4, f, err, errlen);
	m->e0 = aalloc(a, M * 6 * D * 4, f, err, errlen);
	m->mvec = aalloc(a, (size_t)m->d.num_layers * M * 6 * D * 4, f, err, errlen);
	m->hvec = aalloc(a, M * 2 * D * 4, f, err, errlen);
	m->ctx_in = aalloc(a, (size_t)m->ncontexts * m->d.text_len * m->d.text_dim * BF, f, err, errlen);
	m->ctx_h = aalloc(a, (size_t)m->ncontexts * m->d.text_len * D * BF, f, err, errlen);
	m->ctx = aalloc(a, (size_t)m->ncontexts * m->d.text_len * D * BF, f, err, errlen);
	m->kst = aalloc(a, T * D * BF, f, err, errlen);
	m->vst = aalloc(a, T * D * BF, f, err, errlen);
	m->zero_rows = aalloc(a, DIT_CUDA_MAX_SLOTS * sizeof(int), f, err, errlen);
	m->means = aalloc(a, (size_t)m->p.slots * 2 * (m->p.kv_frames + 1) * D * 4, f, err, errlen);
	m->sink_rings = aalloc(a, (size_t)m->d.num_layers * m->p.slots * sizeof(struct wan_sink_ring), f, err, errlen);
	m->sink_params = aalloc(a, sizeof(struct wan_sink_params), f, err, errlen);
	m->sink_rec = aalloc(a, (size_t)m->d.num_layers * m->p.slots * sizeof(struct wan_sink_rec), f, err, errlen);
	m->smean = aalloc(a, (size_t)m->d.num_layers * m->p.slots * 2 * m->p.kv_frames * D * 4, f, err, errlen);
	{
		/* chunk sums: every sink frame of every slot, and the new tokens of a call */
		size_t C = (size_t)wan_sink_chunk(), kf1 = (size_t)m->p.kv_frames - 1;

		m->sink_part = aalloc(a, (size_t)m->p.slots * 2 * kf1 * ((m->l + C - 1) / C) * D * 4, f, err, errlen);
		m->fresh_part = aalloc(a, 2 * (T / C + m->p.slots + 1) * D * 4, f, err, errlen);
		m->sink_dots = aalloc(a, (size_t)m->p.slots * ((D + 63) / 64) * (2 + 4 * kf1) * 8, f, err, errlen);
		m->sink_count = aalloc(a, DIT_CUDA_MAX_SLOTS * sizeof(int), f, err, errlen);
	}
	m->rope = aalloc(a, (size_t)ROPE_POSITIONS * (m->hd / 2) * 8, f, err, errlen);
	m->call_i = aalloc(a, (M + 3 * DIT_CUDA_MAX_SLOTS) * sizeof(int), f, err, errlen);
	m->call_f = aalloc(a, M * sizeof(float), f, err, errlen);
	for (int i = 0; i < m->d.num_layers; i++) {
		struct layer_w *w = &m->layers[i];
		size_t kv = (size_t)m->p.slots * m->kv_rows * D * BF;

		w->kc = aalloc(a, kv, f, err, errlen);
		w->vc = aalloc(a, kv, f, err, errlen);
		w->xk = aalloc(a, (size_t)m->ncontexts * m->d.text_len * D * BF, f, err, errlen);
		w->xv = aalloc(a, (size_t)m->ncontexts * m->d.text_len * D * BF, f, err, errlen);
	}
}

/* RoPE table (spec §2.6), fp64 math: column j of a head's hd/2 pairs uses the temporal axis
 * for j < ct, rows for j < ct + ch, columns otherwise, each with its own frequency base. */
static int build_rope(struct dit_cuda *m, char *err, size_t errlen)
{
	int half = m->hd / 2, ch = m->hd / 6, ct = half - 2 * ch;
	size_t n = (size_t)ROPE_POSITIONS * half;
	float *tab = malloc(n * 2 * sizeof(float));
	int rc = 0;

	if (!tab) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int pos = 0; pos < ROPE_POSITIONS; pos++) {
		for (int j = 0; j < half; j++) {
			int local = j < ct ? j : (j < ct + ch ? j - ct : j - ct - ch);
			int dimx = j < ct ? 2 * ct : 2 * ch;
			double freq = pow(10000.0, -(2.0 * local) / dimx), ang = pos * freq;

			tab[((size_t)pos * half + j) * 2] = (float)cos(ang);
			tab[((size_t)pos * half + j) * 2 + 1] = (float)sin(ang);
		}
	}
	CU_TRY(cudaMemcpyAsync(m->rope, tab, n * 2 * sizeof(float), cudaMemcpyHostToDevice, m->st));
	CU_TRY(cudaStreamSynchronize(m->st));
cleanup:
	free(tab);
	return rc;
}

struct dit_cuda *dit_cuda_new(const struct dit_cuda_dims *dims, const struct dit_cuda_plan *plan,
			      char *err, size_t errlen)
{
	struct dit_cuda *m = calloc(1, sizeof(*m));
	int f = 0, rc = 0, ndev = 0;
	const char *env = getenv("WAN_ATTN");

	if (!m) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (dims->dim <= 0 || dims->num_heads <= 0 || dims->dim % dims->num_heads ||
	    (dims->dim / dims->num_heads) % 8 || dims->dim / dims->num_heads > 128 || dims->dim > 8192 ||
	    dims->num_layers <= 0 || dims->ffn_dim <= 0 || dims->text_len <= 0 ||
	    dims->text_dim <= 0 || dims->freq_dim != 256) {
		snprintf(err, errlen, "unsupported DiT dims (dim %d, heads %d, head dim must be 8..128 in steps of 8, freq_dim 256)",
			 dims->dim, dims->num_heads);
		free(m);
		return NULL;
	}
	if (plan->lat_h <= 0 || plan->lat_w <= 0 || plan->lat_h % 2 || plan->lat_w % 2 ||
	    plan->lat_h > 2 * ROPE_POSITIONS || plan->lat_w > 2 * ROPE_POSITIONS ||
	    plan->slots < 1 || plan->slots > DIT_CUDA_MAX_SLOTS || plan->kv_frames < 2 ||
	    plan->kv_frames > 64) {
		snprintf(err, errlen, "unsupported plan: latent %dx%d (even, up to 2048), slots %d (1..%d), kv frames %d (2..64)",
			 plan->lat_h, plan->lat_w, plan->slots, DIT_CUDA_MAX_SLOTS, plan->kv_frames);
		free(m);
		return NULL;
	}
	m->d = *dims;
	m->p = *plan;
	m->h2 = plan->lat_h / 2;
	m->w2 = plan->lat_w / 2;
	m->l = m->h2 * m->w2;
	m->hd = dims->dim / dims->num_heads;
	m->kv_rows = plan->kv_frames * m->l;
	m->max_frames_total = plan->max_frames > 0 ? plan->max_frames : (plan->slots > 2 ? plan->slots : 2);
	m->ncontexts = plan->contexts > 0 ? plan->contexts : 1;
	m->nctx_set = 1;
	if (m->max_frames_total > DIT_CUDA_MAX_SLOTS * DIT_CUDA_MAX_FRAMES || m->ncontexts > plan->slots) {
		snprintf(err, errlen, "unsupported plan: %d frames per call (at most %d), %d prompts for %d slots",
			 m->max_frames_total, DIT_CUDA_MAX_SLOTS * DIT_CUDA_MAX_FRAMES, m->ncontexts, plan->slots);
		free(m);
		return NULL;
	}
	m->max_tokens = m->max_frames_total * m->l;
	m->use_graphs = 1;
	m->use_cudnn = !(env && !strcmp(env, "fallback"));
	CU_TRY(cudaGetDeviceCount(&ndev));
	if (ndev < 1) {
		snprintf(err, errlen, "no CUDA device");
		rc = -1;
		goto cleanup;
	}
	m->layers = calloc((size_t)dims->num_layers, sizeof(*m->layers));
	if (!m->layers) {
		snprintf(err, errlen, "out of memory");
		rc = -1;
		goto cleanup;
	}
	CU_TRY(cudaStreamCreateWithFlags(&m->st, cudaStreamNonBlocking));
	{
		const char *ec = getenv("WAN_EMB_CACHE");

		m->emb_cache = !(ec && ec[0] == '0');
	}
	m->gemm = wan_gemm_new((size_t)32 << 20, err, errlen);
	if (!m->gemm) {
		rc = -1;
		goto cleanup;
	}
	wan_gemm_set_tuning(m->gemm, 1);
	m->attn = wan_attn_new(m->use_cudnn, err, errlen);
	if (!m->attn) {
		rc = -1;
		goto cleanup;
	}
	wan_arena_measure(&m->params);
	layout_params(m, &f, err, errlen);
	if (wan_arena_init(&m->params, m->params.used, err, errlen)) {
		rc = -1;
		goto cleanup;
	}
	layout_params(m, &f, err, errlen);
	wan_arena_measure(&m->acts);
	layout_acts(m, &f, err, errlen);
	if (wan_arena_init(&m->acts, m->acts.used, err, errlen)) {
		rc = -1;
		goto cleanup;
	}
	layout_acts(m, &f, err, errlen);
	if (f) {
		rc = -1;
		goto cleanup;
	}
	CU_TRY(cudaMemsetAsync(m->acts.base, 0, m->acts.cap, m->st));
	CU_TRY(cudaMallocHost((void **)&m->h_call_i, (m->max_frames_total + 3 * DIT_CUDA_MAX_SLOTS) * sizeof(int)));
	CU_TRY(cudaMallocHost((void **)&m->h_call_f, m->max_frames_total * sizeof(float)));
	CU_TRY(cudaMallocHost((void **)&m->h_means, (size_t)m->p.slots * 2 * (m->p.kv_frames + 1) * dims->dim * 4));
	CU_TRY(cudaMallocHost((void **)&m->h_kvlen, DIT_CUDA_MAX_SLOTS * sizeof(int)));
	CU_TRY(cudaMallocHost((void **)&m->h_rings, (size_t)dims->num_layers * m->p.slots * sizeof(*m->h_rings)));
	CU_TRY(cudaMallocHost((void **)&m->h_sink_params, sizeof(*m->h_sink_params)));
	if (build_rope(m, err, errlen)) {
		rc = -1;
		goto cleanup;
	}
	CU_TRY(cudaStreamSynchronize(m->st));
cleanup:
	if (rc) {
		dit_cuda_free(m);
		return NULL;
	}
	return m;
}

void dit_cuda_free(struct dit_cuda *m)
{
	if (!m)
		return;
	for (int i = 0; i < m->ngraphs; i++)
		cudaGraphExecDestroy(m->graphs[i].exec);
	if (m->ev) {
		for (int i = 0; i < PROF_EVENTS; i++)
			cudaEventDestroy(m->ev[i]);
		free(m->ev);
	}
	wan_attn_free(m->attn);
	wan_gemm_free(m->gemm);
	wan_arena_release(&m->params);
	wan_arena_release(&m->acts);
	if (m->h_call_i)
		cudaFreeHost(m->h_call_i);
	if (m->h_call_f)
		cudaFreeHost(m->h_call_f);
	if (m->h_means)
		cudaFreeHost(m->h_means);
	if (m->h_kvlen)
		cudaFreeHost(m->h_kvlen);
	if (m->h_rings)
		cudaFreeHost(m->h_rings);
	if (m->h_sink_params)
		cudaFreeHost(m->h_sink_params);
	if (m->st)
		cudaStreamDestroy(m->st);
	free(m->layers);
	free(m);
}

void dit_cuda_set_options(struct dit_cuda *m, int use_graphs, int use_cudnn)
{
	char err[256];

	m->use_graphs = use_graphs;
	if (use_cudnn != m->use_cudnn) {
		struct wan_attn *a = wan_attn_new(use_cudnn, err, sizeof(err));

		if (a) {
			wan_attn_free(m->attn);
			m->attn = a;
			m->use_cudnn = use_cudnn;
		}
	}
}

size_t dit_cuda_param_bytes(const struct dit_cuda *m) { return m->params.cap; }
size_t dit_cuda_act_bytes(const struct dit_cuda *m) { return m->acts.cap - dit_cuda_cache_bytes(m); }
size_t dit_cuda_cache_bytes(const struct dit_cuda *m)
{
	size_t D = m->d.dim;

	return (size_t)m->d.num_layers * 2 * ((size_t)m->p.slots * m->kv_rows * D * BF +
					      (size_t)m->ncontexts * m->d.text_len * D * BF);
}
int dit_cuda_graphs_used(const struct dit_cuda *m) { return m->ngraphs > 0; }
void dit_cuda_get_counters(const struct dit_cuda *m, struct dit_cuda_counters *out)
{
	int plans, untimed;

	*out = m->counters;
	wan_attn_counts(m->attn, &plans, &untimed);
	out->gemm_shapes = wan_gemm_cached_shapes(m->gemm);
	out->attn_plans = plans;
	out->attn_untimed = untimed;
}
int dit_cuda_kv_rows(const struct dit_cuda *m) { return m->kv_rows; }
float *dit_cuda_input(struct dit_cuda *m) { return m->x_in; }

/* ---- weights ---- */

struct ptensor {
	void *ptr;
	size_t count;
	int is_f32;
	float amp, base;   /* random init */
};

/* Every parameter with its size and random-init scale; `name` is filled. Returns the count,
 * or -1 when idx is past the end. */
static int param_at(struct dit_cuda *m, int idx, char *name, size_t nlen, struct ptensor *pt)
{
	size_t D = m->d.dim, F = m->d.ffn_dim;
	float sd = 1.0f / sqrtf((float)D), sf = 1.0f / sqrtf((float)F);
	struct {
		const char *n;
		void *p;
		size_t c;
		int f32;
		float amp, base;
	} g[] = {
		{"patch_embedding.weight", m->pe_w, D * 64, 0, 0.125f, 0},
		{"patch_embedding.bias", m->pe_b, D, 0, 0.02f, 0},
		{"text_embedding.0.weight", m->tx0_w, D * m->d.text_dim, 0, 1.0f / 64, 0},
		{"text_embedding.0.bias", m->tx0_b, D, 0, 0.02f, 0},
		{"text_embedding.2.weight", m->tx2_w, D * D, 0, sd, 0},
		{"text_embedding.2.bias", m->tx2_b, D, 0, 0.02f, 0},
		{"time_embedding.0.weight", m->te0_w, D * 256, 0, 1.0f / 16, 0},
		{"time_embedding.0.bias", m->te0_b, D, 0, 0.02f, 0},
		{"time_embedding.2.weight", m->te2_w, D * D, 0, sd, 0},
		{"time_embedding.2.bias", m->te2_b, D, 0, 0.02f, 0},
		{"time_projection.1.weight", m->tp_w, 6 * D * D, 0, sd, 0},
		{"time_projection.1.bias", m->tp_b, 6 * D, 0, 0.02f, 0},
		{"head.modulation", m->head_mod, 2 * D, 1, 0.1f, 0},
		{"head.head.weight", m->head_w, 64 * D, 0, sd, 0},
		{"head.head.bias", m->head_b, 64, 0, 0.02f, 0},
	};
	int ng = (int)(sizeof(g) / sizeof(g[0])), per = 27;

	if (idx < ng) {
		snprintf(name, nlen, "%s", g[idx].n);
		pt->ptr = g[idx].p; pt->count = g[idx].c; pt->is_f32 = g[idx].f32;
		pt->amp = g[idx].amp; pt->base = g[idx].base;
		return 0;
	}
	idx -= ng;
	if (idx >= per * m->d.num_layers)
		return -1;
	{
		struct layer_w *w = &m->layers[idx / per];
		int li = idx / per, k = idx % per;
		size_t DD = D * D;
		struct {
			const char *n;
			void *p;
			size_t c;
			int f32;
			float amp, base;
		} b[27] = {
			{"modulation", w->mod, 6 * D, 1, 0.1f, 0},
			{"self_attn.q.weight", w->wqkv, DD, 0, sd, 0},
			{"self_attn.q.bias", w->bqkv, D, 0, 0.02f, 0},
			{"self_attn.k.weight", (char *)w->wqkv + DD * BF, DD, 0, sd, 0},
			{"self_attn.k.bias", (char *)w->bqkv + D * BF, D, 0, 0.02f, 0},
			{"self_attn.v.weight", (char *)w->wqkv + 2 * DD * BF, DD, 0, sd, 0},
			{"self_attn.v.bias", (char *)w->bqkv + 2 * D * BF, D, 0, 0.02f, 0},
			{"self_attn.o.weight", w->wo, DD, 0, sd, 0},
			{"self_attn.o.bias", w->bo, D, 0, 0.02f, 0},
			{"self_attn.norm_q.weight", w->gq, D, 1, 0.1f, 1.0f},
			{"self_attn.norm_k.weight", w->gk, D, 1, 0.1f, 1.0f},
			{"norm3.weight", w->n3g, D, 1, 0.1f, 1.0f},
			{"norm3.bias", w->n3b, D, 1, 0.02f, 0},
			{"cross_attn.q.weight", w->cwq, DD, 0, sd, 0},
			{"cross_attn.q.bias", w->cbq, D, 0, 0.02f, 0},
			{"cross_attn.k.weight", w->cwk, DD, 0, sd, 0},
			{"cross_attn.k.bias", w->cbk, D, 0, 0.02f, 0},
			{"cross_attn.v.weight", w->cwv, DD, 0, sd, 0},
			{"cross_attn.v.bias", w->cbv, D, 0, 0.02f, 0},
			{"cross_attn.o.weight", w->cwo, DD, 0, sd, 0},
			{"cross_attn.o.bias", w->cbo, D, 0, 0.02f, 0},
			{"cross_attn.norm_q.weight", w->cgq, D, 1, 0.1f, 1.0f},
			{"cross_attn.norm_k.weight", w->cgk, D, 1, 0.1f, 1.0f},
			{"ffn.0.weight", w->w1, F * D, 0, sd, 0},
			{"ffn.0.bias", w->b1, F, 0, 0.02f, 0},
			{"ffn.2.weight", w->w2, D * F, 0, sf, 0},
			{"ffn.2.bias", w->b2, D, 0, 0.02f, 0},
		};
		snprintf(name, nlen, "blocks.%d.%s", li, b[k].n);
		pt->ptr = b[k].p; pt->count = b[k].c; pt->is_f32 = b[k].f32;
		pt->amp = b[k].amp; pt->base = b[k].base;
	}
	return 0;
}

int dit_cuda_random_weights(struct dit_cuda *m, uint64_t seed, char *err, size_t errlen)
{
	char name[128];
	struct ptensor pt;

	m->emb_ok = 0;
	for (int i = 0; param_at(m, i, name, sizeof(name), &pt) == 0; i++) {
		uint64_t s = seed * 1000003ull + (uint64_t)i;

		if (pt.is_f32 ? wan_k_fill_uniform_f32(m->st, pt.ptr, pt.count, s, pt.base, pt.amp, err, errlen)
			      : wan_k_fill_uniform_bf16(m->st, pt.ptr, pt.count, s, pt.amp, err, errlen))
			return -1;
	}
	return dit_cuda_sync(m, err, errlen);
}

int dit_cuda_set_tensor(struct dit_cuda *m, const char *name, const float *data, size_t count,
			char *err, size_t errlen)
{
	char nm[128];
	struct ptensor pt;
	float *tmp = NULL;
	int rc = 0;

	if (!strncmp(name, "model.", 6))
		name += 6;
	m->emb_ok = 0; /* the modulation vectors depend on the weights */
	for (int i = 0; param_at(m, i, nm, sizeof(nm), &pt) == 0; i++) {
		if (strcmp(nm, name))
			continue;
		if (count != pt.count) {
			snprintf(err, errlen, "tensor '%s' has %zu elements, the model needs %zu", name, count, pt.count);
			return -1;
		}
		/* async copies on m->st: a plain cudaMemcpy from pageable memory may return before
		 * the DMA lands, and m->st does not wait for the legacy stream */
		if (pt.is_f32) {
			CU_RET(cudaMemcpyAsync(pt.ptr, data, count * 4, cudaMemcpyHostToDevice, m->st));
			CU_RET(cudaStreamSynchronize(m->st));
			return 0;
		}
		CU_TRY(cudaMalloc((void **)&tmp, count * 4));
		CU_TRY(cudaMemcpyAsync(tmp, data, count * 4, cudaMemcpyHostToDevice, m->st));
		if (wan_k_f32_to_bf16(m->st, tmp, pt.ptr, count, err, errlen)) {
			rc = -1;
			goto cleanup;
		}
		CU_TRY(cudaStreamSynchronize(m->st));
		goto cleanup;
	}
	snprintf(err, errlen, "unknown DiT tensor '%s'", name);
	return -1;
cleanup:
	if (tmp)
		cudaFree(tmp);
	return rc;
}

/* ---- context (cross-attention cache) ---- */

static int fill_contexts(struct dit_cuda *m, int nctx, char *err, size_t errlen)
{
	int D = m->d.dim, tl = m->d.text_len * nctx;

	if (wan_gemm_bf16(m->gemm, m->st, tl, D, m->d.text_dim, m->ctx_in, m->d.text_dim, m->tx0_w,
			  m->d.text_dim, m->tx0_b, WAN_EPI_BIAS_GELU, m->ctx_h, D, err, errlen) ||
	    wan_gemm_bf16(m->gemm, m->st, tl, D, D, m->ctx_h, D, m->tx2_w, D, m->tx2_b, WAN_EPI_BIAS,
			  m->ctx, D, err, errlen))
		return -1;
	for (int i = 0; i < m->d.num_layers; i++) {
		struct layer_w *w = &m->layers[i];

		if (wan_gemm_bf16(m->gemm, m->st, tl, D, D, m->ctx, D, w->cwk, D, w->cbk, WAN_EPI_BIAS,
				  m->ctx_h, D, err, errlen) ||
		    wan_k_rmsnorm(m->st, m->ctx_h, D, w->xk, tl, D, w->cgk, (float)m->d.eps, err, errlen) ||
		    wan_gemm_bf16(m->gemm, m->st, tl, D, D, m->ctx, D, w->cwv, D, w->cbv, WAN_EPI_BIAS,
				  w->xv, D, err, errlen))
			return -1;
	}
	m->nctx_set = nctx;
	return dit_cuda_sync(m, err, errlen);
}

int dit_cuda_set_contexts(struct dit_cuda *m, const float *ctx, int nctx, char *err, size_t errlen)
{
	size_t n = (size_t)nctx * m->d.text_len * m->d.text_dim;
	float *tmp = NULL;
	int rc = 0;

	if (nctx < 1 || nctx > m->ncontexts) {
		snprintf(err, errlen, "%d prompts given, the engine was planned for %d", nctx, m->ncontexts);
		return -1;
	}
	CU_TRY(cudaMalloc((void **)&tmp, n * 4));
	CU_TRY(cudaMemcpyAsync(tmp, ctx, n * 4, cudaMemcpyHostToDevice, m->st));
	if (wan_k_f32_to_bf16(m->st, tmp, m->ctx_in, n, err, errlen) || fill_contexts(m, nctx, err, errlen))
		rc = -1;
cleanup:
	if (tmp) {
		cudaStreamSynchronize(m->st);
		cudaFree(tmp);
	}
	return rc;
}

int dit_cuda_set_context(struct dit_cuda *m, const float *ctx, uint64_t seed, char *err,
			 size_t errlen)
{
	if (ctx)
		return dit_cuda_set_contexts(m, ctx, 1, err, errlen);
	if (wan_k_fill_uniform_bf16(m->st, m->ctx_in, (size_t)m->d.text_len * m->d.text_dim, seed,
				    0.5f, err, errlen))
		return -1;
	return fill_contexts(m, 1, err, errlen);
}

int dit_cuda_clear_caches(struct dit_cuda *m, char *err, size_t errlen)
{
	size_t bytes = (size_t)m->p.slots * m->kv_rows * m->d.dim * BF;

	m->smean_ns = 0;
	m->emb_ok = 0; /* a new stream starts from a fresh time-embedding cache too */
	for (int i = 0; i < m->d.num_layers; i++) {
		CU_RET(cudaMemsetAsync(m->layers[i].kc, 0, bytes, m->st));
		CU_RET(cudaMemsetAsync(m->layers[i].vc, 0, bytes, m->st));
	}
	return dit_cuda_sync(m, err, errlen);
}

/* ---- forward ---- */

static void prof_mark(struct dit_cuda *m, int cat)
{
	if (!m->profiling || m->nev >= PROF_EVENTS)
		return;
	m->ev_cat[m->nev] = cat;
	cudaEventRecord(m->ev[m->nev], m->st);
	m->nev++;
}

#define TRY(x) do { if (x) return -1; } while (0)

/* Enqueues one forward on m->st. kv_uniform > 0: every slot attends kv_uniform rows (cuDNN
 * path); 0: ragged lengths from the device call block. */
struct fwd_hook {
	dit_cuda_kv_fn fn;  /* NULL: the device decides (sink_kv_device) */
	void *ctx;
	int nsink;
	int cached;         /* device: the sink frames' means are in m->smean (no re-read) */
};

/* The statistics of layer li (sink_kernels.h): chunk sums of the ns sink frames of each slot
 * (a full read; none when ns is 0) into m->sink_part, and R set up for the reduction with
 * the new tokens' sums in m->fresh_part (filled by the caller). */
static int sink_frame_parts(struct dit_cuda *m, int li, int B, int n, int ns, int full,
			    struct wan_sink_reduce *r, char *err, size_t errlen)
{
	struct layer_w *w = &m->layers[li];
	int64_t D = m->d.dim;

	*r = (struct wan_sink_reduce){
		.ns = ns, .l = m->l, .n = n, .chunk = wan_sink_chunk(),
		.sink_part = full && ns ? m->sink_part : NULL, .fresh_part = m->fresh_part,
		.means = m->means, .dots = m->sink_dots, .count = m->sink_count,
	};
	if (full && ns)
		TRY(wan_k_sink_row_parts(m->st, w->kc, w->vc, (int64_t)m->kv_rows * D, (int64_t)m->l * D, B,
					 ns, m->l, (int)D, m->sink_part, err, errlen));
	return 0;
}

/* Host-decided path: the new K/V go to the staging buffers (roped), and the token means of
 * the new K/V and of each slot's ns sink frames to m->means ([B][2(ns+1)][D]), summed in the
 * order the device path sums them. */
static int sink_stats(struct dit_cuda *m, int li, int B, int n, int ns, const int *d_start,
		      char *err, size_t errlen)
{
	struct layer_w *w = &m->layers[li];
	struct wan_sink_reduce r;
	int D = m->d.dim;

	TRY(wan_k_qkv_rope_cache(m->st, m->qkv, m->qbuf, m->kst, m->vst, (int64_t)n * D, B * n, D,
				 m->hd, n, m->l, m->w2, w->gq, w->gk, m->rope, d_start, m->zero_rows,
				 (float)m->d.eps, err, errlen));
	TRY(sink_frame_parts(m, li, B, n, ns, 1, &r, err, errlen));
	TRY(wan_k_sink_row_parts(m->st, m->kst, m->vst, (int64_t)n * D, 0, B, 1, n, D, m->fresh_part,
				 err, errlen));
	return wan_k_sink_reduce_means(m->st, &r, B, D, err, errlen);
}

/* The device-decided self-attention input stage of layer li (dit_cuda_forward_sink), no host
 * round trip: the statistics, the decision kernel (it writes each slot's row into the call
 * block's write rows), then the write. Fused (wan_sink_fused_ok, the usual case): the new
 * keys' and values' sums come from a pass over qkv that rounds them as the write will, and
 * the write kernel stores q and the new K/V straight to the decided rows; otherwise they are
 * staged, summed and copied. The sink frames change only when a write lands on one, so their
 * means are kept in m->smean from call to call: a CACHED call reads only the new tokens and
 * the decision kernel replaces the kept mean of a frame it overwrites (the same chunk sums in
 * the same order, so the kept means are bitwise what a re-read would give). A full call
 * re-reads the sink rows and refills m->smean. */
static int sink_kv_device(struct dit_cuda *m, int ns, int cached, int li, int B, int n,
			  const int *d_start, int *d_write, char *err, size_t errlen)
{
	struct layer_w *w = &m->layers[li];
	int64_t D = m->d.dim, kf = m->p.kv_frames;
	int fused = wan_sink_fused_ok((int)D, m->hd);
	float eps = (float)m->d.eps;
	struct wan_sink_reduce r;

	TRY(sink_frame_parts(m, li, B, n, ns, !cached, &r, err, errlen));
	r.keep = m->smean + (size_t)li * m->p.slots * 2 * kf * D;
	r.keep_slot = 2 * kf * D;
	r.keep_kv = kf * D;
	if (fused) {
		TRY(wan_k_sink_fresh_parts(m->st, m->qkv, B, n, (int)D, m->hd, m->l, m->w2, w->gk, m->rope,
					   d_start, eps, m->fresh_part, err, errlen));
	} else {
		TRY(wan_k_qkv_rope_cache(m->st, m->qkv, m->qbuf, m->kst, m->vst, (int64_t)n * D, B * n, (int)D,
					 m->hd, n, m->l, m->w2, w->gq, w->gk, m->rope, d_start, m->zero_rows,
					 eps, err, errlen));
		TRY(wan_k_sink_row_parts(m->st, m->kst, m->vst, (int64_t)n * D, 0, B, 1, n, (int)D,
					 m->fresh_part, err, errlen));
	}
	TRY(wan_k_sink_decide(m->st, &r, B, (int)D, m->sink_rings + (size_t)li * B, m->sink_params,
			      m->kv_rows, d_write, m->sink_rec + (size_t)li * B, err, errlen));
	if (fused)
		return wan_k_qkv_rope_cache(m->st, m->qkv, m->qbuf, w->kc, w->vc, (int64_t)m->kv_rows * D, B * n,
					    (int)D, m->hd, n, m->l, m->w2, w->gq, w->gk, m->rope, d_start,
					    d_write, eps, err, errlen);
	return wan_k_kv_write_rows(m->st, m->kst, m->vst, w->kc, w->vc, (int64_t)m->kv_rows * D, B, n, (int)D,
				   d_write, err, errlen);
}

/* Hooked self-attention input stage of layer li: new K/V go to the staging buffers, their
 * and the sink frames' token means go to the host, the callback decides where they land. */
static int hooked_kv(struct dit_cuda *m, const struct fwd_hook *hk, int li, int B, int n,
		     const int *d_start, int *kv_uniform, char *err, size_t errlen)
{
	struct layer_w *w = &m->layers[li];
	int D = m->d.dim, ns = hk->nsink, rows = 2 * (ns + 1);
	size_t sb = (size_t)m->kv_rows * D;

	TRY(sink_stats(m, li, B, n, ns, d_start, err, errlen));
	CU_RET(cudaMemcpyAsync(m->h_means, m->means, (size_t)B * rows * D * 4, cudaMemcpyDeviceToHost, m->st));
	CU_RET(cudaStreamSynchronize(m->st));
	*kv_uniform = -1;
	for (int b = 0; b < B; b++) {
		int wr = 0, al = 0;

		TRY(hk->fn(hk->ctx, li, b, m->h_means + (size_t)b * rows * D, ns, D, &wr, &al, err, errlen));
		if (wr < 0 || wr + n > m->kv_rows || al < wr + n || al > m->kv_rows) {
			snprintf(err, errlen, "layer %d slot %d: cache write at row %d / %d rows read is outside the %d-row cache",
				 li, b, wr, al, m->kv_rows);
			return -1;
		}
		CU_RET(cudaMemcpyAsync((char *)w->kc + (b * sb + (size_t)wr * D) * BF,
				       (const char *)m->kst + (size_t)b * n * D * BF, (size_t)n * D * BF,
				       cudaMemcpyDeviceToDevice, m->st));
		CU_RET(cudaMemcpyAsync((char *)w->vc + (b * sb + (size_t)wr * D) * BF,
				       (const char *)m->vst + (size_t)b * n * D * BF, (size_t)n * D * BF,
				       cudaMemcpyDeviceToDevice, m->st));
		m->h_kvlen[b] = al;
		*kv_uniform = *kv_uniform == -1 || *kv_uniform == al ? al : 0;
	}
	/* the ragged lengths go into the device call block (read by the fallback kernel) */
	CU_RET(cudaMemcpyAsync((int *)d_start + 2 * B, m->h_kvlen, (size_t)B * sizeof(int),
			       cudaMemcpyHostToDevice, m->st));
	return 0;
}

/* Ragged key lengths (the stream's warm-up calls, adaptive-sink calls): 1 when every slot's
 * own one-slot attention (keys [0, kv[b])) runs on cuDNN. */
static int ragged_on_cudnn(struct dit_cuda *m, const struct wan_attn_shape *self, int B,
			   const int *kv)
{
	for (int b = 0; b < B; b++) {
		struct wan_attn_shape one = *self;

		one.b = 1;
		one.skv = kv[b];
		if (!wan_attn_uses_cudnn(m->attn, &one))
			return 0;
	}
	return 1;
}

/* Self-attention of a ragged call as B one-slot cuDNN calls (kv: host lengths). */
static int self_attn_per_slot(struct dit_cuda *m, const struct wan_attn_shape *self, int B,
			      const int *kv, const struct layer_w *w, char *err, size_t errlen)
{
	size_t D = m->d.dim, qo = (size_t)self->sq * D * BF, kvb = (size_t)m->kv_rows * D * BF;

	for (int b = 0; b < B; b++) {
		struct wan_attn_shape one = *self;

		one.b = 1;
		one.skv = kv[b];
		TRY(wan_attn_run(m->attn, m->st, &one, (const char *)m->qbuf + b * qo,
				 (const char *)w->kc + b * kvb, (const char *)w->vc + b * kvb,
				 (char *)m->abuf + b * qo, err, errlen));
	}
	return 0;
}

/* The time embedding of a call (spec §2.3): timestep MLP, every layer's modulation vectors
 * (mvec) and the head's (hvec), for all B·F slot frames, on m->st. */
static int enqueue_embed(struct dit_cuda *m, int B, int Fr, char *err, size_t errlen)
{
	int D = m->d.dim, M = B * Fr;
	int64_t e0_row = 6 * (int64_t)D;

	prof_mark(m, DIT_C_EMBED);
	TRY(wan_k_sin_emb(m->st, m->call_i, m->temb, M, err, errlen));
	TRY(wan_k_linear_small(m->st, m->temb, m->te0_w, m->te0_b, m->e1, M, D, 256, 0, err, errlen));
	TRY(wan_k_linear_small(m->st, m->e1, m->te2_w, m->te2_b, m->e, M, D, D, 1, err, errlen));
	TRY(wan_k_linear_small(m->st, m->e, m->tp_w, m->tp_b, m->e0, M, 6 * D, D, 1, err, errlen));
	TRY(wan_k_modvec(m->st, m->mods, m->d.num_layers, m->e0, M, 6, D, e0_row, D, m->mvec, err, errlen));
	TRY(wan_k_modvec(m->st, m->head_mod, 1, m->e, M, 2, D, D, 0, m->hvec, err, errlen));
	return 0;
}

/* The self- and cross-attention shapes of B slots x n tokens attending kv keys each (the
 * cross keys: one prompt, batch 1 over all B·n tokens; one prompt per slot, batch B). */
static void attn_shapes(const struct dit_cuda *m, int B, int n, int kv, struct wan_attn_shape *self,
			struct wan_attn_shape *cross)
{
	int D = m->d.dim, per_slot = m->nctx_set > 1, cq = per_slot ? n : B * n;

	*self = (struct wan_attn_shape){
		.b = B, .h = m->d.num_heads, .d = m->hd, .sq = n, .skv = kv,
		.q_bstride = (int64_t)n * D, .q_sstride = D,
		.kv_bstride = (int64_t)m->kv_rows * D, .kv_sstride = D,
		.o_bstride = (int64_t)n * D, .o_sstride = D, .scale = 1.0f / sqrtf((float)m->hd),
	};
	*cross = (struct wan_attn_shape){
		.b = per_slot ? B : 1, .h = m->d.num_heads, .d = m->hd, .sq = cq,
		.skv = m->d.text_len, .q_bstride = (int64_t)cq * D, .q_sstride = D,
		.kv_bstride = (int64_t)m->d.text_len * D, .kv_sstride = D,
		.o_bstride = (int64_t)cq * D, .o_sstride = D, .scale = 1.0f / sqrtf((float)m->hd),
	};
}

/* Enqueues, on m->st, everything after the time embedding of a call of B slots x Fr frames:
 * patch embedding, every layer, head and x0. kv_uniform > 0: every slot attends kv_uniform
 * rows; 0: ragged lengths from the device call block (one-slot cuDNN calls or the fallback
 * kernel). HOOK: the adaptive-sink path (host callback or device decision), or NULL. */
static int enqueue_body(struct dit_cuda *m, int B, int Fr, int kv_uniform, const struct fwd_hook *hook,
			char *err, size_t errlen)
{
	int D = m->d.dim, FF = m->d.ffn_dim, L = m->l, n = Fr * L, T = B * n, M = B * Fr;
	cudaStream_t st = m->st;
	float eps = (float)m->d.eps;
	const int *d_start = m->call_i + M, *d_write = m->call_i + M + B;
	const int *d_kv = m->call_i + M + 2 * B, *h_kv = m->h_call_i + M + 2 * B;
	float *x = m->x, *x_in = m->x_in;
	void *cols = m->cols, *hbuf = m->hbuf, *qkv = m->qkv, *qbuf = m->qbuf;
	void *abuf = m->abuf, *ybuf = m->ybuf, *fbuf = m->fbuf, *obuf = m->obuf;
	struct wan_attn_shape self, cross;

	attn_shapes(m, B, n, kv_uniform, &self, &cross);
	prof_mark(m, DIT_C_EMBED);
	TRY(wan_k_patchify(st, x_in, cols, B, Fr, m->p.lat_h, m->p.lat_w, err, errlen));
	TRY(wan_gemm_bf16(m->gemm, st, T, D, 64, cols, 64, m->pe_w, 64, m->pe_b, WAN_EPI_BIAS,
			  ybuf, D, err, errlen));
	TRY(wan_k_bf16_to_f32(st, ybuf, x, (size_t)T * D, err, errlen));
	prof_mark(m, DIT_C_NORMS);
	TRY(wan_k_res_ln(st, x, NULL, NULL, -1, hbuf, m->mvec, 6, 0, 1, NULL, NULL, T, D, n, L, eps,
			 err, errlen));
	for (int li = 0; li < m->d.num_layers; li++) {
		struct layer_w *w = &m->layers[li];
		const float *mv = m->mvec + (size_t)li * M * 6 * D;
		int last = li + 1 == m->d.num_layers;

		/* hbuf holds LN(x)·(1+scale1)+shift1 (fused into the previous residual) */
		prof_mark(m, DIT_C_QKV);
		TRY(wan_gemm_bf16(m->gemm, st, T, 3 * D, D, hbuf, D, w->wqkv, D, w->bqkv, WAN_EPI_BIAS,
				  qkv, 3 * D, err, errlen));
		prof_mark(m, DIT_C_NORMS);
		if (hook && hook->fn)
			TRY(hooked_kv(m, hook, li, B, n, d_start, &kv_uniform, err, errlen));
		else if (hook)
			TRY(sink_kv_device(m, hook->nsink, hook->cached, li, B, n, d_start, (int *)d_write,
					   err, errlen));
		else
			TRY(wan_k_qkv_rope_cache(st, qkv, qbuf, w->kc, w->vc, (int64_t)m->kv_rows * D, T, D,
						 m->hd, n, L, m->w2, w->gq, w->gk, m->rope, d_start, d_write,
						 eps, err, errlen));
		prof_mark(m, DIT_C_SELF_ATTN);
		self.skv = kv_uniform;
		if (kv_uniform > 0)
			TRY(wan_attn_run(m->attn, st, &self, qbuf, w->kc, w->vc, abuf, err, errlen));
		else if (ragged_on_cudnn(m, &self, B, hook ? m->h_kvlen : h_kv))
			TRY(self_attn_per_slot(m, &self, B, hook ? m->h_kvlen : h_kv, w, err, errlen));
		else
			TRY(wan_attn_run_ragged(m->attn, st, &self, d_kv, qbuf, w->kc, w->vc, abuf, err,
						errlen));
		prof_mark(m, DIT_C_PROJ);
		/* o stays in ybuf until the cross residual adds it to x */
		TRY(wan_gemm_bf16(m->gemm, st, T, D, D, abuf, D, w->wo, D, w->bo, WAN_EPI_BIAS, ybuf, D,
				  err, errlen));
		prof_mark(m, DIT_C_NORMS);
		/* hbuf = norm3(x + o·gate1), x not written back */
		TRY(wan_k_res_ln2(st, x, 0, ybuf, mv, 2, NULL, hbuf, NULL, 0, 0, 0, w->n3g, w->n3b, T, D,
				  n, L, eps, err, errlen));
		prof_mark(m, DIT_C_PROJ);
		TRY(wan_gemm_bf16(m->gemm, st, T, D, D, hbuf, D, w->cwq, D, w->cbq, WAN_EPI_BIAS, abuf, D,
				  err, errlen));
		prof_mark(m, DIT_C_NORMS);
		TRY(wan_k_rmsnorm(st, abuf, D, qbuf, T, D, w->cgq, eps, err, errlen));
		prof_mark(m, DIT_C_CROSS_ATTN);
		TRY(wan_attn_run(m->attn, st, &cross, qbuf, w->xk, w->xv, abuf, err, errlen));
		prof_mark(m, DIT_C_PROJ);
		TRY(wan_gemm_bf16(m->gemm, st, T, D, D, abuf, D, w->cwo, D, w->cbo, WAN_EPI_BIAS, hbuf, D,
				  err, errlen));
		prof_mark(m, DIT_C_NORMS);
		/* x += o·gate1 + cross (the same fp32 sums as two updates); hbuf = LN(x)·(1+scale2)+shift2 */
		TRY(wan_k_res_ln2(st, x, 1, ybuf, mv, 2, hbuf, hbuf, mv, 6, 3, 4, NULL, NULL, T, D, n, L,
				  eps, err, errlen));
		prof_mark(m, DIT_C_FFN);
		TRY(wan_gemm_bf16(m->gemm, st, T, FF, D, hbuf, D, w->w1, D, w->b1, WAN_EPI_BIAS_GELU, fbuf,
				  FF, err, errlen));
		TRY(wan_gemm_bf16(m->gemm, st, T, D, FF, fbuf, FF, w->w2, FF, w->b2, WAN_EPI_BIAS, ybuf, D,
				  err, errlen));
		prof_mark(m, last ? DIT_C_HEAD : DIT_C_NORMS);
		/* x += ffn·gate2; hbuf = the next layer's LN+mod (or the head's) */
		if (last)
			TRY(wan_k_res_ln(st, x, ybuf, mv, 5, hbuf, m->hvec, 2, 0, 1, NULL, NULL, T, D, n, L,
					 eps, err, errlen));
		else
			TRY(wan_k_res_ln(st, x, ybuf, mv, 5, hbuf, mv + (size_t)M * 6 * D, 6, 0, 1, NULL, NULL,
					 T, D, n, L, eps, err, errlen));
	}
	prof_mark(m, DIT_C_HEAD);
	TRY(wan_gemm_bf16(m->gemm, st, T, 64, D, hbuf, D, m->head_w, D, m->head_b, WAN_EPI_BIAS,
			  obuf, 64, err, errlen));
	TRY(wan_k_unpatchify_x0(st, obuf, x_in, m->call_f, m->flow, m->x0, B, Fr, m->p.lat_h,
				m->p.lat_w, err, errlen));
	prof_mark(m, DIT_C_COUNT);
	return 0;
}

/* Enqueues one forward on m->st: the time embedding when with_emb, then the body (with the
 * sink hook when HOOK is not NULL). */
static int enqueue_call(struct dit_cuda *m, int B, int Fr, int kv_uniform, const struct fwd_hook *hook,
			int with_emb, char *err, size_t errlen)
{
	if (with_emb)
		TRY(enqueue_embed(m, B, Fr, err, errlen));
	return enqueue_body(m, B, Fr, kv_uniform, hook, err, errlen);
}

/* The whole forward, eager (profile, adaptive-sink hook). The modulation vectors
 * it writes are this call's: the embedding cache is invalidated. */
static int enqueue_forward(struct dit_cuda *m, int B, int Fr, int kv_uniform,
			   const struct fwd_hook *hook, char *err, size_t errlen)
{
	m->emb_ok = 0;
	TRY(enqueue_embed(m, B, Fr, err, errlen));
	return enqueue_body(m, B, Fr, kv_uniform, hook, err, errlen);
}

static int check_call(struct dit_cuda *m, const struct dit_cuda_call *c, int *kv_uniform,
		      char *err, size_t errlen)
{
	int n, kvu;

	if (c->slots < 1 || c->slots > m->p.slots || c->frames < 1 || c->frames > DIT_CUDA_MAX_FRAMES ||
	    c->slots * c->frames > m->max_frames_total) {
		snprintf(err, errlen, "call of %d slots x %d frames exceeds the plan (%d slots, %d frames in all)",
			 c->slots, c->frames, m->p.slots, m->max_frames_total);
		return -1;
	}
	if (m->nctx_set > 1 && m->nctx_set != c->slots) {
		snprintf(err, errlen, "%d prompts are set but the call has %d slots", m->nctx_set, c->slots);
		return -1;
	}
	n = c->frames * m->l;
	kvu = c->kv_len[0];
	for (int b = 0; b < c->slots; b++) {
		if (c->write_row[b] < 0 || c->write_row[b] + n > m->kv_rows || c->kv_len[b] < 1 ||
		    c->kv_len[b] > m->kv_rows || c->start_frame[b] < 0 ||
		    c->start_frame[b] + c->frames > ROPE_POSITIONS) {
			snprintf(err, errlen, "slot %d: cache rows [%d, %d) / attended %d / start frame %d outside the %d-row cache or %d RoPE positions",
				 b, c->write_row[b], c->write_row[b] + n, c->kv_len[b], c->start_frame[b],
				 m->kv_rows, ROPE_POSITIONS);
			return -1;
		}
		for (int f = 0; f < c->frames; f++)
			if (c->t[b][f] < 0 || c->t[b][f] > 1000) {
				snprintf(err, errlen, "slot %d frame %d: timestep %d outside 0..1000", b, f, c->t[b][f]);
				return -1;
			}
		if (c->kv_len[b] != kvu)
			kvu = 0;
	}
	*kv_uniform = kvu;
	return 0;
}

/* Copies the per-call integers and sigmas into the device call block (queued on m->st). */
static int upload_call(struct dit_cuda *m, const struct dit_cuda_call *c, char *err, size_t errlen)
{
	int B = c->slots, M = B * c->frames, *ci = m->h_call_i;

	CU_RET(cudaStreamSynchronize(m->st)); /* the staging buffer may still be read */
	for (int b = 0; b < B; b++)
		for (int f = 0; f < c->frames; f++) {
			ci[b * c->frames + f] = c->t[b][f];
			m->h_call_f[b * c->frames + f] = c->sigma[b][f];
		}
	for (int b = 0; b < B; b++) {
		ci[M + b] = c->start_frame[b];
		ci[M + B + b] = c->write_row[b];
		ci[M + 2 * B + b] = c->kv_len[b];
	}
	CU_RET(cudaMemcpyAsync(m->call_i, ci, (size_t)(M + 3 * B) * sizeof(int), cudaMemcpyHostToDevice, m->st));
	CU_RET(cudaMemcpyAsync(m->call_f, m->h_call_f, (size_t)M * sizeof(float), cudaMemcpyHostToDevice, m->st));
	return 0;
}

/* The device sink path's per-call state: the rings before the call and the parameters,
 * through pinned staging (queued on m->st after upload_call's sync, so the staging is free);
 * of each ring only the entries in use (the device never reads past them). */
static int upload_sink(struct dit_cuda *m, const struct dit_cuda_call *c, const struct dit_cuda_sink *s,
		       char *err, size_t errlen)
{
	size_t nr = (size_t)m->d.num_layers * c->slots, head = offsetof(struct wan_sink_ring, list);

	for (size_t i = 0; i < nr; i++) {
		int n = s->rings[i].n < 0 ? 0 : s->rings[i].n > WAN_SINK_LIST_MAX ? WAN_SINK_LIST_MAX : s->rings[i].n;

		memcpy(&m->h_rings[i], &s->rings[i], head + (size_t)n * sizeof(int));
	}
	*m->h_sink_params = s->params;
	CU_RET(cudaMemcpyAsync(m->sink_rings, m->h_rings, nr * sizeof(*m->h_rings), cudaMemcpyHostToDevice, m->st));
	CU_RET(cudaMemcpyAsync(m->sink_params, m->h_sink_params, sizeof(s->params), cudaMemcpyHostToDevice, m->st));
	/* the decision kernels leave their counters at zero; an aborted call may not have */
	CU_RET(cudaMemsetAsync(m->sink_count, 0, DIT_CUDA_MAX_SLOTS * sizeof(int), m->st));
	return 0;
}

/* With the embedding cache on: 1 when the modulation vectors in place are not those of
 * this call's shape and timesteps (then they are recomputed outside the graph). A stream's
 * slots usually keep their timesteps from call to call, so this is mostly 0. */
static int emb_stale(struct dit_cuda *m, const struct dit_cuda_call *c)
{
	int stale = !m->emb_ok || m->emb_b != c->slots || m->emb_f != c->frames;

	for (int b = 0; b < c->slots; b++)
		for (int f = 0; f < c->frames; f++) {
			int *k = &m->emb_t[b * c->frames + f];

			stale |= *k != c->t[b][f];
			*k = c->t[b][f];
		}
	m->emb_b = c->slots;
	m->emb_f = c->frames;
	return stale;
}

/* WAN_GRAPH_DEBUG=1: a captured graph's kernel nodes and how many of its edges are
 * programmatic (PDL launches kept as such by the capture), on stderr. */
static void graph_debug(cudaGraph_t graph, int B, int Fr)
{
	const char *e = getenv("WAN_GRAPH_DEBUG");
	size_t nn = 0, ne = 0, nk = 0, np = 0;
	cudaGraphNode_t *from = NULL, *to = NULL, *nodes = NULL;
	cudaGraphEdgeData *ed = NULL;

	if (!e || e[0] != '1' || cudaGraphGetNodes(graph, NULL, &nn) != cudaSuccess ||
	    cudaGraphGetEdges(graph, NULL, NULL, NULL, &ne) != cudaSuccess)
		goto cleanup;
	nodes = calloc(nn ? nn : 1, sizeof(*nodes));
	from = calloc(ne ? ne : 1, sizeof(*from));
	to = calloc(ne ? ne : 1, sizeof(*to));
	ed = calloc(ne ? ne : 1, sizeof(*ed));
	if (!nodes || !from || !to || !ed || cudaGraphGetNodes(graph, nodes, &nn) != cudaSuccess ||
	    cudaGraphGetEdges(graph, from, to, ed, &ne) != cudaSuccess)
		goto cleanup;
	for (size_t i = 0; i < nn; i++) {
		enum cudaGraphNodeType t;

		nk += cudaGraphNodeGetType(nodes[i], &t) == cudaSuccess && t == cudaGraphNodeTypeKernel;
	}
	for (size_t i = 0; i < ne; i++)
		np += ed[i].type == cudaGraphDependencyTypeProgrammatic;
	fprintf(stderr, "[graph %d slots x %d frames: %zu nodes (%zu kernels), %zu edges, %zu programmatic]\n",
		B, Fr, nn, nk, ne, np);
cleanup:
	cudaGetLastError();
	free(nodes);
	free(from);
	free(to);
	free(ed);
}

/* One call: eager, a graph replay, or eager then captured (first call of a shape). S: the
 * device sink path (its sink frame count is part of the graph's shape), or NULL. */
static int run_call(struct dit_cuda *m, const struct dit_cuda_call *c, const struct dit_cuda_sink *s,
		    int cached, char *err, size_t errlen)
{
	int kvu, B = c->slots, Fr = c->frames, nsink = s ? s->nsink : 0;
	struct fwd_hook sink_hook = {.fn = NULL, .ctx = NULL, .nsink = nsink, .cached = cached};
	const struct fwd_hook *hook = s ? &sink_hook : NULL;
	struct graph_entry *g = NULL;
	cudaGraph_t graph = NULL;
	cudaError_t ce;
	int emb;

	if (check_call(m, c, &kvu, err, errlen) || upload_call(m, c, err, errlen) ||
	    (s && upload_sink(m, c, s, err, errlen)))
		return -1;
	/* the time embedding: outside the graphs (only when the timesteps changed) with the
	 * cache on, inside them (every call) without */
	if (m->emb_cache && emb_stale(m, c)) {
		m->emb_ok = 0;
		if (enqueue_embed(m, B, Fr, err, errlen))
			return -1;
		m->emb_ok = 1;
	}
	emb = !m->emb_cache;
	m->counters.forwards++;
	m->counters.sink_forwards += s != NULL;
	m->counters.sink_kept_means += s && cached;
	if (!s)
		m->smean_ns = 0; /* a plain call writes cache rows the kept sink means do not follow */
	if (!m->use_graphs)
		return enqueue_call(m, B, Fr, kvu, hook, emb, err, errlen);
	for (int i = 0; i < m->ngraphs; i++)
		if (m->graphs[i].slots == B && m->graphs[i].frames == Fr && m->graphs[i].kv_len == kvu &&
		    m->graphs[i].nsink == nsink && m->graphs[i].sink_cached == cached &&
		    (kvu || !memcmp(m->graphs[i].kv, c->kv_len, (size_t)B * sizeof(int))))
			g = &m->graphs[i];
	if (g) {
		CU_RET(cudaGraphLaunch(g->exec, m->st));
		m->counters.graph_replays++;
		m->counters.sink_graph_replays += s != NULL;
		return 0;
	}
	/* First call of this shape: run eagerly (builds every GEMM/attention plan, which may
	 * allocate, and tunes them on the main stream), then capture the same sequence for later
	 * calls. */
	if (enqueue_call(m, B, Fr, kvu, hook, emb, err, errlen))
		return -1;
	/* ragged shapes (a stream's warm-up calls) leave room for the uniform ones */
	if (m->ngraphs == GRAPH_CACHE_MAX || (!kvu && m->ngraphs >= GRAPH_CACHE_MAX - GRAPH_RAGGED_RESERVE))
		return 0;
	CU_RET(cudaStreamSynchronize(m->st));
	CU_RET(cudaStreamBeginCapture(m->st, cudaStreamCaptureModeThreadLocal));
	if (enqueue_call(m, B, Fr, kvu, hook, emb, err, errlen)) {
		/* a library refused to be captured: the eager run above already produced this
		 * call's result, so stay eager from now on */
		cudaStreamEndCapture(m->st, &graph);
		if (graph)
			cudaGraphDestroy(graph);
		cudaGetLastError();
		m->use_graphs = 0;
		err[0] = 0;
		return 0;
	}
	ce = cudaStreamEndCapture(m->st, &graph);
	if (ce != cudaSuccess) {
		/* capture refused (a library call that cannot be captured): stay eager */
		cudaGetLastError();
		m->use_graphs = 0;
		return 0;
	}
	graph_debug(graph, B, Fr);
	g = &m->graphs[m->ngraphs];
	ce = cudaGraphInstantiate(&g->exec, graph, 0);
	cudaGraphDestroy(graph);
	if (ce != cudaSuccess) {
		cudaGetLastError();
		m->use_graphs = 0;
		return 0;
	}
	g->slots = B;
	g->frames = Fr;
	g->kv_len = kvu;
	g->nsink = nsink;
	g->sink_cached = cached;
	memset(g->kv, 0, sizeof(g->kv));
	memcpy(g->kv, c->kv_len, (size_t)B * sizeof(int));
	m->ngraphs++;
	m->counters.graph_captures++;
	return 0;
}

int dit_cuda_forward(struct dit_cuda *m, const struct dit_cuda_call *c, const float *x,
		     float *x0, float *flow, char *err, size_t errlen)
{
	size_t px = (size_t)c->slots * 16 * c->frames * m->p.lat_h * m->p.lat_w;

	if (c->slots < 1 || c->frames < 1 || c->slots * c->frames > m->max_frames_total) {
		snprintf(err, errlen, "call of %d slots x %d frames exceeds the plan", c->slots, c->frames);
		return -1;
	}
	if (x)
		CU_RET(cudaMemcpyAsync(m->x_in, x, px * 4, cudaMemcpyHostToDevice, m->st));
	if (run_call(m, c, NULL, 0, err, errlen))
		return -1;
	if (x0)
		CU_RET(cudaMemcpyAsync(x0, m->x0, px * 4, cudaMemcpyDeviceToHost, m->st));
	if (flow)
		CU_RET(cudaMemcpyAsync(flow, m->flow, px * 4, cudaMemcpyDeviceToHost, m->st));
	if (x0 || flow)
		return dit_cuda_sync(m, err, errlen);
	return 0;
}

int dit_cuda_forward_hooked(struct dit_cuda *m, const struct dit_cuda_call *c, int nsink,
			    dit_cuda_kv_fn fn, void *fn_ctx, const float *x, float *flow,
			    char *err, size_t errlen)
{
	struct dit_cuda_call cc = *c;
	struct fwd_hook hk = {.fn = fn, .ctx = fn_ctx, .nsink = nsink};
	size_t px = (size_t)c->slots * 16 * c->frames * m->p.lat_h * m->p.lat_w;
	int kvu;

	if (nsink < 0 || nsink >= m->p.kv_frames) {
		snprintf(err, errlen, "%d sink frames for a %d-frame cache", nsink, m->p.kv_frames);
		return -1;
	}
	/* the call's own rows are decided per layer; make the static checks pass */
	for (int b = 0; b < cc.slots && b < DIT_CUDA_MAX_SLOTS; b++) {
		cc.write_row[b] = 0;
		cc.kv_len[b] = m->kv_rows;
	}
	if (check_call(m, &cc, &kvu, err, errlen))
		return -1;
	m->smean_ns = 0;
	if (x)
		CU_RET(cudaMemcpyAsync(m->x_in, x, px * 4, cudaMemcpyHostToDevice, m->st));
	if (upload_call(m, &cc, err, errlen) || enqueue_forward(m, cc.slots, cc.frames, kvu, &hk, err, errlen))
		return -1;
	if (flow)
		CU_RET(cudaMemcpyAsync(flow, m->flow, px * 4, cudaMemcpyDeviceToHost, m->st));
	return dit_cuda_sync(m, err, errlen);
}

/* 1 when every position and row of the call's sink state is a multiple of L (so every write
 * covers whole frames). */
static int sink_state_aligned(const struct dit_cuda *m, const struct dit_cuda_call *c,
			      const struct dit_cuda_sink *s)
{
	int L = m->l;

	for (int b = 0; b < c->slots; b++)
		if (s->params.c_start[b] % L)
			return 0;
	for (int i = 0; i < m->d.num_layers * c->slots; i++) {
		const struct wan_sink_ring *r = &s->rings[i];

		if (r->n < 0 || r->n > WAN_SINK_LIST_MAX || r->global_end % L || r->local_end % L)
			return 0;
		for (int k = 0; k < r->n; k++)
			if (r->list[k] % L)
				return 0;
	}
	return 1;
}

/* The checks of a device-sink call C: CC gets the call the forward runs (static rows),
 * *ALIGNED whether every write covers whole frames, *CACHED whether the kept sink means can
 * stand in for a re-read. */
static int sink_prepare(struct dit_cuda *m, const struct dit_cuda_call *c, const struct dit_cuda_sink *s,
			struct dit_cuda_call *cc, int *aligned, int *cached, char *err, size_t errlen)
{
	const struct wan_sink_params *sp = &s->params;

	if (c->slots < 1 || c->slots > m->p.slots || c->frames < 1 || c->slots * c->frames > m->max_frames_total) {
		snprintf(err, errlen, "call of %d slots x %d frames exceeds the plan", c->slots, c->frames);
		return -1;
	}
	if (s->nsink < 1 || s->nsink >= m->p.kv_frames || s->nsink > 64 || !s->rings ||
	    sp->pending_max < 1 || sp->pending_max > WAN_SINK_PENDING_MAX || sp->list_cap < 1 ||
	    sp->list_cap > WAN_SINK_LIST_MAX || sp->total_steps < 1 || sp->kv_slots < c->slots) {
		snprintf(err, errlen, "adaptive sink: %d sink frames for a %d-frame cache, list of %d (at most %d), %d pending (at most %d)",
			 s->nsink, m->p.kv_frames, sp->list_cap, WAN_SINK_LIST_MAX, sp->pending_max,
			 WAN_SINK_PENDING_MAX);
		return -1;
	}
	*cc = *c;
	for (int b = 0; b < c->slots; b++) {
		/* the rows are decided per layer on the device; make the static checks pass */
		cc->write_row[b] = 0;
		m->h_kvlen[b] = c->kv_len[b];
	}
	/* kept sink means: only while every write is a whole aligned frame (then the decision
	 * kernel follows each write that lands on a sink frame) */
	*aligned = c->frames == 1 && sink_state_aligned(m, c, s);
	*cached = *aligned && m->smean_ns == s->nsink && m->smean_slots >= c->slots;
	return 0;
}

/* After a device-sink call of B slots: the kept means follow the cache (or are stale). */
static void sink_kept(struct dit_cuda *m, const struct dit_cuda_sink *s, int B, int aligned, int cached)
{
	if (aligned) {
		m->smean_ns = s->nsink;
		m->smean_slots = cached && m->smean_slots > B ? m->smean_slots : B;
	}
}

int dit_cuda_forward_sink(struct dit_cuda *m, const struct dit_cuda_call *c,
			  const struct dit_cuda_sink *s, const float *x, float *flow, char *err,
			  size_t errlen)
{
	struct dit_cuda_call cc;
	size_t px = (size_t)c->slots * 16 * c->frames * m->p.lat_h * m->p.lat_w;
	int aligned, cached;

	if (sink_prepare(m, c, s, &cc, &aligned, &cached, err, errlen))
		return -1;
	if (x)
		CU_RET(cudaMemcpyAsync(m->x_in, x, px * 4, cudaMemcpyHostToDevice, m->st));
	m->smean_ns = 0;
	if (run_call(m, &cc, s, cached, err, errlen))
		return -1;
	sink_kept(m, s, c->slots, aligned, cached);
	if (s->rec && dit_cuda_sink_rec_to_host(m, c->slots, s->rec, err, errlen))
		return -1;
	if (flow)
		CU_RET(cudaMemcpyAsync(flow, m->flow, px * 4, cudaMemcpyDeviceToHost, m->st));
	if (flow || s->rec)
		return dit_cuda_sync(m, err, errlen);
	return 0;
}

int dit_cuda_sync(struct dit_cuda *m, char *err, size_t errlen)
{
	CU_RET(cudaStreamSynchronize(m->st));
	return 0;
}

int dit_cuda_x0_to_host(struct dit_cuda *m, int slots, int frames, const double *sigma, float *out,
			char *err, size_t errlen)
{
	size_t per = (size_t)16 * frames * m->p.lat_h * m->p.lat_w;

	if (slots < 1 || frames < 1 || slots > DIT_CUDA_MAX_SLOTS || slots * frames > m->max_frames_total) {
		snprintf(err, errlen, "x0 of %d slots x %d frames exceeds the plan", slots, frames);
		return -1;
	}
	if (wan_k_flow_to_x0_f64(m->st, m->x_in, m->flow, m->x0, sigma, slots, per, err, errlen))
		return -1;
	CU_RET(cudaMemcpyAsync(out, m->x0, (size_t)slots * per * 4, cudaMemcpyDeviceToHost, m->st));
	return 0;
}

int dit_cuda_sink_rec_to_host(struct dit_cuda *m, int slots, struct wan_sink_rec *rec, char *err,
			      size_t errlen)
{
	if (slots < 1 || slots > m->p.slots) {
		snprintf(err, errlen, "sink decisions of %d slots (the plan has %d)", slots, m->p.slots);
		return -1;
	}
	CU_RET(cudaMemcpyAsync(rec, m->sink_rec, (size_t)m->d.num_layers * slots * sizeof(*rec),
			       cudaMemcpyDeviceToHost, m->st));
	return 0;
}

void *dit_cuda_host_alloc(size_t bytes)
{
	void *p = NULL;

	if (cudaMallocHost(&p, bytes ? bytes : 1) != cudaSuccess) {
		cudaGetLastError();
		return NULL;
	}
	memset(p, 0, bytes);
	return p;
}

void dit_cuda_host_free(void *p)
{
	if (p)
		cudaFreeHost(p);
}

/* An eager forward of C with an event between op groups (HOOK: the device sink path, whose
 * state is uploaded); ms[] gets the time per component. */
static int profile_call(struct dit_cuda *m, const struct dit_cuda_call *c, const struct dit_cuda_sink *s,
			const struct fwd_hook *hook, double ms[DIT_C_COUNT], char *err, size_t errlen)
{
	int kvu, rc = 0;

	for (int i = 0; i < DIT_C_COUNT; i++)
		ms[i] = 0.0;
	if (!m->ev) {
		m->ev = calloc(PROF_EVENTS, sizeof(*m->ev));
		if (!m->ev) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		for (int i = 0; i < PROF_EVENTS; i++)
			CU_RET(cudaEventCreate(&m->ev[i]));
	}
	if (check_call(m, c, &kvu, err, errlen) || upload_call(m, c, err, errlen) ||
	    (s && upload_sink(m, c, s, err, errlen)))
		return -1;
	m->nev = 0;
	m->smean_ns = 0;
	m->profiling = 1;
	rc = enqueue_forward(m, c->slots, c->frames, kvu, hook, err, errlen);
	m->profiling = 0;
	if (rc)
		return -1;
	CU_RET(cudaStreamSynchronize(m->st));
	for (int i = 0; i + 1 < m->nev; i++) {
		float t = 0.0f;

		CU_RET(cudaEventElapsedTime(&t, m->ev[i], m->ev[i + 1]));
		if (m->ev_cat[i] < DIT_C_COUNT)
			ms[m->ev_cat[i]] += t;
	}
	return 0;
}

int dit_cuda_profile(struct dit_cuda *m, const struct dit_cuda_call *c, double ms[DIT_C_COUNT],
		     char *err, size_t errlen)
{
	return profile_call(m, c, NULL, NULL, ms, err, errlen);
}

int dit_cuda_profile_sink(struct dit_cuda *m, const struct dit_cuda_call *c, const struct dit_cuda_sink *s,
			  double ms[DIT_C_COUNT], char *err, size_t errlen)
{
	struct dit_cuda_call cc;
	struct fwd_hook hk = {.fn = NULL, .ctx = NULL, .nsink = s->nsink};
	int aligned, cached;

	if (sink_prepare(m, c, s, &cc, &aligned, &cached, err, errlen))
		return -1;
	hk.cached = cached;
	if (profile_call(m, &cc, s, &hk, ms, err, errlen))
		return -1;
	sink_kept(m, s, c->slots, aligned, cached);
	return 0;
}

int dit_cuda_copy_slot(struct dit_cuda *m, int dst, int src, int rows, char *err, size_t errlen)
{
	size_t D = m->d.dim, sb = (size_t)m->kv_rows * D * BF;

	if (dst < 0 || src < 0 || dst >= m->p.slots || src >= m->p.slots || rows < 0 || rows > m->kv_rows) {
		snprintf(err, errlen, "bad cache copy: slot %d -> %d, %d rows", src, dst, rows);
		return -1;
	}
	m->smean_ns = 0;
	for (int i = 0; i < m->d.num_layers; i++) {
		struct layer_w *w = &m->layers[i];

		CU_RET(cudaMemcpyAsync((char *)w->kc + dst * sb, (char *)w->kc + src * sb, rows * D * BF,
				       cudaMemcpyDeviceToDevice, m->st));
		CU_RET(cudaMemcpyAsync((char *)w->vc + dst * sb, (char *)w->vc + src * sb, rows * D * BF,
				       cudaMemcpyDeviceToDevice, m->st));
	}
	return 0;
}

int dit_cuda_read_cache(struct dit_cuda *m, int layer, int slot, int which, int row0, int count,
			float *out, char *err, size_t errlen)
{
	size_t D = m->d.dim, sb = (size_t)m->kv_rows * D;
	float *tmp = NULL;
	const char *base;
	int rc = 0;

	if (layer < 0 || layer >= m->d.num_layers || slot < 0 || slot >= m->p.slots || row0 < 0 ||
	    count < 1 || row0 + count > m->kv_rows) {
		snprintf(err, errlen, "bad cache read: layer %d slot %d rows [%d, %d)", layer, slot, row0, row0 + count);
		return -1;
	}
	base = (const char *)(which ? m->layers[layer].vc : m->layers[layer].kc) + (slot * sb + row0 * D) * BF;
	CU_TRY(cudaMalloc((void **)&tmp, count * D * 4));
	if (wan_k_bf16_to_f32(m->st, base, tmp, count * D, err, errlen)) {
		rc = -1;
		goto cleanup;
	}
	CU_TRY(cudaMemcpyAsync(out, tmp, count * D * 4, cudaMemcpyDeviceToHost, m->st));
	CU_TRY(cudaStreamSynchronize(m->st));
cleanup:
	if (tmp)
		cudaFree(tmp);
	return rc;
}

int dit_cuda_self_attn_on_cudnn(struct dit_cuda *m, int slots, int frames, int kv_len)
{
	struct wan_attn_shape self, cross;

	attn_shapes(m, slots, frames * m->l, kv_len, &self, &cross);
	return wan_attn_uses_cudnn(m->attn, &self);
}

void dit_cuda_attn_variants(struct dit_cuda *m, int slots, int frames, int kv_len, char *self_what,
			    char *cross_what, size_t len)
{
	struct wan_attn_shape self, cross;

	attn_shapes(m, slots, frames * m->l, kv_len, &self, &cross);
	wan_attn_variant(m->attn, &self, self_what, len);
	wan_attn_variant(m->attn, &cross, cross_what, len);
}
