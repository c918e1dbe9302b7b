/* dit_stream.c: the streaming denoiser (see the DESIGN note in dit_stream.h).
 *
 * Upstream correspondences: dit_stream_first = CausalStreamInferencePipeline.prepare plus the
 * stream-batch setup; dit_stream_next = inference_stream (batch) or inference_wo_batch, with
 * the position bookkeeping and RoPE refresh of streamv2v/inference.py run_stream_batch. */
#include "dit_stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops_ref.h"
#include "plugins/wan/wan_clock.h"

/* WAN_STREAM_TRACE=1: the wall time of each later call's host phases (see trace_print). */
enum { TR_DRAW, TR_MATH, TR_LAUNCH, TR_WAIT, TR_COUNT };

struct dit_stream {
	struct dit_stream_config c;
	struct dit_engine eng;
	struct dit_kv *kv;
	struct wan_sched sched;
	int64_t list[WAN_MAX_STEPS]; /* the step list (no-batch mode rewrites list[0]) */
	int L;                       /* tokens per latent frame */
	size_t fe;                   /* elements of one latent frame, C*h*w */
	float *hidden;               /* [S][fe]: the stream-batch slots */
	float *x;                    /* [2*fe] work latent (2 frames for the first chunk) */
	float *flow;                 /* [max(S,2)][fe] (the host path's forwards) */
	float *eps;                  /* [max(S,2)][fe]: one call's draws */
	float *tmp;                  /* [fe]: one draw of a 2-frame chunk before its scatter */
	bool split;                  /* the engine's forward_begin/end (not WAN_STREAM_HOST=1) */
	bool pinned;                 /* the buffers above came from the engine's host_alloc */
	bool trace;                  /* WAN_STREAM_TRACE=1 */
	dit_idle_fn idle;            /* dit_stream_set_idle */
	void *idle_ctx;
	double tr[TR_COUNT];         /* this call's phases (ms) */
	int64_t starts[WAN_MAX_STEPS];
	int64_t ts[WAN_MAX_STEPS];
	int next_frame;              /* temporal position of the next chunk */
	int calls;                   /* later chunks processed since the first */
	bool started;
};

/* N zeroed floats of the stream's latent state: pinned through the engine when it offers. */
static float *lat_alloc(struct dit_stream *st, size_t n)
{
	if (st->pinned)
		return st->eng.host_alloc(st->eng.impl, n * sizeof(float));
	return calloc(n, sizeof(float));
}

static void lat_free(struct dit_stream *st, float *p)
{
	if (!p)
		return;
	if (st->pinned)
		st->eng.host_free(st->eng.impl, p);
	else
		free(p);
}

/* The clock of a phase's start: the time when tracing, else 0 (no clock read). */
static double tr_now(const struct dit_stream *st)
{
	return st->trace ? wan_now_ms() : 0;
}

/* Adds the time since *T0 to phase I (when tracing) and restarts the clock. */
static void tr_mark(struct dit_stream *st, int i, double *t0)
{
	double t;

	if (!st->trace)
		return;
	t = wan_now_ms();
	st->tr[i] += t - *t0;
	*t0 = t;
}

struct dit_stream *dit_stream_new(const struct dit_stream_config *c, const struct dit_engine *eng,
				  char *err, size_t errlen)
{
	int64_t list[WAN_MAX_STEPS];
	if (wan_step_list(c->steps, list, err, errlen))
		return NULL;
	if (c->channels < 1 || c->h < 2 || c->w < 2 || c->h % 2 || c->w % 2 || c->h > 2048 ||
	    c->w > 2048 || c->channels > 64) {
		snprintf(err, errlen, "bad latent shape %dx%dx%d", c->channels, c->h, c->w);
		return NULL;
	}
	struct dit_stream *st = calloc(1, sizeof(*st));
	if (!st) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	st->c = *c;
	st->eng = *eng;
	st->L = (c->h / 2) * (c->w / 2);
	st->fe = (size_t)c->channels * c->h * c->w;
	wan_sched_init(&st->sched);
	struct dit_kv_config kc = {
		.tokens_per_frame = st->L,
		.kv_frames = c->kv_frames,
		.sink_frames = c->sink_frames,
		.sink_threshold = c->sink_threshold,
		.total_steps = c->steps,
		.layers = c->layers,
		.max_slots = c->batch ? c->steps : 1,
	};
	st->kv = dit_kv_new(&kc, err, errlen);
	if (!st->kv)
		goto fail;
	int nf = c->steps > 2 ? c->steps : 2;
	const char *host = getenv("WAN_STREAM_HOST"), *trace = getenv("WAN_STREAM_TRACE");
	bool plain = host && !strcmp(host, "1");
	st->split = !plain && eng->forward_begin && eng->forward_end;
	st->pinned = !plain && eng->host_alloc && eng->host_free;
	st->trace = trace && !strcmp(trace, "1");
	st->hidden = lat_alloc(st, (size_t)c->steps * st->fe);
	st->x = lat_alloc(st, 2 * st->fe);
	st->flow = lat_alloc(st, (size_t)nf * st->fe);
	st->eps = lat_alloc(st, (size_t)nf * st->fe);
	st->tmp = lat_alloc(st, st->fe);
	if (!st->hidden || !st->x || !st->flow || !st->eps || !st->tmp) {
		snprintf(err, errlen, "out of memory for the stream state");
		goto fail;
	}
	return st;
fail:
	dit_stream_free(st);
	return NULL;
}

void dit_stream_free(struct dit_stream *st)
{
	if (!st)
		return;
	dit_kv_free(st->kv);
	lat_free(st, st->hidden);
	lat_free(st, st->x);
	lat_free(st, st->flow);
	lat_free(st, st->eps);
	lat_free(st, st->tmp);
	free(st);
}

void dit_stream_set_idle(struct dit_stream *st, dit_idle_fn fn, void *ctx)
{
	st->idle = fn;
	st->idle_ctx = ctx;
}

const struct dit_kv *dit_stream_kv(const struct dit_stream *st)
{
	return st->kv;
}

int dit_stream_next_frame(const struct dit_stream *st)
{
	int f = st->next_frame;
	return f >= DIT_ROPE_REFRESH_FRAME ? st->c.kv_frames - 1 : f;
}

int dit_noise_array_next(void *ctx, float *dst, size_t n, char *err, size_t errlen)
{
	struct dit_noise_array *a = ctx;

	if (n > a->count - a->used) {
		snprintf(err, errlen, "the noise tensor ran out after %zu frames", n ? a->used / n : 0);
		return -1;
	}
	memcpy(dst, a->data + a->used, n * sizeof(float));
	a->used += n;
	return 0;
}

static int draw_frames(struct dit_stream *st, dit_noise_fn noise, void *ctx, float *dst,
		       int frames, char *err, size_t errlen)
{
	size_t hw = (size_t)st->c.h * st->c.w;

	for (int f = 0; f < frames; f++) {
		float *tmp = frames == 1 ? dst : st->tmp;
		if (noise(ctx, tmp, st->fe, err, errlen))
			return -1;
		if (frames > 1)
			for (int ch = 0; ch < st->c.channels; ch++)
				memcpy(dst + ((size_t)ch * frames + f) * hw, tmp + ch * hw,
				       hw * sizeof(float));
	}
	return 0;
}

/* Draws FRAMES latent frames into DST laid out [C, frames, hw] (frame 0 first). */
static int draw(struct dit_stream *st, dit_noise_fn noise, void *ctx, float *dst, int frames,
		char *err, size_t errlen)
{
	double t0 = tr_now(st);
	int rc = draw_frames(st, noise, ctx, dst, frames, err, errlen);

	tr_mark(st, TR_DRAW, &t0);
	return rc;
}

/* One forward of X (NSLOTS slots of FRAMES frames, timesteps T, positions C_START); OUT gets
 * x0 = x - SIGMA[slot]·flow per slot (OUT may be X). Then the next NDRAW draws of DFRAMES
 * frames each go to st->eps, one after the other: on the host path after the forward, with a
 * split engine while the device runs it. The draws and their order are the same either way,
 * and so are the bits of OUT (forward_end's contract). 0 or -1. */
static int step(struct dit_stream *st, int nslots, int frames, const float *x, const int64_t *t,
		const int64_t *c_start, const double *sigma, float *out, dit_noise_fn noise,
		void *noise_ctx, int ndraw, int dframes, char *err, size_t errlen)
{
	size_t per = (size_t)frames * st->fe, dn = (size_t)dframes * st->fe;
	double t0 = tr_now(st);
	char err2[256];
	int rc = 0;

	if (!st->split) {
		if (st->eng.forward(st->eng.impl, st->kv, nslots, frames, x, t, c_start, st->flow,
				    err, errlen))
			return -1;
		tr_mark(st, TR_WAIT, &t0);
		for (int j = 0; j < ndraw; j++)
			if (draw(st, noise, noise_ctx, st->eps + j * dn, dframes, err, errlen))
				return -1;
		t0 = tr_now(st);
		for (int b = 0; b < nslots; b++)
			ops_flow_to_x0(out + b * per, x + b * per, st->flow + b * per, per, sigma[b]);
		tr_mark(st, TR_MATH, &t0);
		return 0;
	}
	if (st->eng.forward_begin(st->eng.impl, st->kv, nslots, frames, x, t, c_start, err, errlen))
		return -1;
	tr_mark(st, TR_LAUNCH, &t0);
	for (int j = 0; j < ndraw && !rc; j++)
		rc = draw(st, noise, noise_ctx, st->eps + j * dn, dframes, err, errlen);
	if (!rc && st->idle) {
		t0 = tr_now(st);
		st->idle(st->idle_ctx);
		tr_mark(st, TR_DRAW, &t0);
	}
	t0 = tr_now(st);
	/* the forward is always finished; a failed draw's message is the one reported */
	if (st->eng.forward_end(st->eng.impl, sigma, out, rc ? err2 : err, rc ? sizeof(err2) : errlen))
		rc = -1;
	tr_mark(st, TR_WAIT, &t0);
	return rc;
}

int dit_stream_first(struct dit_stream *st, const float *latent, double s, dit_noise_fn noise,
		     void *noise_ctx, float *x0, char *err, size_t errlen)
{
	const int S = st->c.steps;
	const size_t n2 = 2 * st->fe;
	if (!wan_noise_scale_valid(s)) {
		snprintf(err, errlen, "noise scale must be 0.1..1, got %g", s);
		return -1;
	}
	wan_step_list(S, st->list, err, errlen);
	dit_kv_reset(st->kv);
	st->eng.reset(st->eng.impl);
	st->started = false;

	if (draw(st, noise, noise_ctx, st->eps, 2, err, errlen))
		return -1;
	ops_add_noise(st->x, latent, st->eps, n2, s);
	int64_t start = 0;
	for (int i = 0; i < S; i++) {
		int64_t t2[2] = { st->list[i], st->list[i] };
		double sigma = wan_sched_sigma(&st->sched, st->list[i]);
		if (step(st, 1, 2, st->x, t2, &start, &sigma, x0, noise, noise_ctx, i < S - 1, 2,
			 err, errlen))
			return -1;
		if (i < S - 1)
			ops_add_noise(st->x, x0, st->eps, n2,
				      wan_sched_sigma(&st->sched, st->list[i + 1]));
	}
	if (st->c.batch) {
		if (dit_kv_expand(st->kv, S, err, errlen) ||
		    st->eng.expand(st->eng.impl, S, err, errlen))
			return -1;
		memset(st->hidden, 0, (size_t)S * st->fe * sizeof(float));
		for (int i = 0; i < S; i++)
			st->starts[i] = 2 * (int64_t)st->L;
	}
	st->next_frame = 2;
	st->calls = 0;
	st->started = true;
	return 0;
}

static int next_batch(struct dit_stream *st, const float *latent, double s, dit_noise_fn noise,
		      void *noise_ctx, float *x0, bool *emitted, int64_t c_start, char *err,
		      size_t errlen)
{
	const int S = st->c.steps;
	const size_t fe = st->fe;
	double sig[WAN_MAX_STEPS], t0;
	if (draw(st, noise, noise_ctx, st->eps, 1, err, errlen))
		return -1;
	t0 = tr_now(st);
	/* shift the slots down; the new chunk enters slot 0 */
	memmove(st->hidden + fe, st->hidden, (size_t)(S - 1) * fe * sizeof(float));
	memmove(st->starts + 1, st->starts, (size_t)(S - 1) * sizeof(int64_t));
	ops_add_noise(st->hidden, latent, st->eps, fe, s);
	tr_mark(st, TR_MATH, &t0);
	st->starts[0] = c_start;
	st->ts[0] = wan_first_step(s);
	for (int i = 1; i < S; i++)
		st->ts[i] = st->list[i];
	for (int i = 0; i < S; i++)
		sig[i] = wan_sched_sigma(&st->sched, st->ts[i]);
	/* x0 of every slot in place; the S-1 re-noising draws while the device runs */
	if (step(st, S, 1, st->hidden, st->ts, st->starts, sig, st->hidden, noise, noise_ctx, S - 1,
		 1, err, errlen))
		return -1;
	t0 = tr_now(st);
	st->calls++;
	*emitted = st->calls >= S;
	if (*emitted)
		memcpy(x0, st->hidden + (size_t)(S - 1) * fe, fe * sizeof(float));
	for (int i = 0; i < S - 1; i++)
		ops_add_noise(st->hidden + i * fe, st->hidden + i * fe, st->eps + i * fe, fe,
			      wan_sched_sigma(&st->sched, st->list[i + 1]));
	tr_mark(st, TR_MATH, &t0);
	return 0;
}

static int next_nobatch(struct dit_stream *st, const float *latent, double s, dit_noise_fn noise,
			void *noise_ctx, float *x0, int64_t c_start, char *err, size_t errlen)
{
	const int S = st->c.steps;
	const size_t fe = st->fe;
	double t0;
	if (draw(st, noise, noise_ctx, st->eps, 1, err, errlen))
		return -1;
	t0 = tr_now(st);
	ops_add_noise(st->x, latent, st->eps, fe, s);
	tr_mark(st, TR_MATH, &t0);
	st->list[0] = wan_first_step(s);
	for (int i = 0; i < S; i++) {
		double sigma = wan_sched_sigma(&st->sched, st->list[i]);
		if (step(st, 1, 1, st->x, &st->list[i], &c_start, &sigma, x0, noise, noise_ctx,
			 i < S - 1, 1, err, errlen))
			return -1;
		if (i < S - 1) {
			t0 = tr_now(st);
			ops_add_noise(st->x, x0, st->eps, fe,
				      wan_sched_sigma(&st->sched, st->list[i + 1]));
			tr_mark(st, TR_MATH, &t0);
		}
	}
	st->calls++;
	return 0;
}

/* WAN_STREAM_TRACE=1: one line per later call on stderr; what is not in a phase (the KV
 * bookkeeping outside the engine, the callers' glue) is "other". */
static void trace_print(const struct dit_stream *st, double total)
{
	const double *t = st->tr;
	double other = total - t[TR_DRAW] - t[TR_MATH] - t[TR_LAUNCH] - t[TR_WAIT];

	if (st->split)
		fprintf(stderr, "[stream call %d: %.3f ms = launch %.3f + draws %.3f (while the device runs) + wait+x0 %.3f + host math %.3f + other %.3f]\n",
			st->calls, total, t[TR_LAUNCH], t[TR_DRAW], t[TR_WAIT], t[TR_MATH], other);
	else
		fprintf(stderr, "[stream call %d: %.3f ms = forward %.3f + draws %.3f + host math %.3f + other %.3f]\n",
			st->calls, total, t[TR_WAIT], t[TR_DRAW], t[TR_MATH], other);
}

int dit_stream_next(struct dit_stream *st, const float *latent, double s, dit_noise_fn noise,
		    void *noise_ctx, float *x0, bool *emitted, char *err, size_t errlen)
{
	double t0 = tr_now(st);
	*emitted = false;
	if (!st->started) {
		snprintf(err, errlen, "the stream has not started (no first chunk)");
		return -1;
	}
	if (!wan_noise_scale_valid(s)) {
		snprintf(err, errlen, "noise scale must be 0.1..1, got %g", s);
		return -1;
	}
	memset(st->tr, 0, sizeof(st->tr));
	/* RoPE refresh (spec §4.8, demo path): from frame 50 restart at kv_frames - 1 */
	int frame = dit_stream_next_frame(st);
	int64_t c_start = (int64_t)frame * st->L;
	int rc;
	if (st->c.batch) {
		rc = next_batch(st, latent, s, noise, noise_ctx, x0, emitted, c_start, err, errlen);
	} else {
		rc = next_nobatch(st, latent, s, noise, noise_ctx, x0, c_start, err, errlen);
		*emitted = rc == 0;
	}
	if (rc == 0)
		st->next_frame = frame + 1;
	else
		st->started = false; /* the caches are in an unknown state: start again */
	if (st->trace && rc == 0)
		trace_print(st, wan_now_ms() - t0);
	return rc;
}

/* ---- prepare (see dit_stream.h) ---- */

int dit_stream_prepare_chunks(const struct dit_stream_config *c)
{
	/* batch: at later call k slot i holds the chunk of frame k + 1 - i (or a warm-up
	 * placeholder at frame 2) and attends max(3, min(kv_frames, k + 2 - i)) frames, so call
	 * S + kv_frames - 3 is the first with every slot's cache full; no-batch: chunk k attends
	 * min(kv_frames, k + 2), full at k = kv_frames - 2. One more call runs at the full cache
	 * (the first write into the full ring). */
	int full = c->batch ? c->steps + c->kv_frames - 3 : c->kv_frames - 2;
	return (full < 1 ? 1 : full) + 1;
}

/* Scratch draws for prepare: uniform in [-1.7, 1.7] (variance ~1) from a fixed xorshift. */
static int prep_noise(void *ctx, float *dst, size_t n, char *err, size_t errlen)
{
	uint64_t *s = ctx;

	(void)err;
	(void)errlen;
	for (size_t i = 0; i < n; i++) {
		*s ^= *s << 13;
		*s ^= *s >> 7;
		*s ^= *s << 17;
		dst[i] = (float)((double)(*s >> 11) / (double)(1ull << 53) * 3.4 - 1.7);
	}
	return 0;
}

/* Back to the state dit_stream_new left: nothing of a run survives. */
static void stream_reset(struct dit_stream *st)
{
	char err[64];

	dit_kv_reset(st->kv);
	st->eng.reset(st->eng.impl);
	wan_step_list(st->c.steps, st->list, err, sizeof(err));
	memset(st->hidden, 0, (size_t)st->c.steps * st->fe * sizeof(float));
	memset(st->starts, 0, sizeof(st->starts));
	memset(st->ts, 0, sizeof(st->ts));
	st->next_frame = 0;
	st->calls = 0;
	st->started = false;
}

int dit_stream_prepare(struct dit_stream *st, char *err, size_t errlen)
{
	const double s = 0.7; /* any valid strength: it sets timesteps, not call shapes */
	float *lat = malloc(2 * st->fe * sizeof(float)), *x0 = malloc(2 * st->fe * sizeof(float));
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	int rc = -1, n = dit_stream_prepare_chunks(&st->c);

	if (!lat || !x0) {
		snprintf(err, errlen, "out of memory for the stream's scratch chunk");
		goto cleanup;
	}
	prep_noise(&seed, lat, 2 * st->fe, err, errlen);
	if (dit_stream_first(st, lat, s, prep_noise, &seed, x0, err, errlen))
		goto cleanup;
	for (int k = 0; k < n; k++) {
		bool emitted;

		if (dit_stream_next(st, lat, s, prep_noise, &seed, x0, &emitted, err, errlen))
			goto cleanup;
	}
	rc = 0;
cleanup:
	stream_reset(st);
	free(lat);
	free(x0);
	return rc;
}
