/* gpu_dit_prepare.c: dit_stream_prepare on the CUDA DiT engine (a tiny model with random
 * weights, head dim 128 so the fa3/cuDNN choice is timed as at 1.3B). For streams with S = 1,
 * 2, 3 in batch and no-batch mode, with and without the adaptive sink:
 *   - a stream, then prepare on the same engine, then the stream again: bitwise the same x0
 *     (prepare leaves caches, ring, kept sink means and time embedding as a new stream
 *     expects; the plans and tuning choices are shared, so the bits must match);
 *   - on a fresh engine, prepare then the stream: no call of the stream plans a GEMM or an
 *     attention shape, times anything or captures a graph, and every call is a graph replay;
 *     its x0 is within bf16 parity of the first engine's (its own tuning may choose other
 *     algorithms);
 *   - with the tuning off (WAN_GEMM_TUNE=0, WAN_ATTN_TUNE=0, WAN_ATTN=cudnn: every choice is
 *     the heuristics', the same in every engine), a fresh engine without prepare and one with
 *     it give bitwise the same x0;
 *   - the stream's split forward (draws while the device runs, x0 computed on the device,
 *     pinned latents) gives bitwise the x0 of the host path (WAN_STREAM_HOST=1) on the same
 *     engine.
 * Exits 77 without a GPU.
 *
 * Benchmark: gpu_dit_prepare --bench [--model 1.3b] [--height 480] [--width 832] [--steps 4]
 * [--mode batch|nobatch] [--chunks 12] [--no-prepare] [--sink-threshold 0.2]
 * [--noise array|normal] [--path split|host|both]: random weights of the real shapes; prints
 * the engine's load, prepare and each chunk's wall time (chunk 0 is the first chunk's S
 * forwards; a later chunk one forward in batch mode, S without), with how many of the chunk's
 * forwards ran eagerly and how many GEMM/attention shapes and graphs it added. --noise: the
 * draws copied from memory (default) or generated as the pipeline does (wan_rng: Box-Muller,
 * the next draw generated ahead in dit_stream's idle hook); --path: the stream's split
 * forward (default), the host path (WAN_STREAM_HOST=1), or both one after the other on the
 * same engine (A/B; the x0 of both must be bitwise equal). */
#include "config.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cuda_runtime.h>

#include "dit_stream.h"
#include "ops_ref.h"
#include "plugins/wan/cuda/dit_cuda.h"
#include "wan_config.h"
#include "wan_rng.h"
#include "plugins/wan/wan_clock.h"

static int failures;

#define CHECK(cond, ...)                              \
	do {                                          \
		if (!(cond)) {                        \
			failures++;                   \
			printf("FAIL %s:%d: ", __FILE__, __LINE__); \
			printf(__VA_ARGS__);          \
			printf("\n");                 \
		}                                     \
	} while (0)

static void fill(float *v, size_t n, uint64_t seed)
{
	uint64_t s = seed * 2654435761u + 12345;

	for (size_t i = 0; i < n; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		v[i] = (float)((double)(s >> 11) / (double)(1ull << 53) * 3.4 - 1.7);
	}
}

static int rng_draw(void *ctx, float *dst, size_t n, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	wan_rng_fill(ctx, dst, n);
	return 0;
}

struct run;
static void rng_ahead(void *ctx);

/* One stream over an engine: latents, noise and strengths from fixed seeds. */
struct run {
	struct dit_engine eng;
	struct dit_stream *st;
	struct dit_stream_config sc;
	struct wan_dit_config cfg;
	int chunks;
	float *lat, *noise, *ctx;
	size_t fe, nnoise;
	int normal;      /* draws from wan_rng (the pipeline's source) instead of noise[] */
	struct wan_rng rng;
	double *ms;      /* [chunks] wall time of each chunk */
	long *eager;     /* [chunks] forwards of each chunk not replayed from a graph */
	long *added;     /* [chunks] GEMM + attention shapes + graphs the chunk added */
};

static void rng_ahead(void *ctx)
{
	struct run *r = ctx;

	(void)wan_rng_prefetch(&r->rng, r->fe);
}

static void run_free(struct run *r)
{
	dit_stream_free(r->st);
	wan_rng_release(&r->rng);
	if (r->eng.destroy)
		r->eng.destroy(r->eng.impl);
	free(r->lat);
	free(r->noise);
	free(r->ctx);
	free(r->ms);
	free(r->eager);
	free(r->added);
	memset(r, 0, sizeof(*r));
}

static int run_open(struct run *r, const struct wan_dit_config *cfg, int h, int w, int S, bool batch,
		    double thr, int chunks, char *err, size_t errlen)
{
	struct dit_engine_params ep = {.max_slots = batch ? S : 1, .kv_rows = 6 * (h / 2) * (w / 2),
				       .h = h, .w = w, .nctx = 1};
	size_t nctx = (size_t)cfg->text_len * cfg->text_dim;

	memset(r, 0, sizeof(*r));
	r->cfg = *cfg;
	r->chunks = chunks;
	r->fe = (size_t)16 * h * w;
	r->nnoise = (size_t)(2 * S + chunks * S) * r->fe;
	r->sc = (struct dit_stream_config){.steps = S, .batch = batch, .kv_frames = 6, .sink_frames = 3,
					   .sink_threshold = thr, .channels = 16, .h = h, .w = w,
					   .layers = cfg->num_layers};
	r->lat = malloc((chunks + 1) * r->fe * sizeof(float));
	r->noise = malloc(r->nnoise * sizeof(float));
	r->ctx = malloc(nctx * sizeof(float));
	r->ms = calloc(chunks, sizeof(double));
	r->eager = calloc(chunks, sizeof(long));
	r->added = calloc(chunks, sizeof(long));
	if (!r->lat || !r->noise || !r->ctx || !r->ms || !r->eager || !r->added) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	fill(r->lat, (chunks + 1) * r->fe, 1);
	fill(r->noise, r->nnoise, 2);
	fill(r->ctx, nctx, 3);
	if (dit_cuda_engine_open_random(cfg, &ep, 7, &r->eng, err, errlen) ||
	    r->eng.set_context(r->eng.impl, r->ctx, err, errlen))
		return -1;
	r->st = dit_stream_new(&r->sc, &r->eng, err, errlen);
	return r->st ? 0 : -1;
}

/* A new stream on R's engine: the host path (WAN_STREAM_HOST=1) or the split forward. */
static int run_restream(struct run *r, int host, char *err, size_t errlen)
{
	dit_stream_free(r->st);
	if (host)
		setenv("WAN_STREAM_HOST", "1", 1);
	r->st = dit_stream_new(&r->sc, &r->eng, err, errlen);
	unsetenv("WAN_STREAM_HOST");
	if (r->st && r->normal)
		dit_stream_set_idle(r->st, rng_ahead, r);
	return r->st ? 0 : -1;
}

static long added_of(const struct dit_cuda_counters *a, const struct dit_cuda_counters *b)
{
	return (b->gemm_shapes - a->gemm_shapes) + (b->attn_plans - a->attn_plans) +
	       (b->graph_captures - a->graph_captures);
}

/* The stream's chunks; X0 [chunks + 1][fe] gets chunk 0's 2 frames and each later result
 * (zeros where batch mode emits nothing yet). */
static int run_stream(struct run *r, float *x0, char *err, size_t errlen)
{
	struct dit_noise_array mn = {r->noise, r->nnoise, 0};
	dit_noise_fn nfn = r->normal ? rng_draw : dit_noise_array_next;
	void *nctx = r->normal ? (void *)&r->rng : (void *)&mn;
	struct dit_cuda *m = dit_cuda_engine_dit(&r->eng);
	struct dit_cuda_counters c0, c1;
	size_t hw = r->fe / 16;
	float *chunk = malloc(2 * r->fe * sizeof(float));
	int rc = -1;

	if (!chunk) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memset(x0, 0, (r->chunks + 1) * r->fe * sizeof(float));
	for (int c = 0; c < 16; c++)
		for (int f = 0; f < 2; f++)
			memcpy(chunk + ((size_t)c * 2 + f) * hw, r->lat + f * r->fe + c * hw, hw * sizeof(float));
	for (int k = 0; k < r->chunks; k++) {
		bool emitted;
		double t0;

		dit_cuda_get_counters(m, &c0);
		t0 = wan_now_ms();
		if (k == 0)
			wan_rng_seed(&r->rng, 2);
		if (k == 0 ? dit_stream_first(r->st, chunk, 0.7, nfn, nctx, x0, err, errlen)
			   : dit_stream_next(r->st, r->lat + (size_t)(k + 1) * r->fe, 0.5 + 0.02 * (k % 5),
					     nfn, nctx, x0 + (size_t)(k + 1) * r->fe, &emitted, err, errlen))
			goto cleanup;
		r->ms[k] = wan_now_ms() - t0;
		dit_cuda_get_counters(m, &c1);
		r->eager[k] = (c1.forwards - c0.forwards) - (c1.graph_replays - c0.graph_replays);
		r->added[k] = added_of(&c0, &c1);
	}
	rc = 0;
cleanup:
	free(chunk);
	return rc;
}

static double rel_l2(const float *a, const float *b, size_t n)
{
	double num = 0, den = 0;

	for (size_t i = 0; i < n; i++) {
		num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
		den += (double)b[i] * b[i];
	}
	return sqrt(num / (den > 0 ? den : 1));
}

#define TH 8
#define TW 12
#define CHUNKS 14

/* The checks of one stream mode (see the top of the file). */
static void check_mode(const struct wan_dit_config *cfg, int S, bool batch, double thr)
{
	char err[512], tag[64];
	struct run a, b;
	struct dit_cuda_counters c0, c1, c2, c3;
	size_t n = (size_t)(CHUNKS + 1) * 16 * TH * TW;
	float *x0n = malloc(n * sizeof(float)), *x0p = malloc(n * sizeof(float)), *x0q = malloc(n * sizeof(float));
	long eager = 0, added = 0;

	snprintf(tag, sizeof(tag), "S=%d %s %s", S, batch ? "batch" : "nobatch", thr > -1 ? "sink" : "nosink");
	if (!x0n || !x0p || !x0q) {
		CHECK(0, "%s: out of memory", tag);
		goto done;
	}
	if (run_open(&a, cfg, TH, TW, S, batch, thr, CHUNKS, err, sizeof(err))) {
		CHECK(0, "%s: %s", tag, err);
		run_free(&a);
		goto done;
	}
	/* engine A: a stream, prepare, the stream again */
	dit_cuda_get_counters(dit_cuda_engine_dit(&a.eng), &c0);
	CHECK(run_stream(&a, x0n, err, sizeof(err)) == 0, "%s: %s", tag, err);
	dit_cuda_get_counters(dit_cuda_engine_dit(&a.eng), &c1);
	CHECK(c1.graph_captures > c0.graph_captures && c1.gemm_shapes > c0.gemm_shapes,
	      "%s: the unprepared stream planned nothing (%ld graphs, %ld GEMM shapes)", tag,
	      c1.graph_captures - c0.graph_captures, c1.gemm_shapes - c0.gemm_shapes);
	CHECK(dit_stream_prepare(a.st, err, sizeof(err)) == 0, "%s: prepare: %s", tag, err);
	CHECK(run_stream(&a, x0p, err, sizeof(err)) == 0, "%s: %s", tag, err);
	CHECK(!memcmp(x0n, x0p, n * sizeof(float)), "%s: the stream after prepare differs (rel L2 %.3g)",
	      tag, rel_l2(x0p, x0n, n));
	/* the host path on the same engine: bitwise the split forward's x0; and with the
	 * pipeline's noise source (its next draw generated ahead while the device runs) too */
	CHECK(run_restream(&a, 1, err, sizeof(err)) == 0 && run_stream(&a, x0q, err, sizeof(err)) == 0,
	      "%s: host path: %s", tag, err);
	CHECK(!memcmp(x0n, x0q, n * sizeof(float)), "%s: the host path differs from the split forward (rel L2 %.3g)",
	      tag, rel_l2(x0q, x0n, n));
	a.normal = 1;
	CHECK(run_restream(&a, 0, err, sizeof(err)) == 0 && run_stream(&a, x0p, err, sizeof(err)) == 0 &&
	      run_restream(&a, 1, err, sizeof(err)) == 0 && run_stream(&a, x0q, err, sizeof(err)) == 0,
	      "%s: generated noise: %s", tag, err);
	CHECK(!memcmp(x0p, x0q, n * sizeof(float)),
	      "%s: with generated noise the split forward differs from the host path (rel L2 %.3g)", tag,
	      rel_l2(x0q, x0p, n));
	/* engine B: prepare first; the stream then plans and captures nothing */
	if (run_open(&b, cfg, TH, TW, S, batch, thr, CHUNKS, err, sizeof(err))) {
		CHECK(0, "%s: %s", tag, err);
		run_free(&a);
		run_free(&b);
		goto done;
	}
	CHECK(dit_stream_prepare(b.st, err, sizeof(err)) == 0, "%s: prepare: %s", tag, err);
	dit_cuda_get_counters(dit_cuda_engine_dit(&b.eng), &c2);
	CHECK(run_stream(&b, x0q, err, sizeof(err)) == 0, "%s: %s", tag, err);
	dit_cuda_get_counters(dit_cuda_engine_dit(&b.eng), &c3);
	for (int k = 0; k < CHUNKS; k++) {
		eager += b.eager[k];
		added += b.added[k];
	}
	CHECK(c3.gemm_shapes == c2.gemm_shapes && c3.attn_plans == c2.attn_plans &&
	      c3.graph_captures == c2.graph_captures && c3.attn_untimed == 0 && eager == 0,
	      "%s: after prepare the stream added %ld GEMM shapes, %ld attention plans, %ld graphs, ran %ld forwards eagerly, %ld attention plans untimed",
	      tag, c3.gemm_shapes - c2.gemm_shapes, c3.attn_plans - c2.attn_plans,
	      c3.graph_captures - c2.graph_captures, eager, c3.attn_untimed);
	CHECK(c3.forwards > c2.forwards && c3.graph_replays - c2.graph_replays == c3.forwards - c2.forwards,
	      "%s: %ld of %ld forwards replayed", tag, c3.graph_replays - c2.graph_replays,
	      c3.forwards - c2.forwards);
	CHECK(rel_l2(x0q, x0n, n) <= 1e-2, "%s: fresh prepared engine off by %.3g", tag, rel_l2(x0q, x0n, n));
	printf("%-22s stream alone: %ld graphs, %ld GEMM shapes, %ld attention plans; prepared: %ld graphs, %ld forwards all replayed, fresh engine rel L2 %.2g; host path = split forward\n",
	       tag, c1.graph_captures - c0.graph_captures, c1.gemm_shapes - c0.gemm_shapes,
	       c1.attn_plans - c0.attn_plans, c2.graph_captures, c3.forwards - c2.forwards,
	       rel_l2(x0q, x0n, n));
	run_free(&a);
	run_free(&b);
done:
	free(x0n);
	free(x0p);
	free(x0q);
}

/* Tuning off: two fresh engines, one prepared, give the same bits. */
static void check_untuned(const struct wan_dit_config *cfg)
{
	char err[512];
	struct run a, b;
	size_t n = (size_t)(CHUNKS + 1) * 16 * TH * TW;
	float *x0n = malloc(n * sizeof(float)), *x0p = malloc(n * sizeof(float));

	setenv("WAN_GEMM_TUNE", "0", 1);
	setenv("WAN_ATTN_TUNE", "0", 1);
	setenv("WAN_ATTN", "cudnn", 1);
	snprintf(err, sizeof(err), "out of memory");
	if (!x0n || !x0p || run_open(&a, cfg, TH, TW, 2, true, 0.2, CHUNKS, err, sizeof(err))) {
		CHECK(0, "untuned: %s", err);
		if (x0n && x0p)
			run_free(&a);
		goto done;
	}
	CHECK(run_stream(&a, x0n, err, sizeof(err)) == 0, "untuned: %s", err);
	run_free(&a);
	if (run_open(&b, cfg, TH, TW, 2, true, 0.2, CHUNKS, err, sizeof(err))) {
		CHECK(0, "untuned: %s", err);
		run_free(&b);
		goto done;
	}
	CHECK(dit_stream_prepare(b.st, err, sizeof(err)) == 0, "untuned prepare: %s", err);
	CHECK(run_stream(&b, x0p, err, sizeof(err)) == 0, "untuned: %s", err);
	CHECK(!memcmp(x0n, x0p, n * sizeof(float)),
	      "untuned: a fresh prepared engine differs from a fresh unprepared one (rel L2 %.3g)",
	      rel_l2(x0p, x0n, n));
	printf("untuned S=2 batch sink: fresh engines with and without prepare bitwise equal\n");
	run_free(&b);
done:
	unsetenv("WAN_GEMM_TUNE");
	unsetenv("WAN_ATTN_TUNE");
	unsetenv("WAN_ATTN");
	free(x0n);
	free(x0p);
}

/* The host phases of one steady call measured one by one (the bench's prediction table):
 * copies of the call's latents (S frames in batch mode, 1 without) each way from pageable
 * and pinned memory, its S noise draws copied or generated (wan_rng), and its host math
 * (mixing, flow -> x0, re-noising, the slot shift). Medians of 7. */
static void measure_parts(const struct run *r)
{
	int S = r->sc.steps, fr = r->sc.batch ? S : 1;
	size_t fe = r->fe, n = (size_t)fr * fe, bytes = n * sizeof(float);
	float *pg = malloc(bytes), *pg2 = malloc(bytes), *pn = dit_cuda_host_alloc(bytes), *dv = NULL;
	double t[8][7], med[8];
	struct wan_rng rng = {0};

	if (!pg || !pg2 || !pn || cudaMalloc((void **)&dv, bytes) != cudaSuccess) {
		printf("parts: out of memory\n");
		goto cleanup;
	}
	fill(pg, n, 5);
	fill(pg2, n, 6);
	wan_rng_seed(&rng, 9);
	for (int it = 0; it < 7; it++) {
		double t0 = wan_now_ms();

		cudaMemcpy(dv, pg, bytes, cudaMemcpyHostToDevice);
		t[0][it] = wan_now_ms() - t0, t0 = wan_now_ms();
		cudaMemcpy(dv, pn, bytes, cudaMemcpyHostToDevice);
		t[1][it] = wan_now_ms() - t0, t0 = wan_now_ms();
		cudaMemcpy(pg, dv, bytes, cudaMemcpyDeviceToHost);
		t[2][it] = wan_now_ms() - t0, t0 = wan_now_ms();
		cudaMemcpy(pn, dv, bytes, cudaMemcpyDeviceToHost);
		t[3][it] = wan_now_ms() - t0, t0 = wan_now_ms();
		for (int f = 0; f < S; f++)
			memcpy(pg2 + (f % fr) * fe, r->noise + f * fe, fe * sizeof(float));
		t[4][it] = wan_now_ms() - t0, t0 = wan_now_ms();
		for (int f = 0; f < S; f++)
			wan_rng_fill(&rng, pg2 + (f % fr) * fe, fe);
		t[5][it] = wan_now_ms() - t0, t0 = wan_now_ms();
		ops_add_noise(pn, pg, pg2, fe, 0.5);
		ops_flow_to_x0(pn, pn, pg2, n, 0.7);
		ops_add_noise(pn, pn, pg2, (size_t)(fr > 1 ? fr - 1 : S > 1) * fe, 0.3);
		t[6][it] = wan_now_ms() - t0, t0 = wan_now_ms();
		memmove(pn + (fr > 1 ? fe : 0), pn, (size_t)(fr > 1 ? fr - 1 : 0) * fe * sizeof(float));
		t[7][it] = wan_now_ms() - t0;
	}
	for (int k = 0; k < 8; k++) {
		for (int i = 1; i < 7; i++)
			for (int j = i; j > 0 && t[k][j - 1] > t[k][j]; j--) {
				double x = t[k][j];

				t[k][j] = t[k][j - 1];
				t[k][j - 1] = x;
			}
		med[k] = t[k][3];
	}
	printf("parts (one call: %d frames of %zu floats = %.2f MB; %d draws): H2D pageable %.3f pinned %.3f, D2H pageable %.3f pinned %.3f, draws copied %.3f generated %.3f, host math %.3f, slot shift %.3f ms\n",
	       fr, fe, bytes / 1e6, S, med[0], med[1], med[2], med[3], med[4], med[5], med[6], med[7]);
cleanup:
	wan_rng_release(&rng);
	free(pg);
	free(pg2);
	dit_cuda_host_free(pn);
	cudaFree(dv);
}

static int bench(int argc, char **argv)
{
	const char *model = "1.3b", *mode = "batch", *noise = "array", *path = "split";
	int h = 480, w = 832, S = 4, chunks = 12, prep = 1;
	double thr = 0.2, t0, open_ms, prep_ms = 0;
	char err[512];
	struct wan_dit_config cfg;
	struct run r;
	float *x0, *x0b;
	struct dit_cuda_counters c;
	int rc = 0;

	for (int i = 2; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(argv[i], "--no-prepare"))
			prep = 0;
		else if (v && !strcmp(argv[i], "--model"))
			model = argv[++i];
		else if (v && !strcmp(argv[i], "--height"))
			h = atoi(argv[++i]);
		else if (v && !strcmp(argv[i], "--width"))
			w = atoi(argv[++i]);
		else if (v && !strcmp(argv[i], "--steps"))
			S = atoi(argv[++i]);
		else if (v && !strcmp(argv[i], "--mode"))
			mode = argv[++i];
		else if (v && !strcmp(argv[i], "--chunks"))
			chunks = atoi(argv[++i]);
		else if (v && !strcmp(argv[i], "--sink-threshold"))
			thr = atof(argv[++i]);
		else if (v && !strcmp(argv[i], "--noise"))
			noise = argv[++i];
		else if (v && !strcmp(argv[i], "--path"))
			path = argv[++i];
		else {
			fprintf(stderr, "gpu_dit_prepare --bench: unknown or incomplete option '%s'\n", argv[i]);
			return 2;
		}
	}
	if (h % 16 || w % 16 || h < 16 || w < 16 || S < 1 || S > 8 || chunks < 1 || chunks > 200 ||
	    (strcmp(mode, "batch") && strcmp(mode, "nobatch")) || (strcmp(noise, "array") && strcmp(noise, "normal")) ||
	    (strcmp(path, "split") && strcmp(path, "host") && strcmp(path, "both"))) {
		fprintf(stderr, "gpu_dit_prepare --bench: height and width multiples of 16, steps 1..8, chunks 1..200, mode batch|nobatch, noise array|normal, path split|host|both\n");
		return 2;
	}
	if (wan_dit_config_load(model, &cfg, err, sizeof(err))) {
		fprintf(stderr, "gpu_dit_prepare: %s\n", err);
		return 1;
	}
	t0 = wan_now_ms();
	if (run_open(&r, &cfg, h / 8, w / 8, S, !strcmp(mode, "batch"), thr, chunks, err, sizeof(err))) {
		fprintf(stderr, "gpu_dit_prepare: %s\n", err);
		run_free(&r);
		return 1;
	}
	open_ms = wan_now_ms() - t0;
	if (prep) {
		t0 = wan_now_ms();
		if (dit_stream_prepare(r.st, err, sizeof(err))) {
			fprintf(stderr, "gpu_dit_prepare: prepare: %s\n", err);
			run_free(&r);
			return 1;
		}
		prep_ms = wan_now_ms() - t0;
	}
	r.normal = !strcmp(noise, "normal");
	x0 = malloc((chunks + 1) * r.fe * sizeof(float));
	x0b = malloc((chunks + 1) * r.fe * sizeof(float));
	dit_cuda_get_counters(dit_cuda_engine_dit(&r.eng), &c);
	printf("model %s %dx%d S=%d %s sink %s, noise %s, %s: engine open %.0f ms, prepare %.0f ms (%d later chunks), %ld graphs, %ld GEMM shapes, %ld attention plans\n",
	       model, h, w, S, mode, thr > -1 ? "on" : "off", noise, prep ? "prepared" : "not prepared", open_ms,
	       prep_ms, prep ? dit_stream_prepare_chunks(&r.sc) : 0, c.graph_captures, c.gemm_shapes,
	       c.attn_plans);
	measure_parts(&r);
	for (int pass = 0; pass < 2; pass++) {
		int host = !strcmp(path, "both") ? pass == 0 : !strcmp(path, "host");
		const char *pname = host ? "host" : "split";

		if ((pass == 1 && strcmp(path, "both")) || !x0 || !x0b)
			break;
		if (run_restream(&r, host, err, sizeof(err)) || run_stream(&r, pass ? x0b : x0, err, sizeof(err))) {
			fprintf(stderr, "gpu_dit_prepare: %s\n", err);
			rc = 1;
			goto done;
		}
		printf("path %s\n%5s %10s %6s %6s\n", pname, "chunk", "ms", "eager", "added");
		for (int k = 0; k < chunks; k++)
			printf("%5d %10.2f %6ld %6ld\n", k, r.ms[k], r.eager[k], r.added[k]);
		printf("RESULT model=%s res=%dx%d S=%d mode=%s prepare=%d prepare_ms=%.0f noise=%s path=%s calls_ms=",
		       model, h, w, S, mode, prep, prep_ms, noise, pname);
		for (int k = 0; k < chunks; k++)
			printf("%s%.1f", k ? "," : "", r.ms[k]);
		printf("\n");
	}
	if (!x0 || !x0b) {
		fprintf(stderr, "gpu_dit_prepare: out of memory\n");
		rc = 1;
	} else if (!strcmp(path, "both")) {
		int same = !memcmp(x0, x0b, (chunks + 1) * r.fe * sizeof(float));

		printf("host and split x0 %s\n", same ? "bitwise equal" : "DIFFER");
		rc = same ? 0 : 1;
	}
done:
	free(x0);
	free(x0b);
	run_free(&r);
	return rc;
}

int main(int argc, char **argv)
{
	int ndev = 0;
	struct wan_dit_config cfg = {.dim = 256, .ffn_dim = 384, .num_heads = 2, .head_dim = 128,
				     .num_layers = 2, .in_dim = 16, .out_dim = 16, .text_len = 16,
				     .text_dim = 32, .freq_dim = 256, .eps = 1e-6};

	if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev < 1) {
		cudaGetLastError();
		printf("gpu_dit_prepare: no CUDA device, skipped\n");
		return 77;
	}
	if (argc > 1 && !strcmp(argv[1], "--bench"))
		return bench(argc, argv);
	if (argc > 1) {
		fprintf(stderr, "usage: gpu_dit_prepare [--bench [options]]\n");
		return 2;
	}
	check_mode(&cfg, 1, true, 0.2);
	check_mode(&cfg, 1, false, -1);
	check_mode(&cfg, 2, true, 0.2);
	check_mode(&cfg, 2, false, 0.2);
	check_mode(&cfg, 2, true, -1);
	check_mode(&cfg, 3, true, 0.2);
	check_untuned(&cfg);
	printf("gpu_dit_prepare: %s (%d failures)\n", failures ? "FAIL" : "ok", failures);
	return failures ? 1 : 0;
}
