/* cli_dit.c: heru-wan dit-forward (one DiT forward with an empty cache) and heru-wan stream
 * (the StreamDiffusionV2 streaming denoiser over a latent sequence with injected noise).
 * Tensors go in and out as safetensors; see the README section "heru-wan dit-forward and
 * stream" for the exact semantics. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dit_model.h"
#include "dit_stream.h"
#include "wan_config.h"
#include "wt_file.h"
#include "plugins/wan/wan_clock.h"

struct dit_args {
	const char *weights, *model, *input, *output, *device, *mode;
	int steps, kv_frames, sink_frames;
	double sink_threshold;
	bool per_call, no_prepare;
};

enum { OPT_WEIGHTS = 1000, OPT_MODEL, OPT_INPUT, OPT_OUTPUT, OPT_DEVICE, OPT_STEPS, OPT_MODE,
       OPT_KV, OPT_SINK, OPT_THR, OPT_PER_CALL, OPT_NO_PREPARE, OPT_HELP };

static const struct option dit_opts[] = {
	{ "weights", required_argument, NULL, OPT_WEIGHTS },
	{ "model", required_argument, NULL, OPT_MODEL },
	{ "input", required_argument, NULL, OPT_INPUT },
	{ "output", required_argument, NULL, OPT_OUTPUT },
	{ "device", required_argument, NULL, OPT_DEVICE },
	{ "steps", required_argument, NULL, OPT_STEPS },
	{ "mode", required_argument, NULL, OPT_MODE },
	{ "kv-frames", required_argument, NULL, OPT_KV },
	{ "sink-frames", required_argument, NULL, OPT_SINK },
	{ "sink-threshold", required_argument, NULL, OPT_THR },
	{ "per-call", no_argument, NULL, OPT_PER_CALL },
	{ "no-prepare", no_argument, NULL, OPT_NO_PREPARE },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

/* Parses the shared options; STREAM enables the stream-only ones. Returns 0, 1 for --help,
 * or 2 after printing a usage error. */
static int parse_args(int argc, char **argv, bool stream, struct dit_args *a, const char *cmd)
{
	memset(a, 0, sizeof(*a));
	a->device = "cpu";
	a->mode = "batch";
	a->steps = 0;
	a->kv_frames = 6;
	a->sink_frames = 3;
	a->sink_threshold = 0.2;
	optind = 1;
	opterr = 0;
	int o;
	while ((o = getopt_long(argc, argv, "", dit_opts, NULL)) != -1) {
		switch (o) {
		case OPT_WEIGHTS: a->weights = optarg; break;
		case OPT_MODEL: a->model = optarg; break;
		case OPT_INPUT: a->input = optarg; break;
		case OPT_OUTPUT: a->output = optarg; break;
		case OPT_DEVICE: a->device = optarg; break;
		case OPT_HELP: return 1;
		case OPT_PER_CALL:
		case OPT_NO_PREPARE:
			if (!stream)
				goto unknown;
			if (o == OPT_PER_CALL)
				a->per_call = true;
			else
				a->no_prepare = true;
			break;
		case OPT_STEPS:
		case OPT_MODE:
		case OPT_KV:
		case OPT_SINK:
		case OPT_THR:
			if (!stream)
				goto unknown;
			if (o == OPT_STEPS && cli_parse_int(optarg, 1, WAN_MAX_STEPS, &a->steps)) {
				fprintf(stderr, "heru-wan %s: --steps must be 1..%d\n", cmd, WAN_MAX_STEPS);
				return 2;
			}
			if (o == OPT_MODE)
				a->mode = optarg;
			if (o == OPT_KV && cli_parse_int(optarg, 4, 48, &a->kv_frames)) {
				fprintf(stderr, "heru-wan %s: --kv-frames must be 4..48\n", cmd);
				return 2;
			}
			if (o == OPT_SINK && cli_parse_int(optarg, 0, 47, &a->sink_frames)) {
				fprintf(stderr, "heru-wan %s: --sink-frames must be 0..47\n", cmd);
				return 2;
			}
			if (o == OPT_THR) {
				char *end;
				a->sink_threshold = strtod(optarg, &end);
				if (!*optarg || *end || a->sink_threshold < -1 || a->sink_threshold > 1) {
					fprintf(stderr, "heru-wan %s: --sink-threshold must be -1..1 "
						"(-1 turns the adaptive sink off)\n", cmd);
					return 2;
				}
			}
			break;
		default:
		unknown:
			fprintf(stderr, "heru-wan %s: unknown or incomplete option '%s'\n", cmd,
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "heru-wan %s: unexpected argument '%s'\n", cmd, argv[optind]);
		return 2;
	}
	if (!a->weights || !a->model || !a->input || !a->output || (stream && !a->steps)) {
		fprintf(stderr, "heru-wan %s: --weights, --model, --input, --output%s are required\n",
			cmd, stream ? ", --steps" : "");
		return 2;
	}
	if (strcmp(a->device, "cpu") && strcmp(a->device, "cuda")) {
		fprintf(stderr, "heru-wan %s: --device must be cpu or cuda\n", cmd);
		return 2;
	}
	if (stream && strcmp(a->mode, "batch") && strcmp(a->mode, "nobatch")) {
		fprintf(stderr, "heru-wan %s: --mode must be batch or nobatch\n", cmd);
		return 2;
	}
	if (stream && a->sink_frames >= a->kv_frames) {
		fprintf(stderr, "heru-wan %s: --sink-frames must be below --kv-frames\n", cmd);
		return 2;
	}
	return 0;
}

/* Reads float tensor NAME of IN whose rank is NDIM; its shape goes to SHAPE. new. */
static float *read_any_f32(const struct wt_file *in, const char *name, int ndim, int64_t *shape,
			   char *err, size_t errlen)
{
	const struct wt_tensor *t = wt_find(in, name);
	if (!t) {
		snprintf(err, errlen, "'%s' has no tensor '%s'", wt_path(in), name);
		return NULL;
	}
	if (t->ndim != ndim) {
		snprintf(err, errlen, "'%s': tensor '%s' must have %d dimensions, has %d",
			 wt_path(in), name, ndim, t->ndim);
		return NULL;
	}
	for (int i = 0; i < ndim; i++) {
		if (t->shape[i] < 1 || t->shape[i] > (1 << 20)) {
			snprintf(err, errlen, "'%s': tensor '%s' has an unusable shape", wt_path(in),
				 name);
			return NULL;
		}
		shape[i] = t->shape[i];
	}
	return wt_load_f32(in, name, ndim, shape, err, errlen);
}

static int write_one(const char *path, const char *name, int ndim, const int64_t *shape,
		     const float *data, char *err, size_t errlen)
{
	struct wt_writer *w = wt_writer_new();
	int rc = -1;
	if (!w) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (wt_writer_add(w, name, WT_F32, ndim, shape, data, err, errlen) == 0 &&
	    wt_writer_save(w, path, err, errlen) == 0)
		rc = 0;
	wt_writer_free(w);
	return rc;
}

static int check_device(const char *cmd, const char *device)
{
#ifndef HERU_DIT_CUDA_ENGINE
	if (strcmp(device, "cpu")) {
		fprintf(stderr, "heru-wan %s: --device %s is not available in this build of "
			"heru-wan (it has no CUDA DiT engine); use --device cpu\n", cmd, device);
		return -1;
	}
#endif
	return 0;
}

/* parse_args, the usage text it calls for, and check_device. Returns -1 to go on, else the
 * exit status: 0 after --help, 2 after a usage error, 1 for a device this build lacks. */
static int args_or_exit(int argc, char **argv, bool stream, struct dit_args *a, const char *cmd,
			void (*usage)(FILE *))
{
	int pr = parse_args(argc, argv, stream, a, cmd);
	if (pr == 1) {
		usage(stdout);
		return 0;
	}
	if (pr) {
		usage(stderr);
		return 2;
	}
	if (check_device(cmd, a->device))
		return 1;
	return -1;
}

static int open_engine(const char *device, const struct wan_dit_model *m,
		       const struct dit_engine_params *p, struct dit_engine *e, char *err,
		       size_t errlen)
{
#ifdef HERU_DIT_CUDA_ENGINE
	if (!strcmp(device, "cuda"))
		return dit_cuda_engine_open(m, p, e, err, errlen);
#endif
	return dit_cpu_engine_open(m, p, e, err, errlen);
}

/* ---- dit-forward ---- */

static void forward_usage(FILE *out)
{
	fprintf(out,
		"usage: heru-wan dit-forward --weights W --model 1.3b|14b|CONFIG.json --input IN\n"
		"                            --output OUT [--device cpu|cuda]\n"
		"  IN   safetensors with x f32 [B,16,F,h,w], t i64 [B,F], context f32 [B,512,text_dim]\n"
		"  OUT  safetensors with flow f32 [B,16,F,h,w]: one forward with an empty KV cache\n"
		"       (positions from frame 0, the chunk attends to itself)\n");
}

int cli_dit_forward(int argc, char **argv)
{
	struct dit_args a;
	char err[512];
	struct wan_dit_config cfg;
	struct wt_file *in = NULL;
	struct wan_dit_model *m = NULL;
	struct dit_engine eng = { 0 };
	struct dit_kv *kv = NULL;
	float *x = NULL, *ctx = NULL, *flow = NULL;
	int64_t *t = NULL, *starts = NULL;
	int rc = 1;

	int ex = args_or_exit(argc, argv, false, &a, "dit-forward", forward_usage);
	if (ex >= 0)
		return ex;
	if (wan_dit_config_load(a.model, &cfg, err, sizeof(err)))
		goto fail;
	in = wt_open(a.input, err, sizeof(err));
	if (!in)
		goto fail;
	int64_t xs[5], cs[3], ts[2];
	x = read_any_f32(in, "x", 5, xs, err, sizeof(err));
	if (!x)
		goto fail;
	ctx = read_any_f32(in, "context", 3, cs, err, sizeof(err));
	if (!ctx)
		goto fail;
	int B = (int)xs[0], F = (int)xs[2], h = (int)xs[3], w = (int)xs[4];
	if (xs[1] != cfg.in_dim || B > 64 || F > 48 || h % 2 || w % 2 || h > 2048 || w > 2048) {
		snprintf(err, sizeof(err), "'%s': x must be [B<=64, %d, F<=48, h, w] with h, w even "
			 "and <= 2048", a.input, cfg.in_dim);
		goto fail;
	}
	if (cs[0] != B || cs[1] != cfg.text_len || cs[2] != cfg.text_dim) {
		snprintf(err, sizeof(err), "'%s': context must be [%d, %d, %d]", a.input, B,
			 cfg.text_len, cfg.text_dim);
		goto fail;
	}
	ts[0] = B;
	ts[1] = F;
	t = malloc(sizeof(int64_t) * B * F);
	starts = calloc((size_t)B, sizeof(int64_t));
	if (!t || !starts) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	if (wt_read_i64(in, "t", 2, ts, t, err, sizeof(err)))
		goto fail;
	for (int i = 0; i < B * F; i++)
		if (t[i] < 0 || t[i] > 1000) {
			snprintf(err, sizeof(err), "'%s': timesteps must be 0..1000, got %lld", a.input,
				 (long long)t[i]);
			goto fail;
		}
	m = wan_dit_model_open(a.weights, &cfg, err, sizeof(err));
	if (!m)
		goto fail;
	int L = (h / 2) * (w / 2), kvf = F > 6 ? F : 6;
	struct dit_kv_config kc = { .tokens_per_frame = L, .kv_frames = kvf, .sink_frames = 0,
				    .sink_threshold = -1, .total_steps = 1,
				    .layers = cfg.num_layers, .max_slots = B };
	kv = dit_kv_new(&kc, err, sizeof(err));
	if (!kv || dit_kv_expand(kv, B, err, sizeof(err)))
		goto fail;
	struct dit_engine_params ep = { .max_slots = B, .kv_rows = kvf * L, .h = h, .w = w,
					.nctx = B };
	if (open_engine(a.device, m, &ep, &eng, err, sizeof(err)) ||
	    eng.set_context(eng.impl, ctx, err, sizeof(err)))
		goto fail;
	size_t on = (size_t)B * cfg.out_dim * F * h * w;
	flow = malloc(on * sizeof(float));
	if (!flow) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	if (eng.forward(eng.impl, kv, B, F, x, t, starts, flow, err, sizeof(err)))
		goto fail;
	int64_t fs[5] = { B, cfg.out_dim, F, h, w };
	if (write_one(a.output, "flow", 5, fs, flow, err, sizeof(err)))
		goto fail;
	rc = 0;
	goto done;
fail:
	fprintf(stderr, "heru-wan dit-forward: %s\n", err);
done:
	free(x);
	free(ctx);
	free(flow);
	free(t);
	free(starts);
	if (eng.destroy)
		eng.destroy(eng.impl);
	dit_kv_free(kv);
	wan_dit_model_free(m);
	if (in)
		wt_close(in);
	return rc;
}

/* ---- stream ---- */

static void stream_usage(FILE *out)
{
	fprintf(out,
		"usage: heru-wan stream --weights W --model 1.3b|14b|CONFIG.json --input IN --output OUT\n"
		"                       --steps S --mode batch|nobatch [--kv-frames 6] [--sink-frames 3]\n"
		"                       [--sink-threshold 0.2] [--device cpu|cuda] [--per-call]\n"
		"                       [--no-prepare]\n"
		"  IN   latents f32 [C+1,16,h,w] (chunk 0 = 2 frames, then 1 per chunk),\n"
		"       context f32 [1,512,text_dim], noise_scale f32 [C] (strength per chunk),\n"
		"       noise f32 [S*(C+1),16,h,w] (every Gaussian draw, one latent frame at a time)\n"
		"  OUT  x0 f32 [N',16,h,w]: chunk 0's 2 frames, then one per emitted chunk\n"
		"       (N' = C+1 in nobatch mode, C-S+2 in batch mode)\n"
		"  --sink-threshold -1 turns the adaptive sink refresh off\n"
		"  --device cuda first runs every call shape of the mode once (dit_stream_prepare:\n"
		"       plans, tunes and graph-captures them), untimed; --no-prepare skips that\n"
		"  --per-call prints each chunk's wall time (ms) and the prepare time on stderr\n");
}

/* Checks the shapes of the stream inputs against each other, the config and --steps. */
static int stream_check_inputs(const struct dit_args *a, const struct wan_dit_config *cfg,
			       const int64_t ls[4], const int64_t cs[3], const int64_t ss[1],
			       const int64_t ns[4], const float *scale, char *err, size_t errlen)
{
	const int S = a->steps;
	const int64_t C = ss[0], h = ls[2], w = ls[3];
	if (ls[1] != cfg->in_dim || h % 2 || w % 2 || h > 2048 || w > 2048) {
		snprintf(err, errlen, "'%s': latents must be [N, %d, h, w] with h, w even and "
			 "<= 2048", a->input, cfg->in_dim);
		return -1;
	}
	if (ls[0] != C + 1) {
		snprintf(err, errlen, "'%s': latents has %lld frames but noise_scale has %lld "
			 "chunks (need %lld frames: 2 for chunk 0, then 1 per chunk)", a->input,
			 (long long)ls[0], (long long)C, (long long)C + 1);
		return -1;
	}
	if (cs[0] != 1 || cs[1] != cfg->text_len || cs[2] != cfg->text_dim) {
		snprintf(err, errlen, "'%s': context must be [1, %d, %d]", a->input, cfg->text_len,
			 cfg->text_dim);
		return -1;
	}
	if (ns[0] != S * (C + 1) || ns[1] != cfg->in_dim || ns[2] != h || ns[3] != w) {
		snprintf(err, errlen, "'%s': noise must be [%lld, %d, %lld, %lld] (S*(C+1) frames)",
			 a->input, (long long)(S * (C + 1)), cfg->in_dim, (long long)h, (long long)w);
		return -1;
	}
	for (int64_t k = 0; k < C; k++)
		if (!wan_noise_scale_valid(scale[k])) {
			snprintf(err, errlen, "'%s': noise_scale[%lld] = %g is not in 0.1..1", a->input,
				 (long long)k, scale[k]);
			return -1;
		}
	return 0;
}

int cli_stream(int argc, char **argv)
{
	struct dit_args a;
	char err[512];
	struct wan_dit_config cfg;
	struct wt_file *in = NULL;
	struct wan_dit_model *m = NULL;
	struct dit_engine eng = { 0 };
	struct dit_stream *st = NULL;
	float *lat = NULL, *ctx = NULL, *scale = NULL, *noise = NULL, *out = NULL;
	float *chunk = NULL, *res = NULL;
	int rc = 1;

	int ex = args_or_exit(argc, argv, true, &a, "stream", stream_usage);
	if (ex >= 0)
		return ex;
	if (wan_dit_config_load(a.model, &cfg, err, sizeof(err)))
		goto fail;
	in = wt_open(a.input, err, sizeof(err));
	if (!in)
		goto fail;
	int64_t ls[4], cs[3], ss[1], ns[4];
	if (!(lat = read_any_f32(in, "latents", 4, ls, err, sizeof(err))) ||
	    !(ctx = read_any_f32(in, "context", 3, cs, err, sizeof(err))) ||
	    !(scale = read_any_f32(in, "noise_scale", 1, ss, err, sizeof(err))) ||
	    !(noise = read_any_f32(in, "noise", 4, ns, err, sizeof(err))))
		goto fail;
	const int S = a.steps, C = (int)ss[0], h = (int)ls[2], w = (int)ls[3];
	const bool batch = !strcmp(a.mode, "batch");
	if (stream_check_inputs(&a, &cfg, ls, cs, ss, ns, scale, err, sizeof(err)))
		goto fail;
	m = wan_dit_model_open(a.weights, &cfg, err, sizeof(err));
	if (!m)
		goto fail;
	int L = (h / 2) * (w / 2);
	struct dit_engine_params ep = { .max_slots = batch ? S : 1, .kv_rows = a.kv_frames * L,
					.h = h, .w = w, .nctx = 1 };
	if (open_engine(a.device, m, &ep, &eng, err, sizeof(err)) ||
	    eng.set_context(eng.impl, ctx, err, sizeof(err)))
		goto fail;
	struct dit_stream_config sc = { .steps = S, .batch = batch, .kv_frames = a.kv_frames,
					.sink_frames = a.sink_frames,
					.sink_threshold = a.sink_threshold,
					.channels = cfg.in_dim, .h = h, .w = w,
					.layers = cfg.num_layers };
	st = dit_stream_new(&sc, &eng, err, sizeof(err));
	if (!st)
		goto fail;
	/* on the GPU: every call shape of the mode planned, tuned and captured before chunk 0 */
	if (!strcmp(a.device, "cuda") && !a.no_prepare) {
		double t0 = wan_now_ms();

		if (dit_stream_prepare(st, err, sizeof(err)))
			goto fail;
		if (a.per_call)
			fprintf(stderr, "prepare: %.1f ms (%d later chunks)\n", wan_now_ms() - t0,
				dit_stream_prepare_chunks(&sc));
	}
	size_t fe = (size_t)cfg.in_dim * h * w, hw = (size_t)h * w;
	int nout = batch ? 2 + (C > S ? C - S : 0) : C + 1;
	out = calloc((size_t)nout * fe, sizeof(float));
	chunk = malloc(2 * fe * sizeof(float)); /* chunk 0 as [C, 2, h, w] */
	res = malloc(2 * fe * sizeof(float));
	if (!out || !chunk || !res) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	struct dit_noise_array src = { noise, (size_t)ns[0] * fe, 0 };
	/* chunk 0: the file's frame-major [2, C, h, w] to the DiT's [C, 2, h, w] and back */
	for (int c = 0; c < cfg.in_dim; c++)
		for (int f = 0; f < 2; f++)
			memcpy(chunk + ((size_t)c * 2 + f) * hw, lat + f * fe + c * hw,
			       hw * sizeof(float));
	double t0 = wan_now_ms();
	if (dit_stream_first(st, chunk, scale[0], dit_noise_array_next, &src, res, err, sizeof(err)))
		goto fail;
	if (a.per_call)
		fprintf(stderr, "chunk 0: %.2f ms\n", wan_now_ms() - t0);
	for (int c = 0; c < cfg.in_dim; c++)
		for (int f = 0; f < 2; f++)
			memcpy(out + f * fe + c * hw, res + ((size_t)c * 2 + f) * hw,
			       hw * sizeof(float));
	int nemit = 2;
	for (int k = 1; k < C; k++) {
		bool emitted;
		t0 = wan_now_ms();
		if (dit_stream_next(st, lat + (size_t)(k + 1) * fe, scale[k], dit_noise_array_next,
				    &src, res, &emitted, err, sizeof(err)))
			goto fail;
		if (a.per_call)
			fprintf(stderr, "chunk %d: %.2f ms\n", k, wan_now_ms() - t0);
		if (emitted) {
			if (nemit >= nout) {
				snprintf(err, sizeof(err), "internal: more outputs than expected");
				goto fail;
			}
			memcpy(out + (size_t)nemit * fe, res, fe * sizeof(float));
			nemit++;
		}
	}
	int64_t os[4] = { nemit, cfg.in_dim, h, w };
	if (write_one(a.output, "x0", 4, os, out, err, sizeof(err)))
		goto fail;
	rc = 0;
	goto done;
fail:
	fprintf(stderr, "heru-wan stream: %s\n", err);
done:
	free(lat);
	free(ctx);
	free(scale);
	free(noise);
	free(out);
	free(chunk);
	free(res);
	dit_stream_free(st);
	if (eng.destroy)
		eng.destroy(eng.impl);
	wan_dit_model_free(m);
	if (in)
		wt_close(in);
	return rc;
}
