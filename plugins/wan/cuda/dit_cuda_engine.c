/* dit_cuda_engine.c: the CUDA DiT as a dit_engine (dit_stream.h), the `--device cuda` of
 * heru-wan dit-forward and stream. Linked into heru-wan only (it needs libwan's model, KV
 * bookkeeping and reference ops as well as libwancuda).
 *
 * Per call the engine asks dit_kv where each slot writes. Without a pending adaptive-sink
 * decision every layer's bookkeeping is the same (dit_kv_advance_layers), so the whole call
 * is one dit_cuda_forward, graph-captured. When the adaptive sink needs its statistic
 * (dit_kv_sink_check_needed), the decision moves to the device: the engine copies dit_kv's
 * state (evict lists, end indices, step counters) into the rings of dit_cuda_forward_sink,
 * the whole call runs as one graph (per layer: statistics, the cosine test and dit_kv's ring
 * update in a kernel, the cache write at the row it chose), and once the call is done the
 * host applies the device's picks to dit_kv with dit_kv_advance, layer by layer and slot by
 * slot as the C reference does, and checks that both chose the same rows. So dit_kv stays
 * the one authority, and the device never drifts from it: its copy is refreshed every call.
 * The statistic is the C reference's (means of the cached bf16 K/V, cosines in double).
 * WAN_SINK_HOST=1 (read at open) keeps the older host-decided path instead: the forward runs
 * eagerly and stops once per layer for the host to decide (tests compare the two). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit_kv.h"
#include "dit_model.h"
#include "dit_stream.h"
#include "ops_ref.h"
#include "plugins/wan/cuda/dit_cuda.h"
#include "plugins/wan/wan_clock.h"

struct cuda_eng {
	struct dit_cuda *m;     /* new */
	struct wan_sink_ring *rings; /* new: [layers][max_slots], the sink path's upload */
	struct wan_sink_rec *rec;    /* new: [layers][max_slots] */
	int64_t *list;               /* new: one evict list [WAN_SINK_LIST_MAX] */
	int layers;
	int host_sink;               /* WAN_SINK_HOST=1: decide on the host (eager, hooked) */
	int L, c, h, w, max_slots, nctx;
	float *ctx;             /* new: host copy of the prompts [nctx, text_len, text_dim] */
	int ctx_pending;
	int text_len, text_dim;
	/* the split forward (forward_begin .. forward_end) */
	int pending;                 /* a begun call waits for its end */
	int pend_replay;             /* ... and for the host replay of its sink decisions */
	struct dit_cuda_call pend;   /* its shape (the replay's rows) */
	struct dit_kv *pend_kv;      /* borrowed: the stream's bookkeeping */
	int64_t pend_start[DIT_CUDA_MAX_SLOTS];
	int trace;                   /* WAN_STREAM_TRACE=1: each end's phases on stderr */
	double tr_pack, tr_launch;   /* ms of the begun call's host work */
};

struct upload_ctx {
	struct dit_cuda *m;
	char *err;
	size_t errlen;
};

static int upload_one(void *vctx, const char *name, const float *data, size_t count)
{
	struct upload_ctx *u = vctx;

	return dit_cuda_set_tensor(u->m, name, data, count, u->err, u->errlen);
}

/* The host-decided adaptive sink (WAN_SINK_HOST=1): the callback of
 * dit_cuda_forward_hooked, with the statistic of the C reference (ops_cosine). */
struct hook_ctx {
	struct dit_kv *kv;
	const int64_t *c_start;
	int n;
};

static int kv_hook(void *vctx, int layer, int slot, const float *means, int nsink, int d,
		   int *write_row, int *attn_len, char *err, size_t errlen)
{
	struct hook_ctx *h = vctx;
	double a[64];
	int pick = -1;
	struct dit_kv_step step;

	if (nsink > 64)
		nsink = 64;
	for (int j = 0; j < nsink; j++) {
		double ck = ops_cosine(means + (size_t)j * d, means + (size_t)nsink * d, d);
		double cv = ops_cosine(means + (size_t)(nsink + 1 + j) * d,
				       means + (size_t)(2 * nsink + 1) * d, d);

		a[j] = (ck + cv) / 2.0;
	}
	if (dit_kv_sink_check_needed(h->kv, h->n))
		pick = dit_kv_sink_pick(h->kv, a);
	if (dit_kv_advance(h->kv, layer, slot, h->c_start[slot], h->n, pick, &step, err, errlen))
		return -1;
	*write_row = step.write_row;
	*attn_len = step.attn_len;
	return 0;
}

#if DIT_KV_SINK_PENDING_MAX != WAN_SINK_PENDING_MAX
#error "dit_kv and the device sink rings must cap pending refreshes alike"
#endif

/* dit_kv's state of every layer and call slot into the rings; the rows each slot attends
 * into C (the same in every layer: the sink decision never changes them). 0 or -1. */
static int sink_pack(struct cuda_eng *e, struct dit_kv *kv, struct dit_cuda_call *c,
		     const int64_t *c_start, int n, struct dit_cuda_sink *s, char *err, size_t errlen)
{
	const struct dit_kv_config *kc = dit_kv_config(kv);
	int B = c->slots;

	*s = (struct dit_cuda_sink){
		.nsink = kc->sink_frames, .rings = e->rings, .rec = e->rec,
		.params = {.threshold = kc->sink_threshold, .total_steps = kc->total_steps,
			   .kv_slots = dit_kv_slots(kv), .pending_max = DIT_KV_SINK_PENDING_MAX,
			   .list_cap = DIT_KV_SINK_PENDING_MAX + kc->kv_frames + 1},
	};
	if (kc->sink_frames > 64 || kc->kv_frames > 64) {
		snprintf(err, errlen, "CUDA DiT: the adaptive sink on the device takes at most 64 cache frames");
		return -1;
	}
	for (int b = 0; b < B; b++) {
		c->kv_len[b] = dit_kv_attn_len(kv, 0, b, c_start[b], n);
		s->params.c_start[b] = (int)c_start[b];
		if (c->kv_len[b] < 0 || c_start[b] > (1 << 30)) {
			snprintf(err, errlen, "kv cache: cannot write %d tokens at %lld (slot %d)", n,
				 (long long)c_start[b], b);
			return -1;
		}
	}
	for (int l = 0; l < e->layers; l++)
		for (int b = 0; b < B; b++) {
			struct wan_sink_ring *r = &e->rings[(size_t)l * B + b];
			int len = dit_kv_evict_list(kv, l, b, e->list, WAN_SINK_LIST_MAX);

			if (len > WAN_SINK_LIST_MAX) {
				snprintf(err, errlen, "kv cache: evict list of %d entries (layer %d slot %d)", len, l, b);
				return -1;
			}
			r->n = len;
			r->global_end = (int)dit_kv_global_end(kv, l, b);
			r->local_end = (int)dit_kv_local_end(kv, l, b);
			r->current_step = dit_kv_current_step(kv, l);
			for (int i = 0; i < len; i++)
				r->list[i] = (int)e->list[i];
		}
	return 0;
}

/* The device's decisions applied to dit_kv, in the C reference's order; any row that differs
 * from what dit_kv answers is a bug, reported as such. */
static int sink_replay(struct cuda_eng *e, struct dit_kv *kv, const struct dit_cuda_call *c,
		       const int64_t *c_start, int n, char *err, size_t errlen)
{
	int B = c->slots;

	for (int l = 0; l < e->layers; l++)
		for (int b = 0; b < B; b++) {
			const struct wan_sink_rec *r = &e->rec[(size_t)l * B + b];
			struct dit_kv_step step;

			if (dit_kv_advance(kv, l, b, c_start[b], n, r->pick, &step, err, errlen))
				return -1;
			if (r->status || r->write_row != step.write_row || r->attn_len != step.attn_len ||
			    step.attn_len != c->kv_len[b]) {
				snprintf(err, errlen, "CUDA DiT: the device's kv bookkeeping disagrees with dit_kv at layer %d slot %d (rows %d/%d vs %d/%d, status %d)",
					 l, b, r->write_row, r->attn_len, step.write_row, step.attn_len, r->status);
				return -1;
			}
		}
	return 0;
}

/* Queues a forward. FLOW non-NULL: the whole call (flow to the host, synchronous, the sink
 * decisions replayed). FLOW NULL: the results stay on the device and a device-sink call's
 * replay waits for eng_forward_end (e->pend_replay). */
static int eng_launch(struct cuda_eng *e, struct dit_kv *kv, int nslots, int frames, const float *x,
		      const int64_t *t, const int64_t *c_start, float *flow, char *err, size_t errlen)
{
	struct dit_cuda_call c;
	int n = frames * e->L;
	double t0 = e->trace ? wan_now_ms() : 0;

	e->pend_replay = 0;
	e->tr_pack = 0;
	if (nslots < 1 || nslots > e->max_slots || nslots > dit_kv_slots(kv) || frames < 1 ||
	    frames > DIT_CUDA_MAX_FRAMES) {
		snprintf(err, errlen, "CUDA DiT: %d slots of %d frames do not fit the engine (%d slots, %d frames)",
			 nslots, frames, e->max_slots, DIT_CUDA_MAX_FRAMES);
		return -1;
	}
	if (e->ctx_pending) {
		if (dit_cuda_set_contexts(e->m, e->ctx, e->nctx, err, errlen))
			return -1;
		e->ctx_pending = 0;
	}
	memset(&c, 0, sizeof(c));
	c.slots = nslots;
	c.frames = frames;
	for (int b = 0; b < nslots; b++) {
		if (c_start[b] < 0 || c_start[b] % e->L) {
			snprintf(err, errlen, "CUDA DiT: slot %d start %lld is not a frame position", b,
				 (long long)c_start[b]);
			return -1;
		}
		c.start_frame[b] = (int)(c_start[b] / e->L);
		for (int f = 0; f < frames; f++)
			c.t[b][f] = (int)t[b * frames + f];
	}
	if (dit_kv_sink_check_needed(kv, n)) {
		struct dit_cuda_sink s;

		if (e->host_sink) {
			struct hook_ctx h = {.kv = kv, .c_start = c_start, .n = n};

			return dit_cuda_forward_hooked(e->m, &c, dit_kv_config(kv)->sink_frames, kv_hook, &h,
						       x, flow, err, errlen);
		}
		if (dit_kv_config(kv)->layers != e->layers) {
			snprintf(err, errlen, "CUDA DiT: kv bookkeeping for %d layers, the model has %d",
				 dit_kv_config(kv)->layers, e->layers);
			return -1;
		}
		if (sink_pack(e, kv, &c, c_start, n, &s, err, errlen))
			return -1;
		e->tr_pack = e->trace ? wan_now_ms() - t0 : 0;
		if (!flow)
			s.rec = NULL; /* read back at the end */
		if (dit_cuda_forward_sink(e->m, &c, &s, x, flow, err, errlen))
			return -1;
		if (!flow) {
			e->pend_replay = 1;
			e->pend = c;
			e->pend_kv = kv;
			memcpy(e->pend_start, c_start, (size_t)nslots * sizeof(*c_start));
			return 0;
		}
		return sink_replay(e, kv, &c, c_start, n, err, errlen);
	}
	for (int b = 0; b < nslots; b++) {
		struct dit_kv_step *steps = calloc((size_t)dit_kv_config(kv)->layers, sizeof(*steps));
		int rc;

		if (!steps) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		rc = dit_kv_advance_layers(kv, b, c_start[b], n, steps, err, errlen);
		c.write_row[b] = steps[0].write_row;
		c.kv_len[b] = steps[0].attn_len;
		free(steps);
		if (rc)
			return -1;
	}
	e->tr_pack = e->trace ? wan_now_ms() - t0 : 0;
	return dit_cuda_forward(e->m, &c, x, NULL, flow, err, errlen);
}

static int eng_forward(void *impl, struct dit_kv *kv, int nslots, int frames, const float *x,
		       const int64_t *t, const int64_t *c_start, float *flow, char *err,
		       size_t errlen)
{
	struct cuda_eng *e = impl;
	double t0 = e->trace ? wan_now_ms() : 0;
	int rc = eng_launch(e, kv, nslots, frames, x, t, c_start, flow, err, errlen);

	if (e->trace && !rc)
		fprintf(stderr, "[engine %d x %d (host path): kv pack %.3f + forward %.3f ms (pageable H2D, graph, pageable D2H, sink replay)]\n",
			nslots, frames, e->tr_pack, wan_now_ms() - t0 - e->tr_pack);
	return rc;
}

/* forward_begin (dit_stream.h): the call queued, its results left on the device. */
static int eng_forward_begin(void *impl, struct dit_kv *kv, int nslots, int frames, const float *x,
			     const int64_t *t, const int64_t *c_start, char *err, size_t errlen)
{
	struct cuda_eng *e = impl;
	double t0 = e->trace ? wan_now_ms() : 0;

	if (e->pending) {
		snprintf(err, errlen, "CUDA DiT: a forward began before the last one ended");
		return -1;
	}
	if (eng_launch(e, kv, nslots, frames, x, t, c_start, NULL, err, errlen))
		return -1;
	e->pending = 1;
	e->pend.slots = nslots;
	e->pend.frames = frames;
	e->tr_launch = e->trace ? wan_now_ms() - t0 : 0;
	return 0;
}

/* forward_end: x0 on the device, copied out, the wait, then the sink decisions replayed. */
static int eng_forward_end(void *impl, const double *sigma, float *out, char *err, size_t errlen)
{
	struct cuda_eng *e = impl;
	double t0 = e->trace ? wan_now_ms() : 0, t1, t2;
	int rc = 0;

	if (!e->pending) {
		snprintf(err, errlen, "CUDA DiT: no forward to end");
		return -1;
	}
	e->pending = 0;
	if (dit_cuda_x0_to_host(e->m, e->pend.slots, e->pend.frames, sigma, out, err, errlen) ||
	    (e->pend_replay && dit_cuda_sink_rec_to_host(e->m, e->pend.slots, e->rec, err, errlen)) ||
	    dit_cuda_sync(e->m, err, errlen))
		rc = -1;
	t1 = e->trace ? wan_now_ms() : 0;
	if (!rc && e->pend_replay)
		rc = sink_replay(e, e->pend_kv, &e->pend, e->pend_start, e->pend.frames * e->L, err, errlen);
	e->pend_replay = 0;
	if (e->trace) {
		t2 = wan_now_ms();
		fprintf(stderr, "[engine %d x %d: kv pack %.3f + launch %.3f (H2D, upload, graph) | wait+x0+D2H %.3f + sink replay %.3f ms]\n",
			e->pend.slots, e->pend.frames, e->tr_pack, e->tr_launch - e->tr_pack, t1 - t0, t2 - t1);
	}
	return rc;
}

static void *eng_host_alloc(void *impl, size_t bytes)
{
	(void)impl;
	return dit_cuda_host_alloc(bytes);
}

static void eng_host_free(void *impl, void *p)
{
	(void)impl;
	dit_cuda_host_free(p);
}

static int eng_expand(void *impl, int slots, char *err, size_t errlen)
{
	struct cuda_eng *e = impl;

	for (int s = 1; s < slots; s++)
		if (dit_cuda_copy_slot(e->m, s, 0, dit_cuda_kv_rows(e->m), err, errlen))
			return -1;
	return dit_cuda_sync(e->m, err, errlen);
}

static void eng_reset(void *impl)
{
	struct cuda_eng *e = impl;
	char err[256];

	dit_cuda_clear_caches(e->m, err, sizeof(err));
	e->ctx_pending = 1;
}

static int eng_set_context(void *impl, const float *ctx, char *err, size_t errlen)
{
	struct cuda_eng *e = impl;

	memcpy(e->ctx, ctx, sizeof(float) * (size_t)e->nctx * e->text_len * e->text_dim);
	e->ctx_pending = 1;
	return 0;
}

static void eng_destroy(void *impl)
{
	struct cuda_eng *e = impl;

	if (!e)
		return;
	dit_cuda_free(e->m);
	free(e->ctx);
	free(e->rings);
	free(e->rec);
	free(e->list);
	free(e);
}

/* The engine for config CF with MODEL's weights, or random ones from SEED when MODEL is NULL. */
static int engine_open(const struct wan_dit_config *cf, const struct wan_dit_model *model,
		       uint64_t seed, const struct dit_engine_params *p, struct dit_engine *out,
		       char *err, size_t errlen)
{
	struct dit_cuda_dims dims = {
		.dim = cf->dim, .ffn_dim = cf->ffn_dim, .num_heads = cf->num_heads,
		.num_layers = cf->num_layers, .text_len = cf->text_len, .text_dim = cf->text_dim,
		.freq_dim = cf->freq_dim, .eps = cf->eps,
	};
	struct dit_cuda_plan plan;
	struct cuda_eng *e;
	struct upload_ctx u;
	int L = (p->h / 2) * (p->w / 2), maxf;

	if (cf->in_dim != 16 || cf->out_dim != 16) {
		snprintf(err, errlen, "the CUDA DiT needs in_dim = out_dim = 16 (got %d, %d)", cf->in_dim, cf->out_dim);
		return -1;
	}
	if (L < 1 || p->kv_rows % L || p->max_slots < 1 || p->max_slots > DIT_CUDA_MAX_SLOTS ||
	    (p->nctx != 1 && p->nctx != p->max_slots)) {
		snprintf(err, errlen, "the CUDA DiT cannot be planned for %d slots, %d cache rows, latent %dx%d, %d prompts",
			 p->max_slots, p->kv_rows, p->h, p->w, p->nctx);
		return -1;
	}
	/* the largest call: the first chunk (2 frames) or every slot of a stream call, or a
	 * dit-forward over the whole cache (kv_rows / L frames per slot) */
	maxf = p->kv_rows / L;
	if (maxf > DIT_CUDA_MAX_FRAMES)
		maxf = DIT_CUDA_MAX_FRAMES;
	plan = (struct dit_cuda_plan){.lat_h = p->h, .lat_w = p->w, .slots = p->max_slots,
				      .kv_frames = p->kv_rows / L, .contexts = p->nctx,
				      .max_frames = p->max_slots * (maxf > 2 ? maxf : 2)};
	e = calloc(1, sizeof(*e));
	if (!e) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	e->L = L;
	e->h = p->h;
	e->w = p->w;
	e->max_slots = p->max_slots;
	e->nctx = p->nctx;
	e->text_len = cf->text_len;
	e->text_dim = cf->text_dim;
	e->layers = cf->num_layers;
	e->host_sink = getenv("WAN_SINK_HOST") && !strcmp(getenv("WAN_SINK_HOST"), "1");
	e->ctx = calloc((size_t)p->nctx * cf->text_len * cf->text_dim, sizeof(float));
	e->rings = calloc((size_t)cf->num_layers * p->max_slots, sizeof(*e->rings));
	e->rec = calloc((size_t)cf->num_layers * p->max_slots, sizeof(*e->rec));
	e->list = calloc(WAN_SINK_LIST_MAX, sizeof(*e->list));
	e->m = e->ctx && e->rings && e->rec && e->list ? dit_cuda_new(&dims, &plan, err, errlen) : NULL;
	if (!e->m) {
		if (!e->ctx || !e->rings || !e->rec || !e->list)
			snprintf(err, errlen, "out of memory");
		eng_destroy(e);
		return -1;
	}
	u = (struct upload_ctx){.m = e->m, .err = err, .errlen = errlen};
	if (model ? wan_dit_model_foreach(model, upload_one, &u)
		  : dit_cuda_random_weights(e->m, seed, err, errlen)) {
		eng_destroy(e);
		return -1;
	}
	e->ctx_pending = 1;
	e->trace = getenv("WAN_STREAM_TRACE") && !strcmp(getenv("WAN_STREAM_TRACE"), "1");
	*out = (struct dit_engine){.impl = e, .forward = eng_forward, .expand = eng_expand,
				   .reset = eng_reset, .set_context = eng_set_context,
				   .destroy = eng_destroy, .forward_begin = eng_forward_begin,
				   .forward_end = eng_forward_end, .host_alloc = eng_host_alloc,
				   .host_free = eng_host_free};
	return 0;
}

int dit_cuda_engine_open(const struct wan_dit_model *model, const struct dit_engine_params *p,
			 struct dit_engine *out, char *err, size_t errlen)
{
	return engine_open(&model->cfg, model, 0, p, out, err, errlen);
}

int dit_cuda_engine_open_random(const struct wan_dit_config *cfg, const struct dit_engine_params *p,
				uint64_t seed, struct dit_engine *out, char *err, size_t errlen)
{
	return engine_open(cfg, NULL, seed, p, out, err, errlen);
}

struct dit_cuda *dit_cuda_engine_dit(const struct dit_engine *eng)
{
	return ((const struct cuda_eng *)eng->impl)->m;
}
