/* gpu_dit_stream.c: the CUDA DiT engine (heru-wan --device cuda) against the PyTorch goldens
 * of tests/reference/wan_dit_ref.py, through the real subcommands: dit-forward (2 slots x 3
 * frames, one prompt per slot) and stream with S = 1 and 2, batch and no-batch, with and
 * without the adaptive sink, over 52 chunks (ring wrap, sink refresh, RoPE refresh).
 * Pass: x0 / flow relative L2 <= 1e-2 (bf16 storage, fp32 accumulation; spec target).
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
#include "dit_test_util.h"
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

	if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev < 1) {
		printf("SKIP: no CUDA device\n");
		return 77;
	}
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
	unlink(out);
	unlink(weights);
	rmdir(tmpdir);
	printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
