/* gpu_dit_stream.c: the CUDA DiT engine (heru-wan --device cuda) against the PyTorch goldens
 * of tests/reference/wan_dit_ref.py, through the real subcommands: dit-forward (2 slots x 3
 * frames, one prompt per slot) and stream with S = 1 and 2, batch and no-batch, with and
 * without the adaptive sink, over 52 chunks (ring wrap, sink refresh, RoPE refresh).
 * Pass: x0 / flow relative L2 <= 1e-2 (bf16 storage, fp32 accumulation; spec target).
 * Then the adaptive sink decided on the device: the same streams driven through the C
 * reference engine and the CUDA engine side by side must refresh sinks equally often and end
 * with the same evict lists in every layer and slot (also against the CUDA engine deciding
 * on the host, which re-reads every statistic), every sink call after the first must have
 * used the kept sink means, and the CUDA sink calls must have been replayed from graphs (or,
 * with graphs off, run eagerly through the same kernels). First, without a GPU, the device's
 * ring update (the same function, built for the host) is checked against dit_kv over random
 * streams and random sink picks, the pending-refresh cap included. Then the sink kernels one
 * by one (sink_kernels.h) on DiT widths: the write kernel bitwise equal to kernels.cu's q/k
 * RMSNorm+RoPE+cache write, the fused pass's chunk sums bitwise equal to those of the rows
 * that write stores, the means against float64 sums, the decision against ops_cosine, the
 * first argmin and the host ring update, the kept means, and a refused write leaving its
 * slot's cache alone. The device streams run fused and once unfused (WAN_SINK_FUSED=0).
 * The fixture folder is tests/fixtures/wan/dit under the source tree, or argv[1].
 * Exits 77 without a GPU. */
#include "config.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cuda_runtime.h>

#include "cli.h"
#include "dit_kv.h"
#include "dit_model.h"
#include "dit_stream.h"
#include "dit_test_util.h"
#include "plugins/wan/cuda/dit_cuda.h"
#include "plugins/wan/cuda/kernels.h"
#include "plugins/wan/cuda/sink_kernels.h"
#include "ops_ref.h"
#include "wan_config.h"
#include "wan_dit_weights.h"
#include "wt_file.h"

#define PARITY 1e-2

static char fixdir[1024], tmpdir[64], weights[128], cfgpath[1100];
static int failures;

static const char *fix_path(const char *name)
{
	static struct test_path_ring ring;
	return test_path(&ring, fixdir, name);
}

static float *load(const char *path, const char *name, int64_t *n)
{
	char err[256];
	struct wt_file *f = wt_open(path, err, sizeof(err));
	const struct wt_tensor *t;
	float *v = NULL;

	if (!f) {
		fprintf(stderr, "%s\n", err);
		return NULL;
	}
	t = wt_find(f, name);
	if (t) {
		*n = wt_numel(t);
		v = malloc(sizeof(float) * (*n ? *n : 1));
		if (v && wt_tensor_to_f32(t, v, err, sizeof(err))) {
			free(v);
			v = NULL;
		}
	}
	wt_close(f);
	return v;
}

static void compare(const char *what, const char *got_path, const char *want_path, const char *name,
		    int frame_elems)
{
	int64_t n = 0, ng = 0;
	float *got = load(got_path, name, &n), *want = load(want_path, name, &ng);
	double e, worst = 0;

	if (!got || !want || n != ng) {
		fprintf(stderr, "FAIL %s: cannot compare %s with %s\n", what, got_path, want_path);
		failures++;
		goto out;
	}
	e = rel_l2(got, want, n);
	for (int64_t f = 0; f + frame_elems <= n; f += frame_elems) {
		double ef = rel_l2(got + f, want + f, frame_elems);

		worst = ef > worst ? ef : worst;
	}
	if (!(e <= PARITY)) {
		fprintf(stderr, "FAIL %-36s rel L2 %.3e (worst frame %.3e), limit %.0e\n", what, e, worst, PARITY);
		failures++;
	} else {
		printf("ok   %-36s rel L2 %.3e (worst frame %.3e)\n", what, e, worst);
	}
out:
	free(got);
	free(want);
}

/* One stream of the fixture STEPS through engine ENG: chunk 0, then every later chunk; every
 * emitted x0 goes to OUT (frames of 16·h·w). Returns the stream (new) or NULL. */
static struct dit_stream *run_stream(const struct dit_engine *eng, const struct wan_dit_config *cfg,
				     int steps, bool batch, const float *lat, const float *scale, int chunks,
				     const float *noise, size_t nnoise, int h, int w, float *out, int *nout)
{
	char err[512];
	size_t fe = (size_t)16 * h * w, hw = (size_t)h * w;
	struct dit_stream_config sc = { .steps = steps, .batch = batch, .kv_frames = 6, .sink_frames = 3,
					.sink_threshold = 0.2, .channels = 16, .h = h, .w = w,
					.layers = cfg->num_layers };
	struct dit_stream *st = dit_stream_new(&sc, eng, err, sizeof(err));
	struct dit_noise_array mn = { noise, nnoise, 0 };
	float *chunk = malloc(2 * fe * sizeof(float)), *res = malloc(2 * fe * sizeof(float));
	bool emitted;

	*nout = 0;
	if (!st || !chunk || !res)
		goto fail;
	for (int ch = 0; ch < 16; ch++)
		for (int f = 0; f < 2; f++)
			memcpy(chunk + ((size_t)ch * 2 + f) * hw, lat + f * fe + ch * hw, hw * sizeof(float));
	if (dit_stream_first(st, chunk, scale[0], dit_noise_array_next, &mn, res, err, sizeof(err)))
		goto fail;
	for (int k = 1; k < chunks; k++) {
		if (dit_stream_next(st, lat + (size_t)(k + 1) * fe, scale[k], dit_noise_array_next, &mn,
				    res, &emitted, err, sizeof(err)))
			goto fail;
		if (emitted)
			memcpy(out + (size_t)(*nout)++ * fe, res, fe * sizeof(float));
	}
	free(chunk);
	free(res);
	return st;
fail:
	fprintf(stderr, "FAIL stream: %s\n", st ? err : "cannot start");
	dit_stream_free(st);
	free(chunk);
	free(res);
	return NULL;
}

/* Evict lists of every layer and slot that differ between two streams; the first one goes
 * to FIRST ("layer L slot S"). */
static int lists_differ(const struct dit_stream *a, const struct dit_stream *b, int layers, char *first,
			size_t flen)
{
	static int64_t la[400], lb[400];
	int bad = 0;

	for (int l = 0; l < layers; l++)
		for (int s = 0; s < dit_kv_slots(dit_stream_kv(a)); s++) {
			int na = dit_kv_evict_list(dit_stream_kv(a), l, s, la, 400);
			int nb = dit_kv_evict_list(dit_stream_kv(b), l, s, lb, 400);

			if (na != nb || memcmp(la, lb, (size_t)(na < 400 ? na : 400) * sizeof(int64_t))) {
				if (!bad++)
					snprintf(first, flen, "layer %d slot %d: %d vs %d entries", l, s, na, nb);
			}
		}
	return bad;
}

static double worst_frame(const float *a, const float *b, int frames, size_t fe)
{
	double worst = 0;

	for (int k = 0; k < frames; k++) {
		double e = rel_l2(a + (size_t)k * fe, b + (size_t)k * fe, (int64_t)fe);

		worst = e > worst ? e : worst;
	}
	return worst;
}

/* The same stream with the adaptive sink on through the C reference, the CUDA engine (sink
 * decided on the device) and the CUDA engine with WAN_SINK_HOST=1 (decided on the host). */
static void sink_on_device(const struct wan_dit_config *cfg, int steps, bool batch, bool graphs)
{
	char err[512], in[64], what[96], first[96] = "", first_h[96] = "";
	struct wan_dit_model *m = wan_dit_model_open(weights, cfg, err, sizeof(err));
	struct dit_engine ce = { 0 }, ge = { 0 }, he = { 0 };
	struct dit_stream *cs = NULL, *gs = NULL, *hs = NULL;
	struct dit_cuda_counters cnt;
	int64_t n = 0, ns = 0, nn = 0, nl = 0;
	float *lat = NULL, *ctx = NULL, *scale = NULL, *noise = NULL, *oc = NULL, *og = NULL, *oh = NULL;
	int h = 4, w = 6, chunks, noc = 0, nog = 0, noh = 0, bad, bad_h;
	long rc_refresh, rg_refresh, rh_refresh;
	size_t fe = (size_t)16 * h * w;
	double worst, worst_h;

	snprintf(what, sizeof(what), "device sink S=%d %s%s", steps, batch ? "batch" : "nobatch",
		 graphs ? "" : " (graphs off)");
	snprintf(in, sizeof(in), "stream_in_s%d.safetensors", steps);
	if (!m || !(lat = load(fix_path(in), "latents", &nl)) || !(ctx = load(fix_path(in), "context", &n)) ||
	    !(scale = load(fix_path(in), "noise_scale", &ns)) || !(noise = load(fix_path(in), "noise", &nn))) {
		fprintf(stderr, "FAIL %s: cannot load the model or %s%s%s\n", what, in, m ? "" : ": ", m ? "" : err);
		failures++;
		goto out;
	}
	chunks = (int)ns;
	if (nl != (int64_t)(chunks + 1) * 16 * h * w || nn != (int64_t)steps * (chunks + 1) * 16 * h * w) {
		fprintf(stderr, "FAIL %s: %s is not a %dx%d stream of %d chunks\n", what, in, h, w, chunks);
		failures++;
		goto out;
	}
	{
		struct dit_engine_params ep = { .max_slots = batch ? steps : 1, .kv_rows = 6 * (h / 2) * (w / 2),
						.h = h, .w = w, .nctx = 1 };
		int rc = dit_cpu_engine_open(m, &ep, &ce, err, sizeof(err)) ||
			 dit_cuda_engine_open(m, &ep, &ge, err, sizeof(err));

		setenv("WAN_SINK_HOST", "1", 1);
		rc = rc || dit_cuda_engine_open(m, &ep, &he, err, sizeof(err));
		unsetenv("WAN_SINK_HOST");
		if (rc || ce.set_context(ce.impl, ctx, err, sizeof(err)) ||
		    ge.set_context(ge.impl, ctx, err, sizeof(err)) || he.set_context(he.impl, ctx, err, sizeof(err))) {
			fprintf(stderr, "FAIL %s: %s\n", what, err);
			failures++;
			goto out;
		}
	}
	dit_cuda_set_options(dit_cuda_engine_dit(&ge), graphs, 1);
	oc = calloc((size_t)(chunks + 2) * fe, sizeof(float));
	og = calloc((size_t)(chunks + 2) * fe, sizeof(float));
	oh = calloc((size_t)(chunks + 2) * fe, sizeof(float));
	if (!oc || !og || !oh)
		goto out;
	cs = run_stream(&ce, cfg, steps, batch, lat, scale, chunks, noise, (size_t)nn, h, w, oc, &noc);
	gs = run_stream(&ge, cfg, steps, batch, lat, scale, chunks, noise, (size_t)nn, h, w, og, &nog);
	hs = run_stream(&he, cfg, steps, batch, lat, scale, chunks, noise, (size_t)nn, h, w, oh, &noh);
	if (!cs || !gs || !hs || noc != nog || noc != noh || noc < 1) {
		fprintf(stderr, "FAIL %s: the streams did not run alike (%d, %d, %d chunks)\n", what, noc, nog, noh);
		failures++;
		goto out;
	}
	worst = worst_frame(og, oc, noc, fe);
	worst_h = worst_frame(og, oh, noc, fe);
	bad = lists_differ(cs, gs, cfg->num_layers, first, sizeof(first));
	bad_h = lists_differ(hs, gs, cfg->num_layers, first_h, sizeof(first_h));
	rc_refresh = dit_kv_sink_refreshes(dit_stream_kv(cs));
	rg_refresh = dit_kv_sink_refreshes(dit_stream_kv(gs));
	rh_refresh = dit_kv_sink_refreshes(dit_stream_kv(hs));
	dit_cuda_get_counters(dit_cuda_engine_dit(&ge), &cnt);
	printf("     %-36s refreshes: device %ld, host-decided %ld, C reference %ld; sink calls %ld, replayed %ld, kept means %ld\n",
	       what, rg_refresh, rh_refresh, rc_refresh, cnt.sink_forwards, cnt.sink_graph_replays,
	       cnt.sink_kept_means);
	if (rc_refresh < 1 || rg_refresh != rc_refresh || rg_refresh != rh_refresh || bad || bad_h ||
	    !(worst <= PARITY) || !(worst_h <= PARITY) || cnt.sink_forwards < chunks - 1 ||
	    cnt.sink_kept_means < cnt.sink_forwards - 1 ||
	    (graphs ? cnt.sink_graph_replays < cnt.sink_forwards - 6 || cnt.sink_graph_replays < 1
		    : cnt.graph_replays != 0)) {
		fprintf(stderr, "FAIL %-36s evict lists differ: %d from the C reference (%s), %d from the host-decided path (%s); worst x0 %.3e / %.3e\n",
			what, bad, first, bad_h, first_h, worst, worst_h);
		failures++;
	} else {
		printf("ok   %-36s evict lists equal, worst x0 vs C %.3e, vs host-decided %.3e\n", what, worst,
		       worst_h);
	}
out:
	dit_stream_free(cs);
	dit_stream_free(gs);
	dit_stream_free(hs);
	if (ce.destroy)
		ce.destroy(ce.impl);
	if (ge.destroy)
		ge.destroy(ge.impl);
	if (he.destroy)
		he.destroy(he.impl);
	wan_dit_model_free(m);
	free(lat);
	free(ctx);
	free(scale);
	free(noise);
	free(oc);
	free(og);
	free(oh);
}

static uint32_t lcg_next(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return *s >> 8;
}

/* dit_kv's state of layer L, slot S as a device ring. */
static void ring_from_kv(const struct dit_kv *kv, int l, int s, struct wan_sink_ring *r)
{
	static int64_t lst[WAN_SINK_LIST_MAX];

	r->n = dit_kv_evict_list(kv, l, s, lst, WAN_SINK_LIST_MAX);
	for (int i = 0; i < r->n; i++)
		r->list[i] = (int)lst[i];
	r->global_end = (int)dit_kv_global_end(kv, l, s);
	r->local_end = (int)dit_kv_local_end(kv, l, s);
	r->current_step = dit_kv_current_step(kv, l);
}

/* Random configurations and streams (positions as dit_stream advances them, RoPE refresh
 * included), random picks: every write row, attention length, refusal and the whole ring
 * state after it must equal dit_kv's. */
static void ring_fuzz(void)
{
	char err[256];
	uint32_t seed = 12345;
	long advances = 0, picks = 0;
	int bad = 0;

	for (int trial = 0; trial < 400 && !bad; trial++) {
		struct dit_kv_config c = { .tokens_per_frame = 1 + lcg_next(&seed) % 5,
					   .kv_frames = 4 + lcg_next(&seed) % 6, .sink_threshold = 0.2,
					   .layers = 1, .total_steps = 1 + lcg_next(&seed) % 4 };
		int batch = lcg_next(&seed) % 2, pprob = lcg_next(&seed) % 4, calls = trial % 10 ? 60 : 300;
		struct dit_kv *kv;
		struct dit_kv_step st;
		struct wan_sink_ring ring[8], now;
		int64_t starts[8];
		int L, frame = 2, slots;

		c.sink_frames = 1 + lcg_next(&seed) % (c.kv_frames - 1);
		if (trial % 10 == 0) {
			/* no-batch, 4 steps, frequent picks: the pending refreshes outgrow their cap */
			batch = 0;
			c.total_steps = 4;
			pprob = 3;
		}
		c.max_slots = batch ? c.total_steps : 1;
		kv = dit_kv_new(&c, err, sizeof(err));
		if (!kv || dit_kv_advance_layers(kv, 0, 0, 2 * c.tokens_per_frame, &st, err, sizeof(err)) ||
		    (batch && dit_kv_expand(kv, c.total_steps, err, sizeof(err)))) {
			fprintf(stderr, "FAIL ring fuzz setup: %s\n", err);
			failures++;
			dit_kv_free(kv);
			return;
		}
		L = c.tokens_per_frame;
		slots = dit_kv_slots(kv);
		struct wan_sink_params p = { .threshold = 0.2, .total_steps = c.total_steps, .kv_slots = slots,
					     .pending_max = DIT_KV_SINK_PENDING_MAX,
					     .list_cap = DIT_KV_SINK_PENDING_MAX + c.kv_frames + 1 };
		for (int s = 0; s < slots; s++) {
			ring_from_kv(kv, 0, s, &ring[s]);
			starts[s] = 2 * L;
		}
		for (int call = 0; call < calls && !bad; call++) {
			int f = frame >= DIT_ROPE_REFRESH_FRAME ? c.kv_frames - 1 : frame;

			if (batch)
				memmove(starts + 1, starts, 7 * sizeof(int64_t));
			starts[0] = (int64_t)f * L;
			for (int k = 0; k < (batch ? 1 : c.total_steps) && !bad; k++)
				for (int s = 0; s < slots && !bad; s++) {
					int pick = (int)(lcg_next(&seed) % 4) < pprob ? (int)(lcg_next(&seed) % c.sink_frames) : -1;
					int al0 = dit_kv_attn_len(kv, 0, s, starts[s], L), wr = -2, al = -2;
					int rc = dit_kv_advance(kv, 0, s, starts[s], L, pick, &st, err, sizeof(err));
					int drc = wan_sink_ring_advance_host(&ring[s], &p, L, c.kv_frames * L, c.sink_frames,
									     (int)starts[s], L, pick, &wr, &al);

					advances++;
					picks += pick >= 0;
					ring_from_kv(kv, 0, s, &now);
					if ((rc != 0) != (drc != 0) ||
					    (!rc && (wr != st.write_row || al != st.attn_len || al0 != al)) ||
					    now.n != ring[s].n || now.global_end != ring[s].global_end ||
					    now.local_end != ring[s].local_end || now.current_step != ring[s].current_step ||
					    memcmp(now.list, ring[s].list, (size_t)now.n * sizeof(int))) {
						fprintf(stderr, "FAIL ring fuzz trial %d call %d slot %d: row %d/%d vs dit_kv %d/%d (rc %d/%d)\n",
							trial, call, s, wr, al, st.write_row, st.attn_len, drc, rc);
						bad = 1;
					}
				}
			frame = f + 1;
		}
		dit_kv_free(kv);
	}
	if (bad) {
		failures++;
		return;
	}
	printf("ok   device ring update = dit_kv         %ld advances, %ld sink picks\n", advances, picks);
}

/* ---- the sink kernels one by one ---- */

static uint16_t to_bf16(float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	u += 0x7fffu + ((u >> 16) & 1u);
	return (uint16_t)(u >> 16);
}

static float from_bf16(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;

	memcpy(&f, &u, 4);
	return f;
}

static float uniform(uint32_t *seed)
{
	return (float)(lcg_next(seed) & 0xffffff) / 8388608.0f - 1.0f;
}

/* n random bf16 values base + amp·U(-1, 1) on the device (host copy in *host). */
static void *dev_bf16(size_t n, uint32_t *seed, float base, float amp, uint16_t **host)
{
	uint16_t *h = malloc(n * 2);
	void *d = NULL;

	for (size_t i = 0; h && i < n; i++)
		h[i] = to_bf16(base + amp * uniform(seed));
	if (h && cudaMalloc(&d, n * 2) == cudaSuccess)
		cudaMemcpy(d, h, n * 2, cudaMemcpyHostToDevice);
	*host = h;
	return d;
}

static void *dev_copy(const void *src, size_t bytes)
{
	void *d = NULL;

	if (cudaMalloc(&d, bytes) == cudaSuccess)
		cudaMemcpy(d, src, bytes, cudaMemcpyDeviceToDevice);
	return d;
}

static int dev_equal(const void *a, const void *b, size_t bytes)
{
	char *ha = malloc(bytes), *hb = malloc(bytes);
	int eq = ha && hb && cudaMemcpy(ha, a, bytes, cudaMemcpyDeviceToHost) == cudaSuccess &&
		 cudaMemcpy(hb, b, bytes, cudaMemcpyDeviceToHost) == cudaSuccess && !memcmp(ha, hb, bytes);

	free(ha);
	free(hb);
	return eq;
}

/* One layer of B slots, N = L new tokens each (a whole frame), NS sink frames, a full cache of
 * NS + 2 frames: the fused statistics and the write kernel against kernels.cu's q/k
 * RMSNorm+RoPE+cache write (bitwise: q, the cache, the chunk sums of the rows it writes); the
 * means against float64 sums; the decision against ops_cosine, the first argmin and the host
 * ring update; the kept means; a refused write leaving its slot's cache alone. */
static void sink_kernels(int B, int l, int w2, int D, int hd, int ns)
{
	char err[256], what[96];
	uint32_t seed = 777u + (uint32_t)D + (uint32_t)l;
	int n = l, kf = ns + 2, rows = kf * l, C = wan_sink_chunk(), nch = (l + C - 1) / C, bad = 0;
	int ncb = (D + 63) / 64, nrow = 2 * (ns + 1), P = 64, half = hd / 2;
	size_t nq = (size_t)B * n * 3 * D, nc = (size_t)B * rows * D, nt = (size_t)B * n * D;
	size_t npart = (size_t)B * 2 * nch * D, nspart = (size_t)B * 2 * ns * nch * D;
	uint16_t *hq = NULL, *hk = NULL, *hv = NULL, *hst = malloc(nt * 2), *hsv = malloc(nt * 2);
	void *qkv = dev_bf16(nq, &seed, 0.0f, 1.0f, &hq), *kc0 = NULL, *vc0 = NULL;
	void *kca = NULL, *vca = NULL, *kcb = NULL, *vcb = NULL, *qa = NULL, *qb = NULL, *kst = NULL, *vst = NULL;
	float *gq = NULL, *gk = NULL, *rope = NULL, *pf = NULL, *ps = NULL, *sp = NULL, *means = NULL, *keep = NULL;
	float *hmeans = malloc((size_t)B * nrow * D * 4), *hkeep = malloc((size_t)B * 2 * kf * D * 4);
	double *dots = NULL;
	int *dstart = NULL, *dwr = NULL, *dzero = NULL, *dcount = NULL, hstart[8], hwr[8], hcount[8];
	struct wan_sink_ring *drings = NULL, ring[8], want[8];
	struct wan_sink_params *dparams = NULL, par;
	struct wan_sink_rec *drec = NULL, rec[8];
	float hg[2][8192], *hrope = malloc((size_t)P * half * 8);

	snprintf(what, sizeof(what), "sink kernels (%d slots, L=%d, D=%d, %d sink frames)", B, l, D, ns);
	kc0 = dev_bf16(nc, &seed, 0.1f, 1.0f, &hk);
	vc0 = dev_bf16(nc, &seed, -0.05f, 1.0f, &hv);
	for (int i = 0; i < D; i++) {
		hg[0][i] = 1.0f + 0.25f * uniform(&seed);
		hg[1][i] = 1.0f + 0.25f * uniform(&seed);
	}
	for (int i = 0; hrope && i < P * half; i++) {
		double a = 3.14159 * uniform(&seed);

		hrope[2 * i] = (float)cos(a);
		hrope[2 * i + 1] = (float)sin(a);
	}
	for (int b = 0; b < B; b++) {
		hstart[b] = 5 + 7 * b;
		hwr[b] = (ns + b % 2) * l;
	}
	if (!qkv || !kc0 || !vc0 || !hst || !hsv || !hmeans || !hkeep || !hrope ||
	    cudaMalloc((void **)&gq, D * 4) || cudaMalloc((void **)&gk, D * 4) ||
	    cudaMalloc((void **)&rope, (size_t)P * half * 8) || cudaMalloc(&qa, nt * 2) || cudaMalloc(&qb, nt * 2) ||
	    cudaMalloc(&kst, nt * 2) || cudaMalloc(&vst, nt * 2) || cudaMalloc((void **)&pf, npart * 4) ||
	    cudaMalloc((void **)&ps, npart * 4) || cudaMalloc((void **)&sp, nspart * 4) ||
	    cudaMalloc((void **)&means, (size_t)B * nrow * D * 4) ||
	    cudaMalloc((void **)&keep, (size_t)B * 2 * kf * D * 4) ||
	    cudaMalloc((void **)&dots, (size_t)B * ncb * (2 + 4 * ns) * 8) || cudaMalloc((void **)&dstart, 32) ||
	    cudaMalloc((void **)&dwr, 32) || cudaMalloc((void **)&dzero, 32) || cudaMalloc((void **)&dcount, 32) ||
	    cudaMalloc((void **)&drings, sizeof(ring)) || cudaMalloc((void **)&dparams, sizeof(par)) ||
	    cudaMalloc((void **)&drec, sizeof(rec))) {
		fprintf(stderr, "FAIL %s: out of memory\n", what);
		failures++;
		goto out;
	}
	cudaMemcpy(gq, hg[0], D * 4, cudaMemcpyHostToDevice);
	cudaMemcpy(gk, hg[1], D * 4, cudaMemcpyHostToDevice);
	cudaMemcpy(rope, hrope, (size_t)P * half * 8, cudaMemcpyHostToDevice);
	cudaMemcpy(dstart, hstart, 32, cudaMemcpyHostToDevice);
	cudaMemcpy(dwr, hwr, 32, cudaMemcpyHostToDevice);
	cudaMemset(dzero, 0, 32);
	cudaMemset(dcount, 0, 32);
	kca = dev_copy(kc0, nc * 2);
	vca = dev_copy(vc0, nc * 2);
	kcb = dev_copy(kc0, nc * 2);
	vcb = dev_copy(vc0, nc * 2);
	/* the write to the decided rows, and the staged rows */
	if (wan_k_qkv_rope_cache(0, qkv, qa, kca, vca, (int64_t)rows * D, B * n, D, hd, n, l, w2, gq, gk, rope,
				 dstart, dwr, 1e-6f, err, sizeof(err)) ||
	    wan_k_qkv_rope_cache(0, qkv, qb, kst, vst, (int64_t)n * D, B * n, D, hd, n, l, w2, gq, gk, rope,
				 dstart, dzero, 1e-6f, err, sizeof(err)) ||
	    wan_k_sink_fresh_parts(0, qkv, B, n, D, hd, l, w2, gk, rope, dstart, 1e-6f, pf, err, sizeof(err)) ||
	    wan_k_sink_row_parts(0, kst, vst, (int64_t)n * D, 0, B, 1, n, D, ps, err, sizeof(err)) ||
	    cudaDeviceSynchronize() != cudaSuccess) {
		fprintf(stderr, "FAIL %s: %s\n", what, err);
		failures++;
		goto out;
	}
	if (!dev_equal(pf, ps, npart * 4)) {
		fprintf(stderr, "FAIL %s: the fused chunk sums differ from the written rows'\n", what);
		bad++;
	}
	/* a refused write (row -1) leaves the slot's cache alone */
	{
		int wr2[8];

		memcpy(wr2, hwr, sizeof(wr2));
		wr2[0] = -1;
		cudaMemcpy(kcb, kc0, nc * 2, cudaMemcpyDeviceToDevice);
		cudaMemcpy(vcb, vc0, nc * 2, cudaMemcpyDeviceToDevice);
		cudaMemcpy(dwr, wr2, 32, cudaMemcpyHostToDevice);
		if (wan_k_qkv_rope_cache(0, qkv, qb, kcb, vcb, (int64_t)rows * D, B * n, D, hd, n, l, w2, gq, gk,
					 rope, dstart, dwr, 1e-6f, err, sizeof(err)) ||
		    cudaDeviceSynchronize() != cudaSuccess || !dev_equal(kcb, kc0, (size_t)rows * D * 2) ||
		    !dev_equal(vcb, vc0, (size_t)rows * D * 2) || !dev_equal(qa, qb, nt * 2) ||
		    (B > 1 && !dev_equal((char *)kcb + (size_t)rows * D * 2, (char *)kca + (size_t)rows * D * 2,
					 (size_t)(B - 1) * rows * D * 2))) {
			fprintf(stderr, "FAIL %s: a refused write changed the cache or lost q\n", what);
			bad++;
		}
	}
	/* the decision over the cache kernels.cu wrote: sink frames 0..ns-1, one frame per slot */
	cudaMemcpy(hst, kst, nt * 2, cudaMemcpyDeviceToHost);
	cudaMemcpy(hsv, vst, nt * 2, cudaMemcpyDeviceToHost);
	cudaMemcpy(hk, kca, nc * 2, cudaMemcpyDeviceToHost);
	cudaMemcpy(hv, vca, nc * 2, cudaMemcpyDeviceToHost);
	{
		double amin[8], a[8][64];
		int best[8];
		struct wan_sink_reduce r = {
			.ns = ns, .l = l, .n = n, .chunk = C, .sink_part = sp, .fresh_part = pf, .means = means,
			.keep = keep, .keep_slot = 2 * kf * D, .keep_kv = kf * D, .dots = dots, .count = dcount,
		};
		float *ref = malloc((size_t)B * nrow * D * 4);
		int ring_n = kf - ns;

		for (int b = 0; ref && b < B; b++)
			for (int s = 0; s < nrow; s++) {
				int kv = s / (ns + 1), j = s % (ns + 1);
				const uint16_t *base = j < ns ? (kv ? hv : hk) + ((size_t)b * rows + (size_t)j * l) * D
							      : (kv ? hsv : hst) + (size_t)b * n * D;

				for (int c = 0; c < D; c++) {
					double acc = 0;

					for (int i = 0; i < l; i++)
						acc += from_bf16(base[(size_t)i * D + c]);
					ref[((size_t)b * nrow + s) * D + c] = (float)(acc / l);
				}
			}
		/* a_j as the host-decided path computes it, from the float64 means */
		for (int b = 0; ref && b < B; b++) {
			const float *mb = ref + (size_t)b * nrow * D;

			best[b] = 0;
			for (int j = 0; j < ns; j++) {
				a[b][j] = (ops_cosine(mb + (size_t)j * D, mb + (size_t)ns * D, D) +
					   ops_cosine(mb + (size_t)(ns + 1 + j) * D, mb + (size_t)(2 * ns + 1) * D, D)) / 2.0;
				if (a[b][j] < a[b][best[b]])
					best[b] = j;
			}
			amin[b] = a[b][best[b]];
		}
		/* a threshold between the slots' minima: some refresh, some not */
		par = (struct wan_sink_params){ .threshold = ref ? amin[0] + 0.5 : 0, .total_steps = 1,
						.kv_slots = B, .pending_max = WAN_SINK_PENDING_MAX,
						.list_cap = WAN_SINK_PENDING_MAX + kf + 1 };
		for (int b = 1; ref && b < B; b++)
			if (amin[b] != amin[0])
				par.threshold = (amin[0] + amin[b]) / 2;
		for (int b = 0; b < B; b++) {
			par.c_start[b] = hstart[b] * l;
			memset(&ring[b], 0, sizeof(ring[b]));
			ring[b].n = ring_n;
			for (int i = 0; i < ring_n; i++)
				ring[b].list[i] = (ns + 1 + (i + b) % ring_n) * l;
			ring[b].local_end = rows;
			ring[b].global_end = (hstart[b] - 1) * l;
			ring[b].current_step = 1;
			want[b] = ring[b];
		}
		cudaMemcpy(drings, ring, sizeof(ring), cudaMemcpyHostToDevice);
		cudaMemcpy(dparams, &par, sizeof(par), cudaMemcpyHostToDevice);
		if (!ref || wan_k_sink_row_parts(0, kca, vca, (int64_t)rows * D, (int64_t)l * D, B, ns, l, D, sp, err,
						 sizeof(err)) ||
		    wan_k_sink_decide(0, &r, B, D, drings, dparams, rows, dwr, drec, err, sizeof(err)) ||
		    cudaDeviceSynchronize() != cudaSuccess) {
			fprintf(stderr, "FAIL %s: decision: %s\n", what, ref ? err : "out of memory");
			free(ref);
			bad++;
			goto done;
		}
		cudaMemcpy(hmeans, means, (size_t)B * nrow * D * 4, cudaMemcpyDeviceToHost);
		cudaMemcpy(hkeep, keep, (size_t)B * 2 * kf * D * 4, cudaMemcpyDeviceToHost);
		cudaMemcpy(ring, drings, sizeof(ring), cudaMemcpyDeviceToHost);
		cudaMemcpy(rec, drec, sizeof(rec), cudaMemcpyDeviceToHost);
		cudaMemcpy(hwr, dwr, 32, cudaMemcpyDeviceToHost);
		cudaMemcpy(hcount, dcount, 32, cudaMemcpyDeviceToHost);
		if (!(rel_l2(hmeans, ref, (int64_t)B * nrow * D) <= 1e-5)) {
			fprintf(stderr, "FAIL %s: means rel L2 %.3e from float64 sums\n", what,
				rel_l2(hmeans, ref, (int64_t)B * nrow * D));
			bad++;
		}
		free(ref);
		for (int b = 0; b < B; b++) {
			int pick = amin[b] < par.threshold ? best[b] : -1, wr = -1, al = 0, replaced;
			int st = wan_sink_ring_advance_host(&want[b], &par, l, rows, ns, par.c_start[b], n, pick, &wr, &al);

			if (rec[b].pick != pick || rec[b].status != st || rec[b].write_row != (st ? -1 : wr) ||
			    hwr[b] != rec[b].write_row || rec[b].attn_len != (st ? 0 : al) || hcount[b] != 0 ||
			    ring[b].n != want[b].n || ring[b].global_end != want[b].global_end ||
			    ring[b].local_end != want[b].local_end || ring[b].current_step != want[b].current_step ||
			    memcmp(ring[b].list, want[b].list, (size_t)want[b].n * sizeof(int))) {
				fprintf(stderr, "FAIL %s: slot %d decided pick %d row %d (status %d), the host %d row %d (status %d)\n",
					what, b, rec[b].pick, rec[b].write_row, rec[b].status, pick, wr, st);
				bad++;
				continue;
			}
			/* kept means: every sink frame's, the one written over replaced by the new tokens' */
			replaced = !st && wr % l == 0 && wr < ns * l ? wr / l : -1;
			for (int kv = 0; kv < 2; kv++)
				for (int j = 0; j < ns; j++)
					if (memcmp(hkeep + (size_t)b * 2 * kf * D + (size_t)kv * kf * D + (size_t)j * D,
						   hmeans + ((size_t)b * nrow + kv * (ns + 1) + (j == replaced ? ns : j)) * D,
						   (size_t)D * 4)) {
						fprintf(stderr, "FAIL %s: slot %d kept %s mean of sink frame %d\n", what, b,
							kv ? "V" : "K", j);
						bad++;
					}
		}
		printf("     %-50s picks:", what);
		for (int b = 0; b < B; b++)
			printf(" %d", rec[b].pick);
		printf("\n");
	}
done:
	if (bad)
		failures++;
	else
		printf("ok   %-50s write, chunk sums bitwise; means, decision, kept means\n", what);
out:
	cudaFree(qkv); cudaFree(kc0); cudaFree(vc0); cudaFree(kca); cudaFree(vca); cudaFree(kcb); cudaFree(vcb);
	cudaFree(qa); cudaFree(qb); cudaFree(kst); cudaFree(vst); cudaFree(gq); cudaFree(gk); cudaFree(rope);
	cudaFree(pf); cudaFree(ps); cudaFree(sp); cudaFree(means); cudaFree(keep); cudaFree(dots);
	cudaFree(dstart); cudaFree(dwr); cudaFree(dzero); cudaFree(dcount); cudaFree(drings); cudaFree(dparams);
	cudaFree(drec);
	free(hq); free(hk); free(hv); free(hst); free(hsv); free(hmeans); free(hkeep); free(hrope);
}

static const struct {
	int steps;
	const char *mode, *tag, *thr, *kv, *sink;
} cases[] = {
	{ 1, "batch", "sink", "0.2", "6", "3" },   { 1, "batch", "nosink", "-1", "6", "3" },
	{ 1, "nobatch", "sink", "0.2", "6", "3" }, { 1, "nobatch", "nosink", "-1", "6", "3" },
	{ 2, "batch", "sink", "0.2", "6", "3" },   { 2, "batch", "nosink", "-1", "6", "3" },
	{ 2, "nobatch", "sink", "0.2", "6", "3" }, { 2, "nobatch", "nosink", "-1", "6", "3" },
	{ 2, "batch", "kv5_sink2", "-1", "5", "2" },
};

int main(int argc, char **argv)
{
	struct wan_dit_config cfg;
	char err[512], out[128];
	int ndev = 0;
	const char *src = getenv("top_srcdir");

	ring_fuzz();
	if (failures)
		return 1;
	if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev < 1) {
		printf("SKIP: no CUDA device\n");
		return 77;
	}
	sink_kernels(2, 50, 10, 1536, 128, 3);
	sink_kernels(3, 6, 3, 256, 128, 3);
	sink_kernels(1, 40, 8, 5120, 128, 2);
	sink_kernels(4, 33, 11, 1536, 128, 1);
	if (argc > 1)
		snprintf(fixdir, sizeof(fixdir), "%s", argv[1]);
	else
		snprintf(fixdir, sizeof(fixdir), "%s/tests/fixtures/wan/dit", src ? src : HERU_ABS_SRCDIR);
	snprintf(cfgpath, sizeof(cfgpath), "%s", fix_path("config.json"));
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/heru-gpu-dit-XXXXXX");
	if (!mkdtemp(tmpdir) || wan_dit_config_load(cfgpath, &cfg, err, sizeof(err))) {
		fprintf(stderr, "FAIL setup: %s\n", access(cfgpath, R_OK) ? "no fixtures (pass the folder as argument)" : err);
		return 1;
	}
	snprintf(weights, sizeof(weights), "%s/w.safetensors", tmpdir);
	if (dit_write_weights(&cfg, weights, "", err, sizeof(err))) {
		fprintf(stderr, "FAIL weights: %s\n", err);
		return 1;
	}
	snprintf(out, sizeof(out), "%s/out.safetensors", tmpdir);
	{
		const char *args[] = { "dit-forward", "--weights", weights, "--model", cfgpath, "--input",
				       fix_path("forward_in.safetensors"), "--output", out, "--device", "cuda", NULL };

		if (run_cli(cli_dit_forward, args)) {
			fprintf(stderr, "FAIL dit-forward --device cuda\n");
			failures++;
		} else {
			compare("dit-forward (2 slots x 3 frames)", out, fix_path("forward_out.safetensors"), "flow", 16 * 3 * 4 * 6);
		}
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char in[64], gold[96], steps[8], what[96];

		snprintf(in, sizeof(in), "stream_in_s%d.safetensors", cases[i].steps);
		snprintf(gold, sizeof(gold), "stream_out_s%d_%s_%s.safetensors", cases[i].steps,
			 cases[i].mode, cases[i].tag);
		snprintf(steps, sizeof(steps), "%d", cases[i].steps);
		snprintf(what, sizeof(what), "stream S=%d %s %s", cases[i].steps, cases[i].mode, cases[i].tag);
		const char *args[] = { "stream", "--weights", weights, "--model", cfgpath, "--input",
				       fix_path(in), "--output", out, "--steps", steps, "--mode",
				       cases[i].mode, "--sink-threshold", cases[i].thr, "--kv-frames",
				       cases[i].kv, "--sink-frames", cases[i].sink, "--device", "cuda", NULL };
		if (run_cli(cli_stream, args)) {
			fprintf(stderr, "FAIL %s: heru-wan stream --device cuda failed\n", what);
			failures++;
			continue;
		}
		compare(what, out, fix_path(gold), "x0", 16 * 4 * 6);
	}
	sink_on_device(&cfg, 1, true, true);
	sink_on_device(&cfg, 2, true, true);
	sink_on_device(&cfg, 2, false, true);
	sink_on_device(&cfg, 2, true, false);
	/* the unfused device path: new K/V staged, summed, copied */
	printf("-- WAN_SINK_FUSED=0\n");
	setenv("WAN_SINK_FUSED", "0", 1);
	sink_on_device(&cfg, 2, true, true);
	unsetenv("WAN_SINK_FUSED");
	unlink(out);
	unlink(weights);
	rmdir(tmpdir);
	printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
