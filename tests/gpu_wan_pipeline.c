/* gpu_wan_pipeline.c: the Wan frame-to-frame pipeline on the CUDA engines (wan_cuda_engine.so,
 * dlopened as the plugins do) against the same pipeline on the fp32 C reference engines, with
 * a tiny model: DiT random weights written here (dim 256, 2 heads of 128, 2 layers, text_dim
 * 64), the tiny VAE / TAEHV / umT5 / tokenizer fixtures of the engine tests, 64x64 pixels.
 * Same frames, prompt and seed on both devices: the same number of frames back with the same
 * ids, and the pictures within bf16 tolerance (PSNR and mean absolute error over all output
 * frames). Cases: Wan VAE S=2 (first chunk, one warm-up call, active chunks) and TAEHV S=1.
 * Exits 77 without a GPU. */
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wan_config.h"
#include "wan_dit_weights.h"
#include "wan_pipeline.h"

#define PX 64
#define MAX_OUT 64
#define N_FRAMES 21 /* first chunk of 5, then 4 chunks of 4 */

struct sink {
	int n;
	uint64_t ids[MAX_OUT];
	uint8_t *frames[MAX_OUT];
	int w, h;
};

static int collect(void *ctx, const uint8_t *rgb, int w, int h, const struct wan_frame_tag *t)
{
	struct sink *s = ctx;
	if (s->n >= MAX_OUT)
		return -1;
	s->w = w;
	s->h = h;
	s->ids[s->n] = t->id;
	s->frames[s->n] = malloc((size_t)w * h * 3);
	if (!s->frames[s->n])
		return -1;
	memcpy(s->frames[s->n], rgb, (size_t)w * h * 3);
	s->n++;
	return 0;
}

static void sink_free(struct sink *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->frames[i]);
	memset(s, 0, sizeof(*s));
}

/* A moving test pattern, W x H, frame I (smooth, so the tiny VAE keeps some of it). */
static void pattern(uint8_t *rgb, int w, int h, int i)
{
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			uint8_t *px = rgb + 3 * ((size_t)y * w + x);
			px[0] = (uint8_t)(x * 255 / w + 3 * i);
			px[1] = (uint8_t)(y * 255 / h);
			px[2] = (uint8_t)(128 + 100 * sin((x + 2 * i) * 0.2) * cos(y * 0.15));
		}
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f);
}

static int make_root(char *root, size_t n, char *err, size_t errlen)
{
	char path[2048], json[4096];
	struct wan_dit_config c;
	const char *src = getenv("top_srcdir");
	char fix[600];

	snprintf(fix, sizeof(fix), "%s/tests/fixtures/wan", src ? src : WAN_TOP_SRCDIR);
	snprintf(root, n, "/tmp/heru-gpu-pipe-XXXXXX");
	if (!mkdtemp(root)) {
		snprintf(err, errlen, "cannot make a folder in /tmp");
		return -1;
	}
	snprintf(path, sizeof(path), "%s/dit.json", root);
	if (write_file(path, "{\"dim\": 256, \"ffn_dim\": 384, \"num_heads\": 2, \"num_layers\": 2, "
			     "\"in_dim\": 16, \"out_dim\": 16, \"text_len\": 512, \"text_dim\": 64, "
			     "\"freq_dim\": 256, \"eps\": 1e-6}") ||
	    wan_dit_config_load(path, &c, err, errlen))
		return -1;
	snprintf(path, sizeof(path), "%s/ckpts", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/ckpts/wan_causal_dmd_v2v", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/ckpts/wan_causal_dmd_v2v/model.pt", root);
	if (wan_dit_random_weights_save(&c, "tiny", path, 7, WT_F32, "model.", 1, err, errlen))
		return -1;
	snprintf(json, sizeof(json),
		 "{\"dit_config\": \"dit.json\", "
		 "\"vae_weights\": \"%s/vae/tiny_vae.safetensors\", "
		 "\"vae_config\": \"%s/vae/tiny_config.json\", "
		 "\"taehv_weights\": \"%s/vae/tiny_taehv.safetensors\", "
		 "\"t5_weights\": \"%s/t5/t5_tiny.safetensors\", "
		 "\"t5_config\": \"%s/t5/t5_tiny_config.json\", "
		 "\"tokenizer\": \"%s/t5/bytefb.model\", \"width\": %d, \"height\": %d}",
		 fix, fix, fix, fix, fix, fix, PX, PX);
	snprintf(path, sizeof(path), "%s/heru-model.json", root);
	if (write_file(path, json)) {
		snprintf(err, errlen, "cannot write %.200s", path);
		return -1;
	}
	return 0;
}

/* Runs N_FRAMES frames through a pipeline on DEV; 0 or -1 with ERR. */
static int run_device(const char *root, enum wan_device dev, int steps, bool taehv, struct sink *s,
		      struct wan_pipeline_stats *st, char *err, size_t errlen)
{
	struct wan_pipeline_options o = { .root = root, .model = "wan-1.3b", .device = dev,
		.taehv = taehv, .steps = steps, .threads = 0 };
	struct wan_pipeline_params prm = { .prompt = "a red fox in the snow", .prompt_dominance = 0.8f,
		.seed = 42 };
	uint8_t rgb[80 * 72 * 3];
	struct wan_pipeline *p = wan_pipeline_open(&o, err, errlen);
	if (!p)
		return -1;
	for (int i = 1; i <= N_FRAMES; i++) {
		struct wan_frame_tag t = { (uint64_t)i, i * 40.0 };
		pattern(rgb, 80, 72, i); /* not the model size: resized */
		if (wan_pipeline_push(p, rgb, 80, 72, 80 * 3, &t, &prm, collect, s, err, errlen)) {
			wan_pipeline_free(p);
			return -1;
		}
	}
	wan_pipeline_get_stats(p, st);
	wan_pipeline_free(p);
	return 0;
}

static int run_case(const char *root, int steps, bool taehv, double min_psnr, double max_mae)
{
	char err[1024], name[64];
	struct sink cpu = { 0 }, gpu = { 0 };
	struct wan_pipeline_stats sc, sg;
	int fail = 0;

	snprintf(name, sizeof(name), "%s S=%d", taehv ? "TAEHV" : "Wan VAE", steps);
	if (run_device(root, WAN_DEVICE_CPU, steps, taehv, &cpu, &sc, err, sizeof(err))) {
		printf("FAIL %s: cpu pipeline: %s\n", name, err);
		fail = 1;
		goto out;
	}
	if (run_device(root, WAN_DEVICE_CUDA, steps, taehv, &gpu, &sg, err, sizeof(err))) {
		printf("FAIL %s: cuda pipeline: %s\n", name, err);
		fail = 1;
		goto out;
	}
	if (strcmp(sg.device, "cuda") != 0) {
		printf("FAIL %s: the pipeline reports device '%s', not cuda\n", name, sg.device);
		fail = 1;
	}
	if (cpu.n == 0 || cpu.n != gpu.n || cpu.w != gpu.w || cpu.h != gpu.h) {
		printf("FAIL %s: cpu gave %d frames (%dx%d), cuda %d (%dx%d)\n", name, cpu.n, cpu.w,
		       cpu.h, gpu.n, gpu.w, gpu.h);
		fail = 1;
		goto out;
	}
	double se = 0, ae = 0, worst = 0;
	size_t np = (size_t)cpu.w * cpu.h * 3;
	for (int i = 0; i < cpu.n; i++) {
		double fse = 0;
		if (cpu.ids[i] != gpu.ids[i]) {
			printf("FAIL %s: output %d answers frame %llu on cpu, %llu on cuda\n", name, i,
			       (unsigned long long)cpu.ids[i], (unsigned long long)gpu.ids[i]);
			fail = 1;
		}
		for (size_t k = 0; k < np; k++) {
			double d = (double)cpu.frames[i][k] - (double)gpu.frames[i][k];
			fse += d * d;
			ae += fabs(d);
		}
		se += fse;
		double fpsnr = fse > 0 ? 10 * log10(255.0 * 255.0 / (fse / (double)np)) : 99;
		if (i == 0 || fpsnr < worst)
			worst = fpsnr;
	}
	double mse = se / ((double)np * cpu.n), mae = ae / ((double)np * cpu.n);
	double psnr = mse > 0 ? 10 * log10(255.0 * 255.0 / mse) : 99;
	printf("%s: %d frames %dx%d, cuda vs cpu PSNR %.1f dB (worst frame %.1f), mean |diff| %.2f/255;"
	       " cuda stage means (ms): encode %.2f dit %.2f decode %.2f\n", name, cpu.n, cpu.w, cpu.h,
	       psnr, worst, mae, sg.mean_ms[WAN_STAGE_ENCODE], sg.mean_ms[WAN_STAGE_DIT],
	       sg.mean_ms[WAN_STAGE_DECODE]);
	if (psnr < min_psnr || mae > max_mae) {
		printf("FAIL %s: outside the bf16 tolerance (PSNR >= %.0f dB, mean |diff| <= %.1f)\n",
		       name, min_psnr, max_mae);
		fail = 1;
	}
out:
	sink_free(&cpu);
	sink_free(&gpu);
	return fail;
}

int main(void)
{
	char root[256], err[1024], cmd[400];
	int ndev = 0, fail = 0;

	if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev < 1) {
		printf("SKIP: no CUDA device\n");
		return 77;
	}
	if (make_root(root, sizeof(root), err, sizeof(err))) {
		printf("FAIL setup: %s\n", err);
		return 1;
	}
	fail |= run_case(root, 2, false, 30.0, 4.0);
	fail |= run_case(root, 1, true, 30.0, 4.0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0)
		printf("warning: could not remove %s\n", root);
	printf("%s\n", fail ? "FAIL" : "PASS");
	return fail;
}
