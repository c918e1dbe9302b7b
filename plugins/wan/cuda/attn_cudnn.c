/* attn_cudnn.c: see attn_cudnn.h.
 *
 * The cuDNN backend recognises flash attention as this operation graph (the one the cuDNN
 * frontend's SDPA node lowers to): S = matmul(Q, Kᵀ) → S·scale → softmax written out as
 * max-reduce, sub, exp, add-reduce, div (plus log/add for the statistics, left virtual) →
 * O = matmul(P, V). Kᵀ is K's descriptor with the last two dims and strides swapped. All
 * intermediates are virtual fp32 tensors; the engine never materialises them. */
#include "plugins/wan/cuda/attn_cudnn.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <cudnn.h>
#include "plugins/wan/cuda/cudnn_be.h"
#include "plugins/wan/cuda/cuda_check.h"
#include "plugins/wan/cuda/attn_fa3.h"

#define ATTN_CACHE_MAX 32
#define ATTN_ALT_MAX 3    /* extra engine configs kept for timing (WAN_ATTN_TUNE=0: none) */
#define ATTN_TUNE_REPS 3

enum { UID_Q = 1, UID_K, UID_V, UID_O, UID_SCALE, UID_STATS, UID_VIRT = 100 };

struct attn_plan {
	struct wan_attn_shape s;
	int on_cudnn;                      /* 0: refused, fallback kernel */
	int split;                         /* > 1: keys in `split` parts, merged by statistics */
	int q_shared;                      /* split with one slot: every part reads Q in place */
	cudnnBackendDescriptor_t plan;     /* new */
	int64_t workspace;
	/* other engine configs that finalized (new), timed against `plan` on the first run */
	cudnnBackendDescriptor_t alt[ATTN_ALT_MAX];
	int64_t alt_ws[ATTN_ALT_MAX];
	int nalt;
	int fa3;                           /* 1: the wgmma kernel runs it (attn_fa3.cu); 2: it is
					    * timed against cuDNN on the first eager run */
	int fa3_forced;                    /* WAN_ATTN=fa3 or no cuDNN plan: fa3 while pending */
	int fa3_split, fa3_maxsplit;       /* keys in parts (1, 2, 4; -2, -4: only the units of the
					    * last, partial wave in 2 or 4 parts); the largest timed */
	int fa3_bn;                        /* keys per tile (128, 176, 192) */
};

#define RETIRED_MAX 64

struct wan_attn {
	int use_cudnn;
	int fa3_mode;                      /* WAN_ATTN: -1 never (cudnn), 0 when faster, 1 forced */
	cudnnHandle_t dnn;
	void *workspace;                   /* new (cudaMalloc), grown to the largest plan */
	size_t workspace_bytes;
	int nplans;
	struct attn_plan plans[ATTN_CACHE_MAX];
	int sms;                           /* multiprocessors of the device */
	/* split-key scratch: duplicated Q, partial outputs (bf16), statistics (f32) */
	void *qdup, *opart;
	float *stats;
	size_t qdup_bytes, opart_bytes, stats_bytes;
	/* buffers replaced by larger ones stay allocated until wan_attn_free: captured CUDA
	 * graphs may still point into them */
	void *retired[RETIRED_MAX];
	int nretired;
};

/* Makes *buf at least `bytes` long. The old buffer is retired, not freed. */
static int grow(struct wan_attn *a, void **buf, size_t *cap, size_t bytes, char *err, size_t errlen)
{
	void *p = NULL;

	if (bytes <= *cap)
		return 0;
	if (*buf) {
		if (a->nretired == RETIRED_MAX) {
			snprintf(err, errlen, "attention scratch grew too often");
			return -1;
		}
		a->retired[a->nretired++] = *buf;
	}
	*buf = NULL;
	*cap = 0;
	CU_RET(cudaMalloc(&p, bytes));
	*buf = p;
	*cap = bytes;
	return 0;
}

struct wan_attn *wan_attn_new(int use_cudnn, char *err, size_t errlen)
{
	struct wan_attn *a = calloc(1, sizeof(*a));
	int rc = 0;

	if (!a) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->use_cudnn = use_cudnn;
	{
		const char *e = getenv("WAN_ATTN");

		a->fa3_mode = !use_cudnn || (e && !strcmp(e, "cudnn")) ? -1 : e && !strcmp(e, "fa3") ? 1 : 0;
	}
	if (use_cudnn)
		DNN_TRY(cudnnCreate(&a->dnn));
	{
		int dev = 0;

		CU_TRY(cudaGetDevice(&dev));
		CU_TRY(cudaDeviceGetAttribute(&a->sms, cudaDevAttrMultiProcessorCount, dev));
	}
cleanup:
	if (rc) {
		wan_attn_free(a);
		return NULL;
	}
	return a;
}

void wan_attn_free(struct wan_attn *a)
{
	if (!a)
		return;
	for (int i = 0; i < a->nplans; i++) {
		if (a->plans[i].plan)
			cudnnBackendDestroyDescriptor(a->plans[i].plan);
		for (int j = 0; j < a->plans[i].nalt; j++)
			cudnnBackendDestroyDescriptor(a->plans[i].alt[j]);
	}
	if (a->workspace)
		cudaFree(a->workspace);
	for (int i = 0; i < a->nretired; i++)
		cudaFree(a->retired[i]);
	if (a->qdup)
		cudaFree(a->qdup);
	if (a->opart)
		cudaFree(a->opart);
	if (a->stats)
		cudaFree(a->stats);
	if (a->dnn)
		cudnnDestroy(a->dnn);
	free(a);
}

enum { T_Q, T_KT, T_V, T_O, T_SCALE, T_S, T_SS, T_MAX, T_SUB, T_EXP, T_SUM, T_LOG, T_STATS, T_P, T_COUNT };
enum { OP_BMM1, OP_SCALE, OP_MAX, OP_SUB, OP_EXP, OP_SUM, OP_LOG, OP_STATS, OP_DIV, OP_BMM2, OP_COUNT };

/* Builds the SDPA graph for shape s and finalizes the first engine config that works.
 * Returns 0 with *plan set, or a cuDNN status (the shape is then refused). why gets a short
 * reason. */
/* variant bits: 1 = no statistics ops, 2 = P stored as bf16, 4 = fallback heuristics,
 * 8 = the statistics (max + log-sum) are a real fp32 output [b, h, sq, 1] (uid UID_STATS). */
/* ALT (may be NULL): up to ATTN_ALT_MAX further configs that finalize go to alt, alt_ws, nalt. */
static cudnnStatus_t build_plan(cudnnHandle_t dnn, const struct wan_attn_shape *sh, int variant,
				cudnnBackendDescriptor_t *plan_out, int64_t *ws_out,
				cudnnBackendDescriptor_t *alt, int64_t *alt_ws, int *nalt,
				char *why, size_t whylen)
{
	cudnnBackendDescriptor_t t[T_COUNT] = {0}, ops[OP_COUNT] = {0}, graph = NULL, heur = NULL;
	cudnnBackendDescriptor_t *cfgs = NULL;
	int64_t b = sh->b, h = sh->h, d = sh->d, sq = sh->sq, skv = sh->skv;
	int64_t qd[4] = {b, h, sq, d}, qs[4] = {sh->q_bstride, d, sh->q_sstride, 1};
	int64_t ktd[4] = {b, h, d, skv}, kts[4] = {sh->kv_bstride, d, 1, sh->kv_sstride};
	int64_t vd[4] = {b, h, skv, d}, vs[4] = {sh->kv_bstride, d, sh->kv_sstride, 1};
	int64_t od[4] = {b, h, sq, d}, os[4] = {sh->o_bstride, d, sh->o_sstride, 1};
	int64_t one[4] = {1, 1, 1, 1};
	int64_t sd[4] = {b, h, sq, skv}, ss[4] = {h * sq * skv, sq * skv, skv, 1};
	int64_t rd[4] = {b, h, sq, 1}, rs[4] = {h * sq, sq, 1, 1};
	cudnnBackendHeurMode_t mode = (variant & 4) ? CUDNN_HEUR_MODE_FALLBACK : CUDNN_HEUR_MODE_A;
	int nops = (variant & 1) ? OP_COUNT - 2 : OP_COUNT;
	cudnnBackendDescriptor_t graph_ops[OP_COUNT];
	int64_t ncfg = 0, got = 0;
	cudnnStatus_t s = CUDNN_STATUS_SUCCESS;
	int64_t uid = UID_VIRT;

	*plan_out = NULL;
	snprintf(why, whylen, "graph construction");
	if ((s = cudnn_be_tensor(&t[T_Q], UID_Q, CUDNN_DATA_BFLOAT16, 4, qd, qs, false, false)) ||
	    (s = cudnn_be_tensor(&t[T_KT], UID_K, CUDNN_DATA_BFLOAT16, 4, ktd, kts, false, false)) ||
	    (s = cudnn_be_tensor(&t[T_V], UID_V, CUDNN_DATA_BFLOAT16, 4, vd, vs, false, false)) ||
	    (s = cudnn_be_tensor(&t[T_O], UID_O, CUDNN_DATA_BFLOAT16, 4, od, os, false, false)) ||
	    (s = cudnn_be_tensor(&t[T_SCALE], UID_SCALE, CUDNN_DATA_FLOAT, 4, one, one, false, true)) ||
	    (s = cudnn_be_tensor(&t[T_S], uid++, CUDNN_DATA_FLOAT, 4, sd, ss, true, false)) ||
	    (s = cudnn_be_tensor(&t[T_SS], uid++, CUDNN_DATA_FLOAT, 4, sd, ss, true, false)) ||
	    (s = cudnn_be_tensor(&t[T_MAX], uid++, CUDNN_DATA_FLOAT, 4, rd, rs, true, false)) ||
	    (s = cudnn_be_tensor(&t[T_SUB], uid++, CUDNN_DATA_FLOAT, 4, sd, ss, true, false)) ||
	    (s = cudnn_be_tensor(&t[T_EXP], uid++, CUDNN_DATA_FLOAT, 4, sd, ss, true, false)) ||
	    (s = cudnn_be_tensor(&t[T_SUM], uid++, CUDNN_DATA_FLOAT, 4, rd, rs, true, false)) ||
	    (s = cudnn_be_tensor(&t[T_LOG], uid++, CUDNN_DATA_FLOAT, 4, rd, rs, true, false)) ||
	    (s = cudnn_be_tensor(&t[T_STATS], (variant & 8) ? UID_STATS : uid++, CUDNN_DATA_FLOAT, 4,
				  rd, rs, !(variant & 8), false)) ||
	    (s = cudnn_be_tensor(&t[T_P], uid++, (variant & 2) ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT,
				  4, sd, ss, true, false)))
		goto cleanup;
	if ((s = cudnn_be_matmul(&ops[OP_BMM1], t[T_Q], t[T_KT], t[T_S])) ||
	    (s = cudnn_be_pointwise(&ops[OP_SCALE], CUDNN_POINTWISE_MUL, t[T_S], t[T_SCALE], t[T_SS])) ||
	    (s = cudnn_be_reduction(&ops[OP_MAX], CUDNN_REDUCE_TENSOR_MAX, t[T_SS], t[T_MAX])) ||
	    (s = cudnn_be_pointwise(&ops[OP_SUB], CUDNN_POINTWISE_SUB, t[T_SS], t[T_MAX], t[T_SUB])) ||
	    (s = cudnn_be_pointwise(&ops[OP_EXP], CUDNN_POINTWISE_EXP, t[T_SUB], NULL, t[T_EXP])) ||
	    (s = cudnn_be_reduction(&ops[OP_SUM], CUDNN_REDUCE_TENSOR_ADD, t[T_EXP], t[T_SUM])) ||
	    (!(variant & 1) && (s = cudnn_be_pointwise(&ops[OP_LOG], CUDNN_POINTWISE_LOG, t[T_SUM], NULL, t[T_LOG]))) ||
	    (!(variant & 1) && (s = cudnn_be_pointwise(&ops[OP_STATS], CUDNN_POINTWISE_ADD, t[T_MAX], t[T_LOG], t[T_STATS]))) ||
	    (s = cudnn_be_pointwise(&ops[OP_DIV], CUDNN_POINTWISE_DIV, t[T_EXP], t[T_SUM], t[T_P])) ||
	    (s = cudnn_be_matmul(&ops[OP_BMM2], t[T_P], t[T_V], t[T_O])))
		goto cleanup;
	nops = 0;
	for (int i = 0; i < OP_COUNT; i++)
		if (ops[i])
			graph_ops[nops++] = ops[i];
	if ((s = cudnn_be_graph(&graph, dnn, graph_ops, nops))) {
		snprintf(why, whylen, "operation graph refused");
		goto cleanup;
	}
	if ((s = cudnn_be_heur(&heur, graph, mode, &ncfg))) {
		snprintf(why, whylen, "engine heuristics failed");
		goto cleanup;
	}
	if (ncfg <= 0) {
		snprintf(why, whylen, "no engine supports this shape");
		s = CUDNN_STATUS_NOT_SUPPORTED;
		goto cleanup;
	}
	if ((s = cudnn_be_engine_cfgs(heur, ncfg, &cfgs, &got)))
		goto cleanup;
	s = CUDNN_STATUS_NOT_SUPPORTED;
	snprintf(why, whylen, "no engine config finalizes");
	if (nalt)
		*nalt = 0;
	for (int64_t i = 0, n = got; i < n; i++) {
		cudnnBackendDescriptor_t plan = NULL;
		int64_t ws = 0;

		if (*plan_out && (!nalt || *nalt == ATTN_ALT_MAX))
			break;
		if (cudnn_be_plan(&plan, dnn, cfgs[i], &ws))
			continue;
		if (!*plan_out) {
			*plan_out = plan;
			*ws_out = ws;
			s = CUDNN_STATUS_SUCCESS;
		} else {
			alt[*nalt] = plan;
			alt_ws[(*nalt)++] = ws;
		}
	}
cleanup:
	cudnn_be_free_cfgs(cfgs, ncfg);
	if (heur)
		cudnnBackendDestroyDescriptor(heur);
	if (graph)
		cudnnBackendDestroyDescriptor(graph);
	for (int i = 0; i < OP_COUNT; i++)
		if (ops[i])
			cudnnBackendDestroyDescriptor(ops[i]);
	for (int i = 0; i < T_COUNT; i++)
		if (t[i])
			cudnnBackendDestroyDescriptor(t[i]);
	return s;
}

static int shape_eq(const struct wan_attn_shape *x, const struct wan_attn_shape *y)
{
	return x->b == y->b && x->h == y->h && x->d == y->d && x->sq == y->sq && x->skv == y->skv &&
	       x->q_bstride == y->q_bstride && x->q_sstride == y->q_sstride &&
	       x->kv_bstride == y->kv_bstride && x->kv_sstride == y->kv_sstride &&
	       x->o_bstride == y->o_bstride && x->o_sstride == y->o_sstride && x->scale == y->scale;
}

static int check_shape(const struct wan_attn_shape *s, char *err, size_t errlen)
{
	if (s->b <= 0 || s->h <= 0 || s->d <= 0 || s->d > 128 || s->d % 8 || s->sq <= 0 || s->skv <= 0) {
		snprintf(err, errlen, "bad attention shape b=%d h=%d d=%d sq=%d skv=%d (d must be 8..128, a multiple of 8)",
			 s->b, s->h, s->d, s->sq, s->skv);
		return -1;
	}
	return 0;
}

static int tune_on(void)
{
	const char *e = getenv("WAN_ATTN_TUNE");

	return !(e && e[0] == '0');
}

#define ALTS (tune_on() ? p->alt : NULL), p->alt_ws, (tune_on() ? &p->nalt : NULL)

static struct attn_plan *plan_get(struct wan_attn *a, const struct wan_attn_shape *s, char *err,
				  size_t errlen)
{
	struct attn_plan *p;
	char why[96];
	int rc = 0;

	for (int i = 0; i < a->nplans; i++)
		if (shape_eq(&a->plans[i].s, s))
			return &a->plans[i];
	if (a->nplans == ATTN_CACHE_MAX) {
		snprintf(err, errlen, "attention plan cache full (%d shapes)", ATTN_CACHE_MAX);
		return NULL;
	}
	p = &a->plans[a->nplans];
	memset(p, 0, sizeof(*p));
	p->s = *s;
	p->split = 1;
	if (a->use_cudnn) {
		static const int variants[] = {2, 0, 1, 3, 6, 4};
		const char *dbg = getenv("WAN_ATTN_DEBUG");
		int ctas = s->b * s->h * ((s->sq + 127) / 128), split = 1;
		struct wan_attn_shape ss = *s;

		/* Few CTAs (small batch): split the keys so the grid fills the GPU ~3 times. The
		 * parts of batch entry b become entries b·split + j, which is one uniform stride
		 * when b == 1 or the keys fill their batch stride. */
		/* short key sets (cross-attention's 512 text tokens) never pay for a split */
		while (s->skv >= 2048 && split < 4 && ctas * split < 3 * a->sms && s->skv % (2 * split) == 0 &&
		       s->skv / (2 * split) >= 32 &&
		       (s->b == 1 || s->kv_bstride == (int64_t)s->skv * s->kv_sstride) &&
		       s->q_sstride == (int64_t)s->h * s->d && !getenv("WAN_ATTN_NOSPLIT"))
			split *= 2;
		if (split > 1) {
			ss.b = s->b * split;
			ss.skv = s->skv / split;
			ss.q_bstride = (int64_t)s->sq * s->q_sstride;
			ss.kv_bstride = (int64_t)ss.skv * s->kv_sstride;
			ss.o_bstride = (int64_t)s->sq * s->h * s->d;
			ss.o_sstride = (int64_t)s->h * s->d;
			/* one slot: all parts share Q through a zero batch stride, if cuDNN takes it */
			if (s->b == 1) {
				ss.q_bstride = 0;
				if (build_plan(a->dnn, &ss, 2 | 8, &p->plan, &p->workspace, ALTS, why, sizeof(why)) == 0) {
					p->on_cudnn = 1;
					p->split = split;
					p->q_shared = 1;
				}
				ss.q_bstride = (int64_t)s->sq * s->q_sstride;
			}
			if (!p->on_cudnn &&
			    build_plan(a->dnn, &ss, 2 | 8, &p->plan, &p->workspace, ALTS, why, sizeof(why)) == 0) {
				p->on_cudnn = 1;
				p->split = split;
			}
			if (dbg)
				fprintf(stderr, "attn b%d h%d d%d sq%d skv%d split %d%s: %s\n", s->b, s->h, s->d,
					s->sq, s->skv, split, p->q_shared ? " (Q shared)" : "",
					p->on_cudnn ? "planned" : why);
			if (p->on_cudnn) {
				size_t n = (size_t)ss.b * s->sq * s->h * s->d;

				if (grow(a, &a->qdup, &a->qdup_bytes, n * 2, err, errlen) ||
				    grow(a, &a->opart, &a->opart_bytes, n * 2, err, errlen) ||
				    grow(a, (void **)&a->stats, &a->stats_bytes,
					 (size_t)ss.b * s->h * s->sq * sizeof(float), err, errlen)) {
					rc = -1;
					goto cleanup;
				}
			}
		}
		for (size_t vi = 0; vi < sizeof(variants) / sizeof(variants[0]) && !p->on_cudnn; vi++) {
			cudnnStatus_t bs = build_plan(a->dnn, s, variants[vi], &p->plan, &p->workspace, ALTS,
						      why, sizeof(why));

			if (bs == CUDNN_STATUS_SUCCESS)
				p->on_cudnn = 1;
			if (dbg) {
				char last[512] = "";

				cudnnGetLastErrorString(last, sizeof(last));
				fprintf(stderr, "attn b%d h%d d%d sq%d skv%d variant %d: %s (%s) %s\n", s->b, s->h,
					s->d, s->sq, s->skv, variants[vi], bs ? cudnnGetErrorString(bs) : "ok",
					bs ? why : "planned", bs ? last : "");
			}
		}
	}
	if (a->fa3_mode >= 0) {
		char fwhy[96];

		if (wan_attn_fa3_supported(s, fwhy, sizeof(fwhy))) {
			int ctas = s->b * s->h * ((s->sq + 127) / 128);

			p->fa3 = 2;
			p->fa3_forced = a->fa3_mode == 1 || !p->on_cudnn;
			p->fa3_split = p->fa3_maxsplit = 1;
			p->fa3_bn = WAN_FA3_BN_DEFAULT;
			/* a grid under ~3 waves also times 2 and 4 key parts (long key sets only) */
			while (p->fa3_maxsplit < 4 && s->skv >= 2048 && ctas * p->fa3_maxsplit < 3 * a->sms &&
			       s->b * p->fa3_maxsplit * 2 <= 65535)
				p->fa3_maxsplit *= 2;
			{
				size_t n = (size_t)s->b * p->fa3_maxsplit * s->sq * s->h * s->d * 2;
				size_t nl = (size_t)s->b * p->fa3_maxsplit * s->h * s->sq * sizeof(float), tl;
				size_t t = wan_attn_fa3_tail_scratch(a->sms, &tl);

				/* split parts or the tail-split parts of the last wave (both 0 at most) */
				if (grow(a, &a->opart, &a->opart_bytes, n > t ? n : t, err, errlen) ||
				    grow(a, (void **)&a->stats, &a->stats_bytes, nl > tl ? nl : tl, err, errlen)) {
					rc = -1;
					goto cleanup;
				}
			}
		} else if (getenv("WAN_ATTN_DEBUG"))
			fprintf(stderr, "attn b%d h%d d%d sq%d skv%d: %s\n", s->b, s->h, s->d, s->sq, s->skv, fwhy);
	}
	if (p->on_cudnn) {
		if ((size_t)p->workspace > a->workspace_bytes &&
		    grow(a, &a->workspace, &a->workspace_bytes, (size_t)p->workspace, err, errlen)) {
			rc = -1;
			goto cleanup;
		}
	}
cleanup:
	if (rc) {
		if (p->plan)
			cudnnBackendDestroyDescriptor(p->plan);
		for (int j = 0; j < p->nalt; j++)
			cudnnBackendDestroyDescriptor(p->alt[j]);
		return NULL;
	}
	a->nplans++;
	return p;
}

int wan_attn_uses_cudnn(struct wan_attn *a, const struct wan_attn_shape *s)
{
	char err[128];
	struct attn_plan *p = plan_get(a, s, err, sizeof(err));

	return !p ? 0 : p->fa3 == 1 || (p->fa3 == 2 && p->fa3_forced) ? 2 : p->on_cudnn;
}

const char *wan_attn_variant(struct wan_attn *a, const struct wan_attn_shape *s, char *buf, size_t len)
{
	char err[128];
	struct attn_plan *p = plan_get(a, s, err, sizeof(err));
	int at = p ? wan_attn_uses_cudnn(a, s) : -1;

	if (at < 0)
		snprintf(buf, len, "not planned (%s)", err);
	else if (at == 2 && p->fa3_split < 0)
		snprintf(buf, len, "fa3 tile %d, last wave in %d key parts", p->fa3_bn, -p->fa3_split);
	else if (at == 2 && p->fa3_split > 1)
		snprintf(buf, len, "fa3 tile %d, keys in %d parts", p->fa3_bn, p->fa3_split);
	else if (at == 2)
		snprintf(buf, len, "fa3 tile %d", p->fa3_bn);
	else if (at == 1 && p->split > 1)
		snprintf(buf, len, "cuDNN flash, keys in %d parts", p->split);
	else
		snprintf(buf, len, "%s", at ? "cuDNN flash" : "fallback kernel");
	return buf;
}

void wan_attn_counts(const struct wan_attn *a, int *plans, int *untimed)
{
	*plans = a ? a->nplans : 0;
	*untimed = 0;
	for (int i = 0; a && i < a->nplans; i++)
		*untimed += a->plans[i].fa3 == 2 || a->plans[i].nalt > 0;
}

void wan_attn_set_fa3(struct wan_attn *a, int mode)
{
	a->fa3_mode = a->use_cudnn ? mode : -1;
}

int wan_attn_split(struct wan_attn *a, const struct wan_attn_shape *s)
{
	char err[128];
	struct attn_plan *p = plan_get(a, s, err, sizeof(err));

	return p && p->on_cudnn && wan_attn_uses_cudnn(a, s) == 1 ? p->split : 0;
}

/* One execution of PLAN with these operands on the handle's stream. */
static cudnnStatus_t exec_plan(struct wan_attn *a, cudnnBackendDescriptor_t plan, int nptr,
			       const int64_t *uids, void **ptrs)
{
	cudnnBackendDescriptor_t vp = NULL;
	cudnnStatus_t s;

	if ((s = cudnn_be_variant_pack(&vp, nptr, uids, ptrs, a->workspace)) == 0)
		s = cudnnBackendExecute(a->dnn, plan, vp);
	if (vp)
		cudnnBackendDestroyDescriptor(vp);
	return s;
}

/* First run of a plan with alternatives (outside stream capture): times each engine config
 * on the real operands (one warm-up, then ATTN_TUNE_REPS runs between events), keeps the
 * fastest as p->plan and frees the rest. Each run writes the same output, so the call's
 * result is unaffected. During capture the tuning waits for a later eager call. */
static int tune_plan(struct wan_attn *a, struct attn_plan *p, cudaStream_t st, int nptr,
		     const int64_t *uids, void **ptrs, char *err, size_t errlen)
{
	enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
	cudnnBackendDescriptor_t cand[ATTN_ALT_MAX + 1];
	int64_t ws[ATTN_ALT_MAX + 1];
	cudaEvent_t e0 = NULL, e1 = NULL;
	int nc = 0, best = 0, rc = 0;
	float best_ms = -1.0f;

	if (cudaStreamIsCapturing(st, &cs) != cudaSuccess || cs != cudaStreamCaptureStatusNone)
		return 0;
	cand[nc] = p->plan;
	ws[nc++] = p->workspace;
	for (int j = 0; j < p->nalt; j++) {
		cand[nc] = p->alt[j];
		ws[nc++] = p->alt_ws[j];
	}
	for (int i = 0; i < nc; i++)
		if ((size_t)ws[i] > a->workspace_bytes &&
		    grow(a, &a->workspace, &a->workspace_bytes, (size_t)ws[i], err, errlen))
			return -1;
	CU_TRY(cudaEventCreate(&e0));
	CU_TRY(cudaEventCreate(&e1));
	for (int i = 0; i < nc; i++) {
		float ms = 0.0f;
		int ok = exec_plan(a, cand[i], nptr, uids, ptrs) == CUDNN_STATUS_SUCCESS &&
			 cudaEventRecord(e0, st) == cudaSuccess;

		for (int r = 0; r < ATTN_TUNE_REPS && ok; r++)
			ok = exec_plan(a, cand[i], nptr, uids, ptrs) == CUDNN_STATUS_SUCCESS;
		if (ok && cudaEventRecord(e1, st) == cudaSuccess && cudaEventSynchronize(e1) == cudaSuccess &&
		    cudaEventElapsedTime(&ms, e0, e1) == cudaSuccess && (best_ms < 0.0f || ms < best_ms)) {
			best_ms = ms;
			best = i;
		}
		if (getenv("WAN_ATTN_DEBUG"))
			fprintf(stderr, "attn b%d h%d sq%d skv%d engine config %d/%d: %s %.3f ms\n", p->s.b,
				p->s.h, p->s.sq, p->s.skv, i, nc, ok ? "ran" : "failed", ms / ATTN_TUNE_REPS);
	}
	cudaGetLastError();
	p->plan = cand[best];
	p->workspace = ws[best];
	for (int i = 0; i < nc; i++)
		if (i != best)
			cudnnBackendDestroyDescriptor(cand[i]);
	p->nalt = 0;
cleanup:
	if (e0)
		cudaEventDestroy(e0);
	if (e1)
		cudaEventDestroy(e1);
	return rc;
}

/* The cuDNN plan of p (split copies and merge included). */
static int run_cudnn(struct wan_attn *a, struct attn_plan *p, cudaStream_t st,
		     const struct wan_attn_shape *s, const void *q, const void *k, const void *v,
		     void *o, char *err, size_t errlen)
{
	cudnnBackendDescriptor_t vp = NULL;
	int64_t uids[6] = {UID_Q, UID_K, UID_V, UID_O, UID_SCALE, UID_STATS};
	void *ptrs[6] = {0};
	float scale = s->scale;
	int rc = 0, nptr;

	nptr = p->split > 1 ? 6 : 5;
	ptrs[0] = (void *)q; ptrs[1] = (void *)k; ptrs[2] = (void *)v; ptrs[3] = o; ptrs[4] = &scale;
	if (p->split > 1) {
		size_t qbytes = (size_t)s->sq * s->q_sstride * 2;

		if (!p->q_shared) {
			for (int i = 0; i < s->b * p->split; i++)
				CU_TRY(cudaMemcpyAsync((char *)a->qdup + i * qbytes,
						       (const char *)q + (size_t)(i / p->split) * s->q_bstride * 2,
						       qbytes, cudaMemcpyDeviceToDevice, st));
			ptrs[0] = a->qdup;
		}
		ptrs[3] = a->opart;
		ptrs[5] = a->stats;
	}
	DNN_TRY(cudnnSetStream(a->dnn, st));
	if (p->nalt && tune_plan(a, p, st, nptr, uids, ptrs, err, errlen))
		goto cleanup_err;
	DNN_TRY(cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp));
	DNN_TRY(cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, nptr, uids));
	DNN_TRY(cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, nptr, ptrs));
	DNN_TRY(cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &a->workspace));
	DNN_TRY(cudnnBackendFinalize(vp));
	DNN_TRY(cudnnBackendExecute(a->dnn, p->plan, vp));
	if (p->split > 1 && wan_attn_combine(st, a->opart, a->stats, o, s->b, p->split, s->h, s->d,
					     s->sq, s->o_bstride, s->o_sstride, err, errlen))
		rc = -1;
cleanup:
	if (vp)
		cudnnBackendDestroyDescriptor(vp);
	return rc;
cleanup_err:
	return -1;
}

/* split > 0: keys in `split` parts; split < 0: the last wave's units in -split parts. */
static int run_fa3(struct wan_attn *a, int split, int bn, cudaStream_t st,
		   const struct wan_attn_shape *s, const void *q, const void *k, const void *v, void *o,
		   char *err, size_t errlen)
{
	if (split < 0)
		return wan_attn_fa3_tail(st, s, -split, bn, q, k, v, a->opart, a->stats, o, err, errlen);
	return wan_attn_fa3_split(st, s, split, bn, q, k, v, a->opart, a->stats, o, err, errlen);
}

/* ATTN_TUNE_REPS runs (after one warm-up) of cuDNN (split 0) or fa3 with `split` key parts
 * (run_fa3) and bn keys per tile; the mean time in ms, or -1 when a run fails. */
static float time_one(struct wan_attn *a, struct attn_plan *p, int split, int bn, cudaStream_t st,
		      const struct wan_attn_shape *s, const void *q, const void *k, const void *v,
		      void *o, cudaEvent_t e0, cudaEvent_t e1)
{
	char why[160];
	float ms = -1.0f;
	int ok = 1;

	for (int r = -1; r < ATTN_TUNE_REPS && ok; r++) {
		if (r == 0)
			ok = cudaEventRecord(e0, st) == cudaSuccess;
		ok = ok && !(split ? run_fa3(a, split, bn, st, s, q, k, v, o, why, sizeof(why))
				   : run_cudnn(a, p, st, s, q, k, v, o, why, sizeof(why)));
	}
	if (!ok || cudaEventRecord(e1, st) != cudaSuccess || cudaEventSynchronize(e1) != cudaSuccess ||
	    cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess) {
		cudaGetLastError();
		if (getenv("WAN_ATTN_DEBUG"))
			fprintf(stderr, "attn b%d h%d sq%d skv%d: %s split %d tile %d failed: %s\n", s->b, s->h,
				s->sq, s->skv, split ? "fa3" : "cuDNN", split, bn, ok ? "timing" : why);
		return -1.0f;
	}
	return ms / ATTN_TUNE_REPS;
}

/* First eager run of an fa3 candidate: times the fa3 kernel (128, 176 and 192 keys per tile,
 * with 1, 2, 4 key parts up to fa3_maxsplit) against the (tuned) cuDNN plan on the real
 * operands and keeps the fastest.
 * Every run writes the same output. During capture the choice waits (the pending choice
 * runs meanwhile: cuDNN, or fa3 whole when forced). */
static int tune_fa3(struct wan_attn *a, struct attn_plan *p, cudaStream_t st,
		    const struct wan_attn_shape *s, const void *q, const void *k, const void *v,
		    void *o, char *err, size_t errlen)
{
	enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
	cudaEvent_t e0 = NULL, e1 = NULL;
	float best = -1.0f, t;
	int rc = 0, pick = 0, pick_bn = WAN_FA3_BN_DEFAULT; /* fa3's split, 0: cuDNN (or fallback) */
	int cand[5], nc = 0;

	if (cudaStreamIsCapturing(st, &cs) != cudaSuccess || cs != cudaStreamCaptureStatusNone)
		return 0;
	CU_TRY(cudaEventCreate(&e0));
	CU_TRY(cudaEventCreate(&e1));
	if (!p->fa3_forced && p->on_cudnn && (t = time_one(a, p, 0, 0, st, s, q, k, v, o, e0, e1)) >= 0.0f)
		best = t;
	if (getenv("WAN_ATTN_DEBUG"))
		fprintf(stderr, "attn b%d h%d sq%d skv%d: cuDNN %.3f ms\n", s->b, s->h, s->sq, s->skv, best);
	/* splits 1, 2, 4 (up to fa3_maxsplit), then the last wave's units in 2 and 4 parts */
	for (int sp = 1; sp <= p->fa3_maxsplit; sp *= 2)
		cand[nc++] = sp;
	if (s->skv >= 2048) {
		cand[nc++] = -2;
		cand[nc++] = -4;
	}
	for (int ci = 0; ci < nc; ci++)
		for (int bn = 128, split = cand[ci]; bn <= 192; bn += bn == 128 ? 48 : 16) {
			t = time_one(a, p, split, bn, st, s, q, k, v, o, e0, e1);
			if (getenv("WAN_ATTN_DEBUG"))
				fprintf(stderr, "attn b%d h%d sq%d skv%d: fa3 split %d tile %d %.3f ms\n", s->b, s->h,
					s->sq, s->skv, split, bn, t);
			/* a split (extra merge launch, scratch traffic) must win by 2% over the best so
			 * far: the tuning runs are short and near-ties went either way in the graph */
			if (t >= 0.0f && (best < 0.0f || t < (split == 1 ? best : 0.98f * best))) {
				best = t;
				pick = split;
				pick_bn = bn;
			}
		}
	p->fa3 = pick ? 1 : 0;
	p->fa3_split = pick ? pick : 1;
	p->fa3_bn = pick_bn;
	(void)err;
	(void)errlen;
	if (getenv("WAN_ATTN_DEBUG"))
		fprintf(stderr, "attn b%d h%d sq%d skv%d -> %s (split %d, tile %d)\n", s->b, s->h,
			s->sq, s->skv, pick ? "fa3" : "cuDNN", pick ? p->fa3_split : 0, pick ? p->fa3_bn : 0);
cleanup:
	if (e0)
		cudaEventDestroy(e0);
	if (e1)
		cudaEventDestroy(e1);
	return rc;
}

int wan_attn_run(struct wan_attn *a, cudaStream_t st, const struct wan_attn_shape *s,
		 const void *q, const void *k, const void *v, void *o, char *err, size_t errlen)
{
	struct attn_plan *p;

	if (check_shape(s, err, errlen))
		return -1;
	p = plan_get(a, s, err, errlen);
	if (!p)
		return -1;
	if (p->fa3 == 2 && tune_fa3(a, p, st, s, q, k, v, o, err, errlen))
		return -1;
	if (p->fa3 == 1 || (p->fa3 == 2 && p->fa3_forced))
		return run_fa3(a, p->fa3_split, p->fa3_bn, st, s, q, k, v, o, err, errlen);
	if (!p->on_cudnn)
		return wan_attn_fallback(st, s, NULL, q, k, v, o, err, errlen);
	return run_cudnn(a, p, st, s, q, k, v, o, err, errlen);
}

int wan_attn_run_ragged(struct wan_attn *a, cudaStream_t st, const struct wan_attn_shape *s,
			const int *kv_len_dev, const void *q, const void *k, const void *v,
			void *o, char *err, size_t errlen)
{
	struct wan_attn_shape chk = *s;

	(void)a;
	chk.skv = 1; /* per-entry lengths come from kv_len_dev */
	if (check_shape(&chk, err, errlen))
		return -1;
	return wan_attn_fallback(st, s, kv_len_dev, q, k, v, o, err, errlen);
}
