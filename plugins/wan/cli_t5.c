/* cli_t5.c: heru-wan tokenize, t5-encode, encode-prompt and bench-t5 (the umT5 text side). */
#include "config.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "t5_model.h"
#include "t5_ref.h"
#include "tokenizer.h"
#include "wt_file.h"
#ifdef HERU_HAVE_CUDA
#include "cuda/t5_cuda.h"
#endif

#define T5_WEIGHTS_HINT "models_t5_umt5-xxl-enc-bf16.pth ships in the Wan2.1-T2V-1.3B / -14B model folders"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- tokenize ---- */

static void tokenize_usage(FILE *out)
{
	fprintf(out, "usage: heru-wan tokenize --tokenizer PATH --text TEXT\n"
		"  --tokenizer PATH  spiece.model, tokenizer.json, or the google/umt5-xxl folder holding one\n"
		"  --text TEXT       the prompt; Wan's cleaning is applied, EOS appended, no padding\n"
		"prints the token ids as a JSON array\n");
}

int cli_tokenize(int argc, char **argv)
{
	static const struct option opts[] = {
		{"tokenizer", required_argument, NULL, 't'},
		{"text", required_argument, NULL, 'x'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *tok_path = NULL, *text = NULL;
	char err[512];
	int c;
	int64_t *ids;
	size_t n;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 't')
			tok_path = optarg;
		else if (c == 'x')
			text = optarg;
		else if (c == 'h') {
			tokenize_usage(stdout);
			return 0;
		} else {
			tokenize_usage(stderr);
			return 2;
		}
	}
	if (!tok_path || !text || optind != argc) {
		tokenize_usage(stderr);
		return 2;
	}
	struct tokenizer *t = tokenizer_load(tok_path, err, sizeof(err));
	if (!t) {
		fprintf(stderr, "heru-wan tokenize: %s\n", err);
		return 1;
	}
	if (tokenizer_encode_wan_alloc(t, text, &ids, &n, err, sizeof(err))) {
		fprintf(stderr, "heru-wan tokenize: %s\n", err);
		tokenizer_free(t);
		return 1;
	}
	putchar('[');
	for (size_t i = 0; i < n; i++)
		printf("%s%lld", i ? ", " : "", (long long)ids[i]);
	printf("]\n");
	free(ids);
	tokenizer_free(t);
	return 0;
}

/* ---- shared: weights, device ---- */

struct t5_session {
	struct wt_file *file;
	struct t5_weights w;
};

static int open_weights(struct t5_session *s, const char *weights, const char *config, const char *cmd)
{
	char err[512];
	struct t5_config cfg;
	memset(s, 0, sizeof(*s));
	s->file = wt_open(weights, err, sizeof(err));
	if (!s->file) {
		fprintf(stderr, "heru-wan %s: %s (%s)\n", cmd, err, T5_WEIGHTS_HINT);
		return -1;
	}
	if (config ? t5_config_load(config, &cfg, err, sizeof(err)) : t5_config_from_file(s->file, &cfg, err, sizeof(err)))
		goto fail;
	if (t5_weights_init(&s->w, s->file, &cfg, err, sizeof(err)))
		goto fail;
	return 0;
fail:
	fprintf(stderr, "heru-wan %s: %s\n", cmd, err);
	wt_close(s->file);
	s->file = NULL;
	return -1;
}

static void close_weights(struct t5_session *s)
{
	t5_weights_release(&s->w);
	wt_close(s->file);
}

static int check_device(const char *device, const char *cmd)
{
	if (!strcmp(device, "cpu"))
		return 0;
	if (!strcmp(device, "cuda")) {
#ifdef HERU_HAVE_CUDA
		return 0;
#else
		fprintf(stderr, "heru-wan %s: this build has no CUDA (configure found no nvcc/cuBLASLt); use --device cpu\n", cmd);
		return -1;
#endif
	}
	fprintf(stderr, "heru-wan %s: unknown device '%s' (cpu or cuda)\n", cmd, device);
	return -2;
}

/* Runs the encoder on DEVICE ("cpu" or "cuda"). */
static int run_encoder(const struct t5_weights *w, const char *device, const int64_t *ids, const int64_t *mask,
		       int len, int threads, float *out, char *err, size_t errlen)
{
#ifdef HERU_HAVE_CUDA
	if (!strcmp(device, "cuda")) {
		struct t5_cuda *g = t5_cuda_new(w, len, err, errlen);
		int rc;
		if (!g)
			return -1;
		rc = t5_cuda_encode(g, ids, mask, len, out, err, errlen);
		t5_cuda_free(g);
		return rc;
	}
#endif
	(void)device;
	return t5_encode_ref(w, ids, mask, len, threads, out, err, errlen);
}

static int encode_and_save(struct t5_session *s, const char *device, const int64_t *ids, const int64_t *mask,
			   int len, int threads, const char *output, const char *cmd, int save_inputs)
{
	char err[512];
	int dim = s->w.cfg.dim, rc = -1;
	float *ctx = malloc(sizeof(float) * (size_t)len * dim);
	struct wt_writer *wr = wt_writer_new();
	int64_t shape3[3] = {1, len, dim}, shape2[2] = {1, len};
	double t0 = now_s();

	if (!ctx || !wr) {
		fprintf(stderr, "heru-wan %s: out of memory\n", cmd);
		goto out;
	}
	if (run_encoder(&s->w, device, ids, mask, len, threads, ctx, err, sizeof(err)))
		goto fail;
	double t1 = now_s();
	if (wt_writer_add(wr, "context", WT_F32, 3, shape3, ctx, err, sizeof(err)))
		goto fail;
	if (save_inputs && (wt_writer_add(wr, "ids", WT_I64, 2, shape2, ids, err, sizeof(err)) ||
			    wt_writer_add(wr, "mask", WT_I64, 2, shape2, mask, err, sizeof(err))))
		goto fail;
	if (wt_writer_save(wr, output, err, sizeof(err)))
		goto fail;
	fprintf(stderr, "heru-wan %s: encoded %d tokens on the %s in %.3f s, wrote %s\n", cmd, len, device, t1 - t0,
		output);
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "heru-wan %s: %s\n", cmd, err);
out:
	wt_writer_free(wr);
	free(ctx);
	return rc;
}

/* ---- t5-encode ---- */

static void encode_usage(FILE *out)
{
	fprintf(out, "usage: heru-wan t5-encode --weights W [--config C] --input IN --output OUT [--device cpu|cuda] [--threads N]\n"
		"  --weights W   umT5 encoder checkpoint: models_t5_umt5-xxl-enc-bf16.pth or a safetensors file\n"
		"  --config C    umt5-xxl or a JSON config (default: read off the checkpoint's shapes)\n"
		"  --input IN    safetensors with ids and mask, i64 [1,L] (L = 512 for Wan)\n"
		"  --output OUT  safetensors with context f32 [1,L,dim]; rows past the real tokens are zero\n");
}

int cli_t5_encode(int argc, char **argv)
{
	static const struct option opts[] = {
		{"weights", required_argument, NULL, 'w'}, {"config", required_argument, NULL, 'c'},
		{"input", required_argument, NULL, 'i'},   {"output", required_argument, NULL, 'o'},
		{"device", required_argument, NULL, 'd'},  {"threads", required_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
	};
	const char *weights = NULL, *config = NULL, *input = NULL, *output = NULL, *device = "cpu";
	int threads = 0, c, rc;
	char err[512];

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'w': weights = optarg; break;
		case 'c': config = optarg; break;
		case 'i': input = optarg; break;
		case 'o': output = optarg; break;
		case 'd': device = optarg; break;
		case 'j': threads = atoi(optarg); break;
		case 'h': encode_usage(stdout); return 0;
		default: encode_usage(stderr); return 2;
		}
	}
	if (!weights || !input || !output || optind != argc) {
		encode_usage(stderr);
		return 2;
	}
	if ((rc = check_device(device, "t5-encode")))
		return rc == -2 ? 2 : 1;
	struct wt_file *in = wt_open(input, err, sizeof(err));
	if (!in) {
		fprintf(stderr, "heru-wan t5-encode: %s\n", err);
		return 1;
	}
	const struct wt_tensor *ti = wt_find(in, "ids"), *tm = wt_find(in, "mask");
	if (!ti || !tm || ti->ndim != 2 || ti->shape[0] != 1 || ti->shape[1] < 1 || ti->shape[1] > 65536 ||
	    tm->ndim != 2 || tm->shape[0] != 1 || tm->shape[1] != ti->shape[1]) {
		fprintf(stderr, "heru-wan t5-encode: '%s' must hold ids and mask, both i64 [1,L]\n", input);
		wt_close(in);
		return 1;
	}
	int len = (int)ti->shape[1];
	int64_t shape[2] = {1, len};
	int64_t *ids = malloc(sizeof(int64_t) * (size_t)len), *mask = malloc(sizeof(int64_t) * (size_t)len);
	struct t5_session s;
	rc = 1;
	if (!ids || !mask) {
		fprintf(stderr, "heru-wan t5-encode: out of memory\n");
		goto out;
	}
	if (wt_read_i64(in, "ids", 2, shape, ids, err, sizeof(err)) ||
	    wt_read_i64(in, "mask", 2, shape, mask, err, sizeof(err))) {
		fprintf(stderr, "heru-wan t5-encode: %s\n", err);
		goto out;
	}
	if (open_weights(&s, weights, config, "t5-encode"))
		goto out;
	rc = encode_and_save(&s, device, ids, mask, len, threads, output, "t5-encode", 0) ? 1 : 0;
	close_weights(&s);
out:
	free(ids);
	free(mask);
	wt_close(in);
	return rc;
}

/* ---- encode-prompt ---- */

static void prompt_usage(FILE *out)
{
	fprintf(out, "usage: heru-wan encode-prompt --tokenizer PATH --weights W --text TEXT --output OUT\n"
		"                             [--config C] [--device cpu|cuda] [--threads N]\n"
		"  tokenizes TEXT as Wan does (512 tokens, EOS, pad 0) and writes context f32 [1,512,dim],\n"
		"  ids and mask i64 [1,512] to OUT (safetensors)\n");
}

int cli_encode_prompt(int argc, char **argv)
{
	static const struct option opts[] = {
		{"tokenizer", required_argument, NULL, 't'}, {"weights", required_argument, NULL, 'w'},
		{"text", required_argument, NULL, 'x'},      {"output", required_argument, NULL, 'o'},
		{"config", required_argument, NULL, 'c'},    {"device", required_argument, NULL, 'd'},
		{"threads", required_argument, NULL, 'j'},   {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *tok_path = NULL, *weights = NULL, *text = NULL, *output = NULL, *config = NULL, *device = "cpu";
	int threads = 0, c, rc, n_real;
	int64_t ids[T5_TEXT_LEN], mask[T5_TEXT_LEN];
	char err[512];
	struct t5_session s;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 't': tok_path = optarg; break;
		case 'w': weights = optarg; break;
		case 'x': text = optarg; break;
		case 'o': output = optarg; break;
		case 'c': config = optarg; break;
		case 'd': device = optarg; break;
		case 'j': threads = atoi(optarg); break;
		case 'h': prompt_usage(stdout); return 0;
		default: prompt_usage(stderr); return 2;
		}
	}
	if (!tok_path || !weights || !text || !output || optind != argc) {
		prompt_usage(stderr);
		return 2;
	}
	if ((rc = check_device(device, "encode-prompt")))
		return rc == -2 ? 2 : 1;
	struct tokenizer *t = tokenizer_load(tok_path, err, sizeof(err));
	if (!t) {
		fprintf(stderr, "heru-wan encode-prompt: %s\n", err);
		return 1;
	}
	rc = tokenizer_encode_wan(t, text, T5_TEXT_LEN, ids, mask, &n_real, err, sizeof(err));
	tokenizer_free(t);
	if (rc) {
		fprintf(stderr, "heru-wan encode-prompt: %s\n", err);
		return 1;
	}
	if (open_weights(&s, weights, config, "encode-prompt"))
		return 1;
	rc = encode_and_save(&s, device, ids, mask, T5_TEXT_LEN, threads, output, "encode-prompt", 1) ? 1 : 0;
	close_weights(&s);
	return rc;
}

/* ---- bench-t5 ---- */

static void bench_usage(FILE *out)
{
	fprintf(out, "usage: heru-wan bench-t5 [--config umt5-xxl|C.json] [--weights W] [--tokens N] [--iters N]\n"
		"                        [--device cpu|cuda] [--threads N]\n"
		"  times one forward pass of N real tokens (default 512) over random bf16 weights of the\n"
		"  config's shape (or W), and prints ms and achieved TFLOP/s\n");
}

static int bench_cpu(const struct t5_weights *w, int tokens, int iters, int threads, double *best, double *mean,
		     char *err, size_t errlen)
{
	int64_t *ids = calloc(T5_TEXT_LEN, sizeof(*ids)), *mask = calloc(T5_TEXT_LEN, sizeof(*mask));
	float *out = malloc(sizeof(float) * T5_TEXT_LEN * (size_t)w->cfg.dim);
	int rc = -1;
	double sum = 0;
	*best = 1e30;
	if (!ids || !mask || !out) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (int i = 0; i < tokens; i++) {
		ids[i] = 3 + (i * 7919) % (w->cfg.vocab_size > 3 ? w->cfg.vocab_size - 3 : 1);
		mask[i] = 1;
	}
	for (int it = 0; it < iters; it++) {
		double t0 = now_s();
		if (t5_encode_ref(w, ids, mask, T5_TEXT_LEN, threads, out, err, errlen))
			goto out;
		double dt = (now_s() - t0) * 1e3;
		sum += dt;
		*best = dt < *best ? dt : *best;
	}
	*mean = sum / iters;
	rc = 0;
out:
	free(ids);
	free(mask);
	free(out);
	return rc;
}

int cli_bench_t5(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"weights", required_argument, NULL, 'w'},
		{"tokens", required_argument, NULL, 'n'}, {"iters", required_argument, NULL, 'i'},
		{"device", required_argument, NULL, 'd'}, {"threads", required_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
	};
	const char *config = NULL, *weights = NULL, *device = "cpu";
	int tokens = T5_TEXT_LEN, iters = 1, threads = 0, c, rc = 1;
	char err[512];
	struct t5_config cfg;
	struct t5_session s;
	struct t5_random *rw = NULL;
	double best = 0, mean = 0, t_load, t_up = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 'w': weights = optarg; break;
		case 'n': tokens = atoi(optarg); break;
		case 'i': iters = atoi(optarg); break;
		case 'd': device = optarg; break;
		case 'j': threads = atoi(optarg); break;
		case 'h': bench_usage(stdout); return 0;
		default: bench_usage(stderr); return 2;
		}
	}
	if (optind != argc || tokens < 1 || tokens > T5_TEXT_LEN || iters < 1 || iters > 10000) {
		bench_usage(stderr);
		return 2;
	}
	if ((rc = check_device(device, "bench-t5")))
		return rc == -2 ? 2 : 1;
	rc = 1;
	memset(&s, 0, sizeof(s));
	t_load = now_s();
	if (weights) {
		if (open_weights(&s, weights, config, "bench-t5"))
			return 1;
	} else {
		if (t5_config_load(config ? config : "umt5-xxl", &cfg, err, sizeof(err)) ||
		    !(rw = t5_weights_random(&s.w, &cfg, 1, threads, err, sizeof(err)))) {
			fprintf(stderr, "heru-wan bench-t5: %s\n", err);
			return 1;
		}
	}
	t_load = now_s() - t_load;
	const struct t5_config *wc = &s.w.cfg;
	if (!strcmp(device, "cpu")) {
		if (bench_cpu(&s.w, tokens, iters, threads, &best, &mean, err, sizeof(err)))
			goto fail;
	}
#ifdef HERU_HAVE_CUDA
	else {
		double t0 = now_s();
		struct t5_cuda *g = t5_cuda_new(&s.w, T5_TEXT_LEN, err, sizeof(err));
		if (!g)
			goto fail;
		t_up = now_s() - t0;
		printf("bench-t5 gpu memory: weights %.2f GB, activations %.1f MB\n", t5_cuda_weight_bytes(g) / 1e9,
		       t5_cuda_activation_bytes(g) / 1e6);
		rc = t5_cuda_bench(g, tokens, iters, &best, &mean, err, sizeof(err));
		t5_cuda_free(g);
		rc = rc ? 1 : 0;
		if (rc)
			goto fail;
	}
#endif
	double fl = t5_config_flops(wc, tokens);
	printf("bench-t5 device=%s layers=%d dim=%d ffn=%d heads=%d tokens=%d params=%lld\n", device, wc->num_layers,
	       wc->dim, wc->dim_ffn, wc->num_heads, tokens, (long long)t5_config_params(wc));
	printf("  %s: %.3f s%s%s\n", weights ? "open+validate" : "random weights", t_load, weights ? " " : "",
	       weights ? weights : "");
	if (t_up > 0)
		printf("  upload to the GPU: %.3f s (%s total %.3f s)\n", t_up, weights ? "load" : "setup", t_up + t_load);
	printf("RESULT bench-t5 %s tokens=%d forward best %.3f ms mean %.3f ms over %d, %.3f TFLOP -> %.1f TFLOP/s\n",
	       device, tokens, best, mean, iters, fl / 1e12, fl / (best * 1e-3) / 1e12);
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "heru-wan bench-t5: %s\n", err);
	rc = 1;
out:
	if (weights) {
		close_weights(&s);
	} else {
		t5_weights_release(&s.w);
		t5_random_free(rw);
	}
	return rc;
}
