/* cli_io.c: heru-wan inspect (list the tensors of a file) and random-weights (a DiT checkpoint
 * with the real key names and shapes and deterministic random values). */
#include "config.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "wan_config.h"
#include "wan_dit_weights.h"
#include "wt_file.h"

/* ---- inspect ---- */

static void inspect_usage(FILE *out)
{
	fprintf(out, "usage: heru-wan inspect FILE [--stats] [--model 1.3b|14b|CONFIG.json]\n"
		"  FILE     a .safetensors file, a *.safetensors.index.json, or a torch.save .pt/.pth\n"
		"  --stats  also print min, max, mean and standard deviation of every float tensor\n"
		"  --model  check that FILE is a complete DiT checkpoint for that config (every\n"
		"           tensor present with its exact shape, nothing extra); exit 1 if not\n");
}

static int print_stats(const struct wt_tensor *t)
{
	int64_t n = wt_numel(t);
	float *v;
	double sum = 0, sq = 0, lo = INFINITY, hi = -INFINITY, mean;
	char err[256];

	if (t->dtype != WT_F32 && t->dtype != WT_F16 && t->dtype != WT_BF16 && t->dtype != WT_F64)
		return 0;
	v = malloc((size_t)(n ? n : 1) * sizeof *v);
	if (!v || wt_tensor_to_f32(t, v, err, sizeof err) < 0) {
		free(v);
		fprintf(stderr, "heru-wan inspect: out of memory reading '%s'\n", t->name);
		return -1;
	}
	for (int64_t i = 0; i < n; i++) {
		sum += v[i];
		sq += (double)v[i] * v[i];
		lo = v[i] < lo ? v[i] : lo;
		hi = v[i] > hi ? v[i] : hi;
	}
	mean = n ? sum / (double)n : 0;
	printf("  min %.6g max %.6g mean %.6g std %.6g", n ? lo : 0, n ? hi : 0, mean,
	       n ? sqrt(fmax(sq / (double)n - mean * mean, 0)) : 0);
	free(v);
	return 0;
}

int cli_inspect(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "stats", no_argument, NULL, 's' },
		{ "model", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct wt_file *f;
	char err[512], shape[160];
	int stats = 0, c, rc = 0;
	const char *model = NULL;
	struct wan_dit_config cfg;
	int64_t params = 0;
	uint64_t bytes = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "sm:h", opts, NULL)) != -1) {
		if (c == 's') {
			stats = 1;
		} else if (c == 'm') {
			model = optarg;
		} else if (c == 'h') {
			inspect_usage(stdout);
			return 0;
		} else {
			inspect_usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		inspect_usage(stderr);
		return 2;
	}
	if (model && wan_dit_config_load(model, &cfg, err, sizeof err) < 0) {
		fprintf(stderr, "heru-wan inspect: %s\n", err);
		return 1;
	}
	f = wt_open(argv[optind], err, sizeof err);
	if (!f) {
		fprintf(stderr, "heru-wan inspect: %s\n", err);
		return 1;
	}
	for (size_t i = 0; i < wt_count(f); i++) {
		const struct wt_tensor *t = wt_at(f, i);

		printf("%-48s %-5s %s", t->name, wt_dtype_name(t->dtype),
		       wt_shape_str(t->ndim, t->shape, shape, sizeof shape));
		if (stats && print_stats(t) < 0) {
			wt_close(f);
			return 1;
		}
		printf("\n");
		params += wt_numel(t);
		bytes += t->nbytes;
	}
	printf("%zu tensors, %lld elements, %llu bytes\n", wt_count(f), (long long)params,
	       (unsigned long long)bytes);
	if (model) {
		if (wan_dit_weights_check(f, &cfg, 1, err, sizeof err) < 0) {
			fprintf(stderr, "heru-wan inspect: %s\n", err);
			rc = 1;
		} else {
			printf("complete Wan2.1 DiT checkpoint for %s (%lld parameters)\n", model,
			       (long long)wan_dit_param_count(&cfg));
		}
	}
	wt_close(f);
	return rc;
}

/* ---- random-weights ---- */

static void rw_usage(FILE *out)
{
	fprintf(out, "usage: heru-wan random-weights --model 1.3b|14b|CONFIG.json --out FILE.safetensors\n"
		"                              [--seed N] [--dtype bf16|f32|f16] [--prefix P] [--threads N]\n"
		"  Writes every DiT tensor of spec 3.1 with its real name and shape: N(0, 0.02) for\n"
		"  weights, biases and modulation, ones for norm gains, zeros for norm3.bias.\n"
		"  --seed N     PRNG seed (default 0); the same seed gives the same file\n"
		"  --dtype      stored dtype (default bf16)\n"
		"  --prefix P   prepend P to every name (e.g. 'model.' as StreamDiffusionV2 stores them)\n"
		"  --threads N  generator threads (default: all CPUs, at most 16)\n");
}

int cli_random_weights(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "out", required_argument, NULL, 'o' },
		{ "seed", required_argument, NULL, 's' },
		{ "dtype", required_argument, NULL, 'd' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "threads", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *model = NULL, *out = NULL, *prefix = "";
	unsigned long long seed = 0;
	enum wt_dtype dtype = WT_BF16;
	int threads = 0, c, rc = 1;
	struct wan_dit_config cfg;
	char err[512], *end;
	struct timespec t0, t1;
	double secs;

	optind = 1;
	while ((c = getopt_long(argc, argv, "m:o:s:d:p:t:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': model = optarg; break;
		case 'o': out = optarg; break;
		case 'p': prefix = optarg; break;
		case 's':
			seed = strtoull(optarg, &end, 0);
			if (!*optarg || *end || optarg[0] == '-') {
				fprintf(stderr, "heru-wan random-weights: --seed '%s' is not a non-negative integer\n", optarg);
				return 2;
			}
			break;
		case 'd':
			if (!strcmp(optarg, "bf16")) dtype = WT_BF16;
			else if (!strcmp(optarg, "f32")) dtype = WT_F32;
			else if (!strcmp(optarg, "f16")) dtype = WT_F16;
			else {
				fprintf(stderr, "heru-wan random-weights: --dtype '%s' is not bf16, f32 or f16\n", optarg);
				return 2;
			}
			break;
		case 't':
			threads = (int)strtol(optarg, &end, 10);
			if (!*optarg || *end || threads < 1 || threads > 1024) {
				fprintf(stderr, "heru-wan random-weights: --threads '%s' is not a positive integer\n", optarg);
				return 2;
			}
			break;
		case 'h':
			rw_usage(stdout);
			return 0;
		default:
			rw_usage(stderr);
			return 2;
		}
	}
	if (!model || !out || optind != argc || strlen(prefix) > 32) {
		rw_usage(stderr);
		return 2;
	}
	if (wan_dit_config_load(model, &cfg, err, sizeof err) < 0) {
		fprintf(stderr, "heru-wan random-weights: %s\n", err);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (wan_dit_random_weights_save(&cfg, model, out, seed, dtype, prefix, threads, err,
					sizeof err) < 0) {
		fprintf(stderr, "heru-wan random-weights: %s\n", err);
		goto done;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
	fprintf(stderr, "wrote %s: %d tensors, %lld parameters, %s, %.1f s\n", out,
		WAN_DIT_GLOBAL_TENSORS + WAN_DIT_BLOCK_TENSORS * cfg.num_layers,
		(long long)wan_dit_param_count(&cfg), wt_dtype_name(dtype), secs);
	rc = 0;
done:
	return rc;
}
