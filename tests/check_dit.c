/* check_dit.c: the C fp32 DiT against the PyTorch goldens of tests/reference/wan_dit_ref.py,
 * through the real subcommands: heru-wan dit-forward, and heru-wan stream with S = 1 and 2 in
 * both modes, with and without the adaptive sink, over 52 chunks (the ring wraps, the sink
 * refresh fires, the RoPE refresh happens at chunk 49). Also the refusals a user meets.
 *
 * The tiny model's weights are not stored: dit_weight_values() (tests/dit_test_util.c)
 * regenerates them bit for bit with the reference script's counter-based generator. */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "dit_test_util.h"
#include "dit_cpu.h"
#include "dit_model.h"
#include "dit_stream.h"
#include "wan_config.h"
#include "wan_dit_weights.h"
#include "wt_file.h"

static char tmpdir[64];
static char weights[128];
static char fixdir[1024];
static char cfgpath[1100];

static const char *tmp_path(const char *name)
{
	static struct test_path_ring ring;
	return test_path(&ring, tmpdir, name);
}

static const char *fix_path(const char *name)
{
	static struct test_path_ring ring;
	return test_path(&ring, fixdir, name);
}

static float *load(const char *path, const char *name, int64_t *n)
{
	char err[256];
	struct wt_file *f = wt_open(path, err, sizeof(err));
	ck_assert_msg(f != NULL, "%s", err);
	const struct wt_tensor *t = wt_find(f, name);
	ck_assert_msg(t != NULL, "%s has no %s", path, name);
	*n = wt_numel(t);
	float *v = malloc(sizeof(float) * (*n ? *n : 1));
	ck_assert_ptr_nonnull(v);
	ck_assert_int_eq(wt_tensor_to_f32(t, v, err, sizeof(err)), 0);
	wt_close(f);
	return v;
}

/* Parity target: relative L2 error of the fp32 C path against float64 PyTorch. */
#define PARITY 1e-4

START_TEST(test_forward_golden)
{
	const char *out = tmp_path("flow.safetensors");
	const char *args[] = { "dit-forward", "--weights", weights, "--model", cfgpath, "--input",
			       fix_path("forward_in.safetensors"), "--output", out, NULL };
	ck_assert_int_eq(run_cli(cli_dit_forward, args), 0);
	int64_t n, ng;
	float *got = load(out, "flow", &n);
	float *want = load(fix_path("forward_out.safetensors"), "flow", &ng);
	ck_assert_int_eq(n, ng);
	ck_assert_int_eq(n, 2 * 16 * 3 * 4 * 6);
	double e = rel_l2(got, want, n);
	printf("dit-forward: relative L2 error %.3g\n", e);
	ck_assert_msg(e <= PARITY, "dit-forward error %g", e);
	free(got);
	free(want);
}
END_TEST

static const struct {
	int steps;
	const char *mode, *tag, *thr, *kv, *sink;
	int frames;
} cases[] = {
	{ 1, "batch", "sink", "0.2", "6", "3", 53 },   { 1, "batch", "nosink", "-1", "6", "3", 53 },
	{ 1, "nobatch", "sink", "0.2", "6", "3", 53 }, { 1, "nobatch", "nosink", "-1", "6", "3", 53 },
	{ 2, "batch", "sink", "0.2", "6", "3", 52 },   { 2, "batch", "nosink", "-1", "6", "3", 52 },
	{ 2, "nobatch", "sink", "0.2", "6", "3", 53 }, { 2, "nobatch", "nosink", "-1", "6", "3", 53 },
	/* upstream's "fast" config: 5 cache frames, 2 sinks, adaptive sink off */
	{ 2, "batch", "kv5_sink2", "-1", "5", "2", 52 },
};

START_TEST(test_stream_golden)
{
	char in[64], gold[96], steps[8];
	snprintf(in, sizeof(in), "stream_in_s%d.safetensors", cases[_i].steps);
	snprintf(gold, sizeof(gold), "stream_out_s%d_%s_%s.safetensors", cases[_i].steps,
		 cases[_i].mode, cases[_i].tag);
	snprintf(steps, sizeof(steps), "%d", cases[_i].steps);
	const char *out = tmp_path("x0.safetensors");
	const char *args[] = { "stream", "--weights", weights, "--model", cfgpath, "--input",
			       fix_path(in), "--output", out, "--steps", steps, "--mode",
			       cases[_i].mode, "--sink-threshold", cases[_i].thr, "--kv-frames",
			       cases[_i].kv, "--sink-frames", cases[_i].sink, NULL };
	ck_assert_int_eq(run_cli(cli_stream, args), 0);
	int64_t n, ng;
	float *got = load(out, "x0", &n);
	float *want = load(fix_path(gold), "x0", &ng);
	ck_assert_int_eq(n, ng);
	ck_assert_int_eq(n, (int64_t)cases[_i].frames * 16 * 4 * 6);
	double e = rel_l2(got, want, n), worst = 0;
	for (int f = 0; f < cases[_i].frames; f++) {
		double ef = rel_l2(got + f * 384, want + f * 384, 384);
		worst = ef > worst ? ef : worst;
	}
	printf("stream S=%d %s %s: relative L2 error %.3g (worst frame %.3g)\n", cases[_i].steps,
	       cases[_i].mode, cases[_i].tag, e, worst);
	ck_assert_msg(e <= PARITY && worst <= 10 * PARITY, "%s: error %g, worst frame %g", gold, e,
		      worst);
	free(got);
	free(want);
}
END_TEST

START_TEST(test_refusals)
{
	const char *out = tmp_path("never.safetensors");
	/* a missing weights file names the path */
	const char *a1[] = { "dit-forward", "--weights", "/nonexistent/model.pt", "--model", cfgpath,
			     "--input", fix_path("forward_in.safetensors"), "--output", out, NULL };
	ck_assert_int_eq(run_cli(cli_dit_forward, a1), 1);
	/* usage errors exit 2 */
	const char *a2[] = { "stream", "--weights", weights, "--model", cfgpath, "--input",
			     fix_path("stream_in_s1.safetensors"), "--output", out, "--steps", "9",
			     NULL };
	ck_assert_int_eq(run_cli(cli_stream, a2), 2);
	const char *a3[] = { "stream", "--weights", weights, "--model", cfgpath, "--input",
			     fix_path("stream_in_s1.safetensors"), "--output", out, "--steps", "1",
			     "--mode", "fast", NULL };
	ck_assert_int_eq(run_cli(cli_stream, a3), 2);
	const char *a4[] = { "dit-forward", "--bogus", NULL };
	ck_assert_int_eq(run_cli(cli_dit_forward, a4), 2);
	/* the S=1 noise does not fit S=2 */
	const char *a5[] = { "stream", "--weights", weights, "--model", cfgpath, "--input",
			     fix_path("stream_in_s1.safetensors"), "--output", out, "--steps", "2",
			     NULL };
	ck_assert_int_eq(run_cli(cli_stream, a5), 1);
	/* weights of another shape are refused */
	struct wan_dit_config cfg;
	char err[256];
	ck_assert_msg(wan_dit_config_load(cfgpath, &cfg, err, sizeof(err)) == 0, "%s", err);
	cfg.ffn_dim = 128;
	const char *small = tmp_path("small.safetensors");
	ck_assert_msg(dit_write_weights(&cfg, small, "model.", err, sizeof(err)) == 0, "%s", err);
	const char *a6[] = { "dit-forward", "--weights", small, "--model", cfgpath, "--input",
			     fix_path("forward_in.safetensors"), "--output", out, NULL };
	ck_assert_int_eq(run_cli(cli_dit_forward, a6), 1);
	ck_assert_int_eq(access(out, F_OK), -1);
}
END_TEST

struct visit {
	size_t tensors;
	int64_t params;
	bool saw_norm3;
};

static int visit_one(void *ctx, const char *name, const float *data, size_t count)
{
	struct visit *v = ctx;
	v->tensors++;
	v->params += (int64_t)count;
	if (!strcmp(name, "blocks.1.norm3.weight")) {
		float want[1];
		dit_weight_values(name, want, 1);
		v->saw_norm3 = data[0] == want[0];
	}
	return 0;
}

START_TEST(test_model_foreach)
{
	/* every loaded tensor with its name and size, for devices that upload them */
	struct wan_dit_config cfg;
	char err[256];
	ck_assert_msg(wan_dit_config_load(cfgpath, &cfg, err, sizeof(err)) == 0, "%s", err);
	struct wan_dit_model *m = wan_dit_model_open(weights, &cfg, err, sizeof(err));
	ck_assert_msg(m != NULL, "%s", err);
	struct visit v = { 0 };
	ck_assert_int_eq(wan_dit_model_foreach(m, visit_one, &v), 0);
	ck_assert_int_eq(v.tensors, WAN_DIT_GLOBAL_TENSORS + WAN_DIT_BLOCK_TENSORS * cfg.num_layers);
	ck_assert_int_eq(v.params, wan_dit_param_count(&cfg));
	ck_assert(v.saw_norm3);
	/* --device cuda is refused clearly where no CUDA engine is built in */
	const char *out = tmp_path("never2.safetensors");
	const char *args[] = { "dit-forward", "--weights", weights, "--model", cfgpath, "--input",
			       fix_path("forward_in.safetensors"), "--output", out, "--device", "cuda",
			       NULL };
	ck_assert_int_eq(run_cli(cli_dit_forward, args), 1);
	ck_assert_int_eq(access(out, F_OK), -1);
	wan_dit_model_free(m);
}
END_TEST

START_TEST(test_prefixed_weights)
{
	/* StreamDiffusionV2 stores "model."-prefixed names: same result */
	struct wan_dit_config cfg;
	char err[256];
	ck_assert_msg(wan_dit_config_load(cfgpath, &cfg, err, sizeof(err)) == 0, "%s", err);
	const char *pw = tmp_path("prefixed.safetensors");
	ck_assert_msg(dit_write_weights(&cfg, pw, "model.", err, sizeof(err)) == 0, "%s", err);
	const char *out = tmp_path("flow2.safetensors");
	const char *args[] = { "dit-forward", "--weights", pw, "--model", cfgpath, "--input",
			       fix_path("forward_in.safetensors"), "--output", out, NULL };
	ck_assert_int_eq(run_cli(cli_dit_forward, args), 0);
	int64_t n, ng;
	float *got = load(out, "flow", &n);
	float *want = load(fix_path("forward_out.safetensors"), "flow", &ng);
	ck_assert(rel_l2(got, want, n) <= PARITY);
	free(got);
	free(want);
}
END_TEST

/* The driver in process: the events the goldens are meant to cover really happen. */
START_TEST(test_stream_events)
{
	char err[256];
	struct wan_dit_config cfg;
	ck_assert_msg(wan_dit_config_load(cfgpath, &cfg, err, sizeof(err)) == 0, "%s", err);
	struct wan_dit_model *m = wan_dit_model_open(weights, &cfg, err, sizeof(err));
	ck_assert_msg(m != NULL, "%s", err);
	const int L = 6, S = 2;
	struct dit_engine eng;
	struct dit_engine_params ep = { .max_slots = S, .kv_rows = 6 * L, .h = 4, .w = 6,
					.nctx = 1 };
	ck_assert_msg(dit_cpu_engine_open(m, &ep, &eng, err, sizeof(err)) == 0, "%s", err);
	struct dit_cpu *cpu = eng.impl;
	int64_t n, nn;
	float *lat = load(fix_path("stream_in_s2.safetensors"), "latents", &n);
	float *ctx = load(fix_path("stream_in_s2.safetensors"), "context", &n);
	float *scale = load(fix_path("stream_in_s2.safetensors"), "noise_scale", &n);
	float *noise = load(fix_path("stream_in_s2.safetensors"), "noise", &nn);
	float *want = load(fix_path("stream_out_s2_batch_sink.safetensors"), "x0", &n);
	struct dit_noise_array mn = { noise, (size_t)nn, 0 };
	ck_assert_int_eq(eng.set_context(eng.impl, ctx, err, sizeof(err)), 0);
	struct dit_stream_config sc = { .steps = S, .batch = true, .kv_frames = 6,
					.sink_frames = 3, .sink_threshold = 0.2, .channels = 16,
					.h = 4, .w = 6, .layers = cfg.num_layers };
	struct dit_stream *st = dit_stream_new(&sc, &eng, err, sizeof(err));
	ck_assert_msg(st != NULL, "%s", err);
	float chunk[2 * 384], x0[2 * 384];
	bool emitted;
	/* a chunk before the first is refused */
	ck_assert_int_eq(dit_stream_next(st, lat, 0.8, dit_noise_array_next, &mn, x0, &emitted, err,
					 sizeof(err)), -1);
	for (int c = 0; c < 16; c++)
		for (int f = 0; f < 2; f++)
			memcpy(chunk + (c * 2 + f) * 24, lat + f * 384 + c * 24, 24 * sizeof(float));
	ck_assert_msg(dit_stream_first(st, chunk, scale[0], dit_noise_array_next, &mn, x0, err,
				       sizeof(err)) == 0, "%s", err);
	int64_t l[300];
	float sinks[3 * 6 * 256];
	bool sink_queued = false, sink_replaced = false, refreshed = false;
	int emitted_n = 2;
	for (int k = 1; k < 52; k++) {
		if (k == 49)
			refreshed = dit_stream_next_frame(st) == 5;
		ck_assert_msg(dit_stream_next(st, lat + (k + 1) * 384, scale[k],
					      dit_noise_array_next, &mn, x0, &emitted, err,
					      sizeof(err)) == 0, "%s", err);
		int len = dit_kv_evict_list(dit_stream_kv(st), 0, 0, l, 300);
		if (k == 1)
			sink_queued = len > 0 && l[0] <= 3 * L;
		/* sink rows [0, 3L) of layer 0, slot 0 are final after chunk 1 unless refreshed */
		const float *kc = dit_cpu_cache_k(cpu, 0, 0);
		if (k == 4)
			memcpy(sinks, kc, sizeof(sinks));
		if (k > 4 && memcmp(sinks, kc, sizeof(sinks)))
			sink_replaced = true;
		ck_assert_int_eq(emitted, k >= S);
		if (emitted) {
			ck_assert_msg(rel_l2(x0, want + emitted_n * 384, 384) <= 10 * PARITY,
				      "chunk %d", k);
			emitted_n++;
		}
	}
	ck_assert_int_eq(emitted_n, 52);
	ck_assert_msg(sink_queued, "the empty third sink was not queued at the first chunk");
	ck_assert_msg(sink_replaced, "no sink frame was replaced");
	ck_assert_msg(refreshed, "no RoPE refresh at chunk 49");
	ck_assert_uint_eq(mn.used, mn.count);
	dit_stream_free(st);
	eng.destroy(eng.impl);
	wan_dit_model_free(m);
	free(lat);
	free(ctx);
	free(scale);
	free(noise);
	free(want);
}
END_TEST

/* ---- dit_stream_prepare: the calls it runs are exactly the stream's, and it leaves nothing
 * behind ---- */

/* A pass-through engine that records each forward's shape: slots, frames, whether the
 * adaptive sink decides it, and the rows each slot attends (what a device plans for). */
struct call_shape {
	int slots, frames, sink, kv[8];
};

struct rec_eng {
	struct dit_engine in; /* first member: wrap_* read it through impl */
	struct call_shape seen[64];
	int nseen, calls;
};

static int rec_forward(void *impl, struct dit_kv *kv, int nslots, int frames, const float *x,
		       const int64_t *t, const int64_t *c_start, float *flow, char *err,
		       size_t errlen)
{
	struct rec_eng *r = impl;
	struct call_shape c = { .slots = nslots, .frames = frames };
	int n = frames * dit_kv_config(kv)->tokens_per_frame, i;

	c.sink = dit_kv_sink_check_needed(kv, n);
	for (int b = 0; b < nslots && b < 8; b++)
		c.kv[b] = dit_kv_attn_len(kv, 0, b, c_start[b], n);
	for (i = 0; i < r->nseen && memcmp(&r->seen[i], &c, sizeof(c)); i++)
		;
	if (i == r->nseen && r->nseen < 64)
		r->seen[r->nseen++] = c;
	r->calls++;
	return r->in.forward(r->in.impl, kv, nslots, frames, x, t, c_start, flow, err, errlen);
}

/* Pass-throughs for a wrapper engine whose struct starts with the wrapped engine (rec_eng,
 * split_eng): only forward (and the split hooks) differ between the wrappers. */
static int wrap_expand(void *impl, int slots, char *err, size_t errlen)
{
	struct dit_engine *in = impl;
	return in->expand(in->impl, slots, err, errlen);
}

static void wrap_reset(void *impl)
{
	struct dit_engine *in = impl;
	in->reset(in->impl);
}

static int wrap_set_context(void *impl, const float *ctx, char *err, size_t errlen)
{
	struct dit_engine *in = impl;
	return in->set_context(in->impl, ctx, err, errlen);
}

/* 1 when every shape of A is in B and back. */
static int same_shapes(const struct rec_eng *a, const struct rec_eng *b)
{
	for (int i = 0; i < a->nseen; i++) {
		int j = 0;
		while (j < b->nseen && memcmp(&a->seen[i], &b->seen[j], sizeof(a->seen[i])))
			j++;
		if (j == b->nseen)
			return 0;
	}
	return a->nseen == b->nseen;
}

static const struct {
	int steps;
	bool batch;
	double thr;
} prep_cases[] = { { 2, true, 0.2 }, { 2, false, 0.2 }, { 1, true, -1 }, { 3, true, 0.2 } };

/* Runs chunk 0 and CHUNKS-1 later chunks of the fixture input; X0 gets every result. */
static void run_chunks(struct dit_stream *st, const float *lat, const float *scale,
		       struct dit_noise_array *mn, int chunks, float *x0)
{
	char err[256];
	float chunk[2 * 384];
	bool emitted;

	mn->used = 0;
	for (int c = 0; c < 16; c++)
		for (int f = 0; f < 2; f++)
			memcpy(chunk + (c * 2 + f) * 24, lat + f * 384 + c * 24, 24 * sizeof(float));
	ck_assert_msg(dit_stream_first(st, chunk, scale[0], dit_noise_array_next, mn, x0, err,
				       sizeof(err)) == 0, "%s", err);
	for (int k = 1; k < chunks; k++)
		ck_assert_msg(dit_stream_next(st, lat + (k + 1) * 384, scale[k], dit_noise_array_next,
					      mn, x0 + (k + 1) * 384, &emitted, err, sizeof(err)) == 0,
			      "chunk %d: %s", k, err);
}

/* What the prepare and split tests share for prep_cases[I]: the fixture model and its
 * stream input (stream_in_s2), the engine and stream configuration, and two x0 buffers. */
enum { PREP_CHUNKS = 14, PREP_KVF = 6 };
struct prep_fixture {
	struct wan_dit_config cfg;
	struct wan_dit_model *m;
	struct dit_engine_params ep;
	struct dit_stream_config sc;
	float *lat, *ctx, *scale, *noise;
	struct dit_noise_array mn;
	size_t nx; /* floats of each x0 buffer */
	float *x0a, *x0b;
};

static void prep_fixture_open(struct prep_fixture *f, int i)
{
	char err[256];
	int64_t n, nn;
	const int S = prep_cases[i].steps;
	const bool batch = prep_cases[i].batch;

	memset(f, 0, sizeof(*f));
	ck_assert_msg(wan_dit_config_load(cfgpath, &f->cfg, err, sizeof(err)) == 0, "%s", err);
	f->m = wan_dit_model_open(weights, &f->cfg, err, sizeof(err));
	ck_assert_msg(f->m != NULL, "%s", err);
	f->ep = (struct dit_engine_params){ .max_slots = batch ? S : 1, .kv_rows = PREP_KVF * 6, .h = 4,
					    .w = 6, .nctx = 1 };
	f->sc = (struct dit_stream_config){ .steps = S, .batch = batch, .kv_frames = PREP_KVF,
					    .sink_frames = 3, .sink_threshold = prep_cases[i].thr,
					    .channels = 16, .h = 4, .w = 6, .layers = f->cfg.num_layers };
	f->lat = load(fix_path("stream_in_s2.safetensors"), "latents", &n);
	f->ctx = load(fix_path("stream_in_s2.safetensors"), "context", &n);
	f->scale = load(fix_path("stream_in_s2.safetensors"), "noise_scale", &n);
	f->noise = load(fix_path("stream_in_s2.safetensors"), "noise", &nn);
	f->mn = (struct dit_noise_array){ f->noise, (size_t)nn, 0 };
	f->nx = (size_t)(PREP_CHUNKS + 1) * 384;
	f->x0a = calloc(f->nx, sizeof(float));
	f->x0b = calloc(f->nx, sizeof(float));
	ck_assert_ptr_nonnull(f->x0a);
	ck_assert_ptr_nonnull(f->x0b);
}

static void prep_fixture_close(struct prep_fixture *f)
{
	wan_dit_model_free(f->m);
	free(f->lat);
	free(f->ctx);
	free(f->scale);
	free(f->noise);
	free(f->x0a);
	free(f->x0b);
}

START_TEST(test_stream_prepare)
{
	char err[256];
	struct prep_fixture f;
	prep_fixture_open(&f, _i);
	const int S = prep_cases[_i].steps, chunks = PREP_CHUNKS, kvf = PREP_KVF;
	const bool batch = prep_cases[_i].batch;
	struct rec_eng r = { 0 }, plain, prep;
	ck_assert_msg(dit_cpu_engine_open(f.m, &f.ep, &r.in, err, sizeof(err)) == 0, "%s", err);
	struct dit_engine eng = { .impl = &r, .forward = rec_forward, .expand = wrap_expand,
				  .reset = wrap_reset, .set_context = wrap_set_context };
	ck_assert_int_eq(eng.set_context(eng.impl, f.ctx, err, sizeof(err)), 0);
	struct dit_stream *st = dit_stream_new(&f.sc, &eng, err, sizeof(err));
	ck_assert_msg(st != NULL, "%s", err);

	/* a stream without prepare: its call shapes */
	run_chunks(st, f.lat, f.scale, &f.mn, chunks, f.x0a);
	plain = r;
	/* prepare runs those shapes and no others: the first chunk's S calls, then the later
	 * chunks dit_stream_prepare_chunks says (S calls each without the stream batch) */
	int later = dit_stream_prepare_chunks(&f.sc);
	ck_assert_int_eq(later, batch ? S + kvf - 3 + 1 : kvf - 2 + 1);
	r.nseen = r.calls = 0;
	ck_assert_msg(dit_stream_prepare(st, err, sizeof(err)) == 0, "%s", err);
	prep = r;
	ck_assert_int_eq(prep.calls, S + (batch ? 1 : S) * later);
	ck_assert_msg(same_shapes(&plain, &prep), "prepare ran %d call shapes, the stream %d",
		      prep.nseen, plain.nseen);
	/* the documented count (dit_stream.h): the first chunk, then batch S + kv_frames - 3
	 * later shapes (3 frames everywhere, the ragged warm-up, the full cache), no-batch
	 * kv_frames - 2 (3 .. kv_frames frames) */
	ck_assert_int_eq(plain.nseen, 1 + (batch ? S + kvf - 3 : kvf - 2));
	for (int i = 0; i < plain.nseen; i++)
		ck_assert_int_eq(plain.seen[i].sink, plain.seen[i].frames == 1 && prep_cases[_i].thr > -1);
	/* afterwards the stream is new: not started, one cache slot, empty ring */
	bool emitted;
	ck_assert_int_eq(dit_stream_next(st, f.lat, 0.5, dit_noise_array_next, &f.mn, f.x0b, &emitted,
					 err, sizeof(err)), -1);
	ck_assert_int_eq(dit_kv_slots(dit_stream_kv(st)), 1);
	ck_assert_int_eq(dit_kv_local_end(dit_stream_kv(st), 0, 0), 0);
	ck_assert_int_eq(dit_kv_sink_refreshes(dit_stream_kv(st)), 0);
	ck_assert_int_eq(dit_stream_next_frame(st), 0);
	/* and gives bitwise the same results as the stream without prepare */
	run_chunks(st, f.lat, f.scale, &f.mn, chunks, f.x0b);
	ck_assert_msg(memcmp(f.x0a, f.x0b, f.nx * sizeof(float)) == 0,
		      "the stream after prepare differs");
	dit_stream_free(st);
	r.in.destroy(r.in.impl);
	prep_fixture_close(&f);
}
END_TEST

/* ---- the split forward: forward_begin / forward_end and host_alloc (dit_stream.h) ---- */

/* The C reference behind the optional hooks: begin only records the call (the forward runs
 * in end, so X must really stay unchanged in between and the stream's draws really happen
 * between the two), end runs it and computes x0; host memory is counted. */
struct split_eng {
	struct dit_engine in; /* first member: wrap_* read it through impl */
	struct dit_kv *kv;
	int nslots, frames;
	const float *x;
	int64_t t[16], c_start[8];
	float *flow;
	int pending, begun, ended, allocs, frees, draws_at_begin, draws_seen;
	const struct dit_noise_array *mn; /* borrowed: to see draws made between begin and end */
};

static int split_forward(void *impl, struct dit_kv *kv, int nslots, int frames, const float *x,
			 const int64_t *t, const int64_t *c_start, float *flow, char *err,
			 size_t errlen)
{
	struct split_eng *e = impl;
	return e->in.forward(e->in.impl, kv, nslots, frames, x, t, c_start, flow, err, errlen);
}

static int split_begin(void *impl, struct dit_kv *kv, int nslots, int frames, const float *x,
		       const int64_t *t, const int64_t *c_start, char *err, size_t errlen)
{
	struct split_eng *e = impl;
	ck_assert_int_eq(e->pending, 0);
	ck_assert_int_le(nslots * frames, 16);
	e->kv = kv;
	e->nslots = nslots;
	e->frames = frames;
	e->x = x;
	memcpy(e->t, t, (size_t)nslots * frames * sizeof(*t));
	memcpy(e->c_start, c_start, (size_t)nslots * sizeof(*c_start));
	e->pending = 1;
	e->begun++;
	e->draws_at_begin = e->mn ? (int)e->mn->used : 0;
	return 0;
}

static int split_end(void *impl, const double *sigma, float *out, char *err, size_t errlen)
{
	struct split_eng *e = impl;
	size_t per = (size_t)e->frames * 16 * 24;
	ck_assert_int_eq(e->pending, 1);
	e->pending = 0;
	e->ended++;
	e->draws_seen += e->mn && (int)e->mn->used > e->draws_at_begin;
	if (e->in.forward(e->in.impl, e->kv, e->nslots, e->frames, e->x, e->t, e->c_start, e->flow,
			  err, errlen))
		return -1;
	for (int b = 0; b < e->nslots; b++)
		for (size_t i = 0; i < per; i++)
			out[b * per + i] = (float)((double)e->x[b * per + i] -
						   sigma[b] * (double)e->flow[b * per + i]);
	return 0;
}

static void *split_alloc(void *impl, size_t bytes)
{
	struct split_eng *e = impl;
	e->allocs++;
	return calloc(1, bytes);
}

static void split_free(void *impl, void *p)
{
	struct split_eng *e = impl;
	e->frees++;
	free(p);
}

/* A noise source that fails at draw FAIL_AT (counting from 0) and hands out zeros before. */
struct failing_noise {
	int drawn, fail_at;
};

static int failing_next(void *ctx, float *dst, size_t n, char *err, size_t errlen)
{
	struct failing_noise *f = ctx;
	if (f->drawn++ == f->fail_at) {
		snprintf(err, errlen, "the camera went away");
		return -1;
	}
	memset(dst, 0, n * sizeof(float));
	return 0;
}

/* With the hooks a stream gives bitwise the x0 of the plain forward, draws the same noise in
 * the same order (some of it between begin and end), pairs every begin with an end (also
 * when a draw between them fails), and frees all the host memory it took from the engine;
 * WAN_STREAM_HOST=1 ignores the hooks. */
START_TEST(test_stream_split)
{
	char err[256];
	struct prep_fixture f;
	prep_fixture_open(&f, _i);
	const int S = prep_cases[_i].steps, chunks = PREP_CHUNKS;
	const bool batch = prep_cases[_i].batch;
	struct dit_engine plain;
	struct split_eng se = { 0 };
	ck_assert_msg(dit_cpu_engine_open(f.m, &f.ep, &plain, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(dit_cpu_engine_open(f.m, &f.ep, &se.in, err, sizeof(err)) == 0, "%s", err);
	se.flow = calloc(16 * 16 * 24, sizeof(float));
	ck_assert_ptr_nonnull(se.flow);
	struct dit_engine split = { .impl = &se, .forward = split_forward, .expand = wrap_expand,
				    .reset = wrap_reset, .set_context = wrap_set_context,
				    .forward_begin = split_begin, .forward_end = split_end,
				    .host_alloc = split_alloc, .host_free = split_free };
	ck_assert_int_eq(plain.set_context(plain.impl, f.ctx, err, sizeof(err)), 0);
	ck_assert_int_eq(split.set_context(split.impl, f.ctx, err, sizeof(err)), 0);

	struct dit_stream *st = dit_stream_new(&f.sc, &plain, err, sizeof(err));
	ck_assert_msg(st != NULL, "%s", err);
	run_chunks(st, f.lat, f.scale, &f.mn, chunks, f.x0a);
	size_t used_plain = f.mn.used;
	dit_stream_free(st);

	se.mn = &f.mn;
	st = dit_stream_new(&f.sc, &split, err, sizeof(err));
	ck_assert_msg(st != NULL, "%s", err);
	ck_assert_int_gt(se.allocs, 0);
	run_chunks(st, f.lat, f.scale, &f.mn, chunks, f.x0b);
	ck_assert_msg(memcmp(f.x0a, f.x0b, f.nx * sizeof(float)) == 0, "the split forward changed x0");
	ck_assert_uint_eq(f.mn.used, used_plain);
	ck_assert_int_eq(se.begun, S + (batch ? 1 : S) * (chunks - 1));
	ck_assert_int_eq(se.ended, se.begun);
	if (S > 1) /* the re-noising draws were made while the "device" ran */
		ck_assert_int_gt(se.draws_seen, 0);

	/* a draw that fails between begin and end: the call fails with its message, the
	 * forward is still ended, and the stream must start again */
	struct failing_noise fn = { 0, S > 1 ? 2 + 2 * (S - 1) + 1 : -1 };
	bool emitted;
	se.mn = NULL;
	if (S > 1) {
		ck_assert_int_eq(dit_stream_first(st, f.lat, 0.7, failing_next, &fn, f.x0b, err,
						  sizeof(err)), 0);
		ck_assert_int_eq(dit_stream_next(st, f.lat, 0.5, failing_next, &fn, f.x0b, &emitted, err,
						 sizeof(err)), -1);
		ck_assert_str_eq(err, "the camera went away");
		ck_assert_int_eq(se.pending, 0);
		ck_assert_int_eq(se.ended, se.begun);
		ck_assert_int_eq(dit_stream_next(st, f.lat, 0.5, failing_next, &fn, f.x0b, &emitted, err,
						 sizeof(err)), -1);
	}
	dit_stream_free(st);
	ck_assert_int_eq(se.frees, se.allocs);

	/* WAN_STREAM_HOST=1: the hooks are not used, the results are the same */
	int begun = se.begun, allocs = se.allocs;
	setenv("WAN_STREAM_HOST", "1", 1);
	st = dit_stream_new(&f.sc, &split, err, sizeof(err));
	unsetenv("WAN_STREAM_HOST");
	ck_assert_msg(st != NULL, "%s", err);
	run_chunks(st, f.lat, f.scale, &f.mn, chunks, f.x0b);
	ck_assert_msg(memcmp(f.x0a, f.x0b, f.nx * sizeof(float)) == 0, "the host path changed x0");
	ck_assert_int_eq(se.begun, begun);
	ck_assert_int_eq(se.allocs, allocs);
	dit_stream_free(st);

	plain.destroy(plain.impl);
	se.in.destroy(se.in.impl);
	free(se.flow);
	prep_fixture_close(&f);
}
END_TEST

int main(void)
{
	const char *src = getenv("top_srcdir");
	snprintf(fixdir, sizeof(fixdir), "%s/tests/fixtures/wan/dit", src ? src : ".");
	snprintf(cfgpath, sizeof(cfgpath), "%s/config.json", fixdir);
	if (access(cfgpath, R_OK)) {
		fprintf(stderr, "check_dit: fixtures not found at %s\n", fixdir);
		return 77;
	}
	strcpy(tmpdir, "/tmp/check_dit.XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	snprintf(weights, sizeof(weights), "%s/weights.safetensors", tmpdir);
	struct wan_dit_config cfg;
	char err[256];
	if (wan_dit_config_load(cfgpath, &cfg, err, sizeof(err))) {
		fprintf(stderr, "check_dit: %s\n", err);
		return 1;
	}

	Suite *s = suite_create("dit");
	TCase *tc = tcase_create("golden");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_forward_golden);
	tcase_add_loop_test(tc, test_stream_golden, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_test(tc, test_refusals);
	tcase_add_test(tc, test_prefixed_weights);
	tcase_add_test(tc, test_stream_events);
	tcase_add_loop_test(tc, test_stream_prepare, 0, (int)(sizeof(prep_cases) / sizeof(prep_cases[0])));
	tcase_add_test(tc, test_model_foreach);
	tcase_add_loop_test(tc, test_stream_split, 0, (int)(sizeof(prep_cases) / sizeof(prep_cases[0])));
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	int failed = 1;
	if (dit_write_weights(&cfg, weights, "", err, sizeof(err)))
		fprintf(stderr, "check_dit: %s\n", err);
	else {
		srunner_run_all(sr, CK_NORMAL);
		failed = srunner_ntests_failed(sr);
	}
	srunner_free(sr);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "check_dit: could not remove %s\n", tmpdir);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
