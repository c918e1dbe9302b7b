/* cli_vae.c: heru-wan vae-encode, vae-decode, taehv-decode and bench-vae.
 *
 * Tensor files are safetensors: frames f32 [T,3,H,W] in [-1,1], latents f32 [F,16,H/8,W/8].
 * The commands stream their input with the StreamDiffusionV2 call pattern (first encode 1+4
 * frames, then 4 per call; first decode 2 latents, then 1 per call), so the output is what a
 * live stream would produce. */
#include "config.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli.h"
#include "taehv_model.h"
#include "vae_config.h"
#include "vae_model.h"
#include "vae_source.h"
#include "wt_file.h"
#include "plugins/wan/wan_clock.h"
#ifdef HERU_WAN_VAE_CUDA
#include "plugins/wan/cuda/vae_cuda.h"
#endif

#define VAE_GET_HINT "(Wan2.1_VAE.pth is in the Wan-AI/Wan2.1-T2V-1.3B release; taew2_1.pth in " \
		     "github.com/madebyollin/taehv)"

struct vae_opts {
	const char *weights, *config, *input, *output, *device;
	int incremental, height, width, iters;
};

static void usage(FILE *out, const char *cmd)
{
	if (!strcmp(cmd, "bench-vae")) {
		fprintf(out, "usage: heru-wan bench-vae --height H --width W [--config C] [--device cpu|cuda]"
			" [--iters N]\n"
			"  times the VAE (random weights, real architecture unless --config): first and steady\n"
			"  encode (5 then 4 frames), first and steady decode (2 then 1 latent), TAEHV decode in\n"
			"  both streaming modes; prints ms, TFLOP/s next to the exact FLOPs, and peak memory\n");
		return;
	}
	const char *in = !strcmp(cmd, "vae-encode") ? "frames" : "latents";
	const char *outn = !strcmp(cmd, "vae-encode") ? "latents" : "frames";
	fprintf(out, "usage: heru-wan %s --weights W [--config C] --input IN --output OUT"
		" [--device cpu|cuda]%s\n"
		"  W    safetensors or PyTorch .pth (%s)\n"
		"  C    JSON architecture (dim, z_dim, dim_mult, num_res_blocks, attn_scales,\n"
		"       temperal_downsample, decoder_widths); default: the real model\n"
		"  IN   safetensors with tensor '%s' f32 %s\n"
		"  OUT  safetensors with tensor '%s' f32 %s\n", cmd,
		!strcmp(cmd, "taehv-decode") ? " [--incremental]" : "",
		!strcmp(cmd, "taehv-decode") ? "taew2_1.pth" : "Wan2.1_VAE.pth", in,
		!strcmp(in, "frames") ? "[T,3,H,W] in [-1,1], T = 1+4k" : "[F,16,H/8,W/8]", outn,
		!strcmp(outn, "frames") ? "[T,3,H,W] in [-1,1]" : "[F,16,H/8,W/8] (raw mu)");
}

static int parse_int(const char *cmd, const char *opt, const char *s, int lo, int hi, int *dst)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == 0 || *end || v < lo || v > hi) {
		fprintf(stderr, "heru-wan %s: %s '%s' must be an integer in [%d, %d]\n", cmd, opt, s, lo, hi);
		return -1;
	}
	*dst = (int)v;
	return 0;
}

static int parse(int argc, char **argv, struct vae_opts *o)
{
	static const struct option opts[] = {
		{ "weights", required_argument, NULL, 'w' }, { "config", required_argument, NULL, 'c' },
		{ "input", required_argument, NULL, 'i' },   { "output", required_argument, NULL, 'o' },
		{ "device", required_argument, NULL, 'd' },  { "incremental", no_argument, NULL, 'n' },
		{ "height", required_argument, NULL, 'H' },  { "width", required_argument, NULL, 'W' },
		{ "iters", required_argument, NULL, 'k' },   { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = argv[0];
	int c;
	memset(o, 0, sizeof(*o));
	o->device = "cpu";
	o->iters = 3;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'w': o->weights = optarg; break;
		case 'c': o->config = optarg; break;
		case 'i': o->input = optarg; break;
		case 'o': o->output = optarg; break;
		case 'd': o->device = optarg; break;
		case 'n':
			if (strcmp(cmd, "taehv-decode"))
				goto bad;
			o->incremental = 1;
			break;
		case 'H':
			if (parse_int(cmd, "--height", optarg, 8, 4096, &o->height))
				return 2;
			break;
		case 'W':
			if (parse_int(cmd, "--width", optarg, 8, 4096, &o->width))
				return 2;
			break;
		case 'k':
			if (parse_int(cmd, "--iters", optarg, 1, 1000, &o->iters))
				return 2;
			break;
		case 'h':
			usage(stdout, cmd);
			return 1;
		default:
			goto bad;
		}
	}
	if (optind != argc)
		goto bad;
	if (strcmp(o->device, "cpu") && strcmp(o->device, "cuda")) {
		fprintf(stderr, "heru-wan %s: --device must be cpu or cuda, not '%s'\n", cmd, o->device);
		return 2;
	}
	if (!strcmp(cmd, "bench-vae")) {
		if (!o->height || !o->width)
			goto bad;
		return 0;
	}
	if (!o->weights || !o->input || !o->output)
		goto bad;
	return 0;
bad:
	usage(stderr, cmd);
	return 2;
}

#ifndef HERU_WAN_VAE_CUDA
static int no_cuda(const char *cmd)
{
	fprintf(stderr, "heru-wan %s: --device cuda is not available in this build (use --device cpu)\n",
		cmd);
	return 1;
}
#endif

/* Reads tensor NAME of rank 4 with dim 1 == C1 from PATH into a new f32 buffer. */
static float *read_input(const char *cmd, const char *path, const char *name, int c1,
			 int64_t *shape)
{
	char err[512];
	struct wt_file *f = wt_open(path, err, sizeof(err));
	float *d = NULL;
	if (!f) {
		fprintf(stderr, "heru-wan %s: %s\n", cmd, err);
		return NULL;
	}
	const struct wt_tensor *t = wt_find(f, name);
	if (!t || t->ndim != 4 || t->shape[1] != c1 || t->shape[0] < 1 || t->shape[2] < 1 ||
	    t->shape[3] < 1 || t->shape[0] > 100000 || t->shape[2] > 8192 || t->shape[3] > 8192) {
		fprintf(stderr, "heru-wan %s: '%s' needs a tensor '%s' of shape [N,%d,H,W]\n", cmd, path,
			name, c1);
		goto out;
	}
	memcpy(shape, t->shape, 4 * sizeof(int64_t));
	d = malloc(sizeof(float) * (size_t)wt_numel(t));
	if (!d || wt_read_f32(f, name, 4, shape, d, err, sizeof(err)) < 0) {
		fprintf(stderr, "heru-wan %s: %s\n", cmd, d ? err : "out of memory");
		free(d);
		d = NULL;
	}
out:
	wt_close(f);
	return d;
}

static int write_output(const char *cmd, const char *path, const char *name, const int64_t *shape,
			const float *d)
{
	char err[512];
	struct wt_writer *w = wt_writer_new();
	int rc = -1;
	if (w && wt_writer_add(w, name, WT_F32, 4, shape, d, err, sizeof(err)) == 0 &&
	    wt_writer_save(w, path, err, sizeof(err)) == 0)
		rc = 0;
	else
		fprintf(stderr, "heru-wan %s: %s\n", cmd, w ? err : "out of memory");
	wt_writer_free(w);
	return rc;
}

static struct wt_file *open_weights(const char *cmd, const char *path)
{
	char err[512];
	struct wt_file *f = wt_open(path, err, sizeof(err));
	if (!f)
		fprintf(stderr, "heru-wan %s: %s %s\n", cmd, err, VAE_GET_HINT);
	return f;
}

/* The start every subcommand shares: parse the options, refuse --device cuda in a build
 * without the CUDA VAE, load the config into VCFG and/or TCFG. Returns -1 to go on (with
 * *CUDA set), else the exit status. */
static int cmd_begin(int argc, char **argv, struct vae_opts *o, struct vae_config *vcfg,
		     struct taehv_config *tcfg, bool *cuda)
{
	char err[512];
	int rc = parse(argc, argv, o);
	if (rc)
		return rc == 1 ? 0 : rc;
	*cuda = !strcmp(o->device, "cuda");
#ifndef HERU_WAN_VAE_CUDA
	if (*cuda)
		return no_cuda(argv[0]);
#endif
	if (vae_config_load(o->config, vcfg, tcfg, err, sizeof(err))) {
		fprintf(stderr, "heru-wan %s: %s\n", argv[0], err);
		return 1;
	}
	return -1;
}

static int vae_cmd(int argc, char **argv, int encode)
{
	const char *cmd = argv[0];
	struct vae_opts o;
	struct vae_config cfg;
	char err[512];
	bool cuda;
	int rc = cmd_begin(argc, argv, &o, &cfg, NULL, &cuda);
	if (rc >= 0)
		return rc;
	int64_t shape[4], oshape[4];
	float *in = read_input(cmd, o.input, encode ? "frames" : "latents", encode ? 3 : cfg.z_dim,
			       shape);
	if (!in)
		return 1;
	struct wt_file *wf = NULL;
	struct vae_model *m = NULL;
	struct vae_stream *s = NULL;
#ifdef HERU_WAN_VAE_CUDA
	struct vae_cuda *vc = NULL;
#endif
	float *out = NULL;
	rc = 1;
	int sp = vae_config_spatial(&cfg), tf = vae_config_temporal(&cfg);
	int n = (int)shape[0], h = (int)shape[2], w = (int)shape[3];
	if (encode && ((n - 1) % tf || h % sp || w % sp)) {
		fprintf(stderr, "heru-wan %s: frames [%d,3,%d,%d]: T must be 1+%dk and H, W multiples of %d\n",
			cmd, n, h, w, tf, sp);
		goto out;
	}
	if (!(wf = open_weights(cmd, o.weights)))
		goto out;
	struct vae_source src = vae_source_wt(wf);
	m = vae_model_load(&cfg, &src, encode ? VAE_LOAD_ENCODER : VAE_LOAD_DECODER, err, sizeof(err));
	if (!m || !(s = vae_stream_new(m))) {
		fprintf(stderr, "heru-wan %s: %s\n", cmd, m ? "out of memory" : err);
		goto out;
	}
#ifdef HERU_WAN_VAE_CUDA
	if (cuda && !(vc = vae_cuda_new(m, encode ? VAE_LOAD_ENCODER : VAE_LOAD_DECODER,
				       encode ? h : h * sp, encode ? w : w * sp, 0, err, sizeof(err)))) {
		fprintf(stderr, "heru-wan %s: %s\n", cmd, err);
		goto out;
	}
#endif
	int total = encode ? vae_encode_count(m, 1, n) : vae_decode_count(m, 1, n);
	size_t osz = encode ? (size_t)cfg.z_dim * (h / sp) * (w / sp) : (size_t)3 * h * sp * w * sp;
	size_t isz = encode ? (size_t)3 * h * w : (size_t)cfg.z_dim * h * w;
	out = malloc(sizeof(float) * osz * (size_t)total);
	if (!out) {
		fprintf(stderr, "heru-wan %s: out of memory\n", cmd);
		goto out;
	}
	int done = 0, made = 0;
	while (done < n) {
		int first = encode ? vae_stream_first_encode(s) : vae_stream_first_decode(s);
		int step = encode ? (first ? (n > 1 ? 1 + tf : 1) : tf) : (first ? (n > 1 ? 2 : 1) : 1);
		int r;
#ifdef HERU_WAN_VAE_CUDA
		if (vc)
			r = encode ? vae_cuda_encode(vc, in + isz * done, step, out + osz * made, err, sizeof(err))
				   : vae_cuda_decode(vc, in + isz * done, step, out + osz * made, err, sizeof(err));
		else
#endif
		r = encode ? vae_encode(m, s, in + isz * done, step, h, w, out + osz * made, err,
					sizeof(err))
			   : vae_decode(m, s, in + isz * done, step, h, w, out + osz * made, err,
					sizeof(err));
		if (r) {
			fprintf(stderr, "heru-wan %s: %s\n", cmd, err);
			goto out;
		}
		made += encode ? vae_encode_count(m, first, step) : vae_decode_count(m, first, step);
		done += step;
	}
	oshape[0] = total;
	oshape[1] = encode ? cfg.z_dim : 3;
	oshape[2] = encode ? h / sp : h * sp;
	oshape[3] = encode ? w / sp : w * sp;
	if (write_output(cmd, o.output, encode ? "latents" : "frames", oshape, out) == 0)
		rc = 0;
out:
#ifdef HERU_WAN_VAE_CUDA
	vae_cuda_free(vc);
#endif
	free(in);
	free(out);
	vae_stream_free(s);
	vae_model_free(m);
	if (wf)
		wt_close(wf);
	return rc;
}

int cli_vae_encode(int argc, char **argv)
{
	return vae_cmd(argc, argv, 1);
}

int cli_vae_decode(int argc, char **argv)
{
	return vae_cmd(argc, argv, 0);
}

int cli_taehv_decode(int argc, char **argv)
{
	const char *cmd = argv[0];
	struct vae_opts o;
	struct taehv_config cfg;
	char err[512];
	bool cuda;
	int rc = cmd_begin(argc, argv, &o, NULL, &cfg, &cuda);
	if (rc >= 0)
		return rc;
	int64_t shape[4], oshape[4];
	float *in = read_input(cmd, o.input, "latents", 16, shape);
	if (!in)
		return 1;
	struct wt_file *wf = NULL;
	struct taehv_model *m = NULL;
	struct taehv_stream *s = NULL;
#ifdef HERU_WAN_VAE_CUDA
	struct taehv_cuda *tc = NULL;
#endif
	float *out = NULL;
	rc = 1;
	int n = (int)shape[0], h = (int)shape[2], w = (int)shape[3];
	if (n < 2) {
		fprintf(stderr, "heru-wan %s: the first call emits 4(F-1) frames: give at least 2 latents\n",
			cmd);
		goto out;
	}
	if (!(wf = open_weights(cmd, o.weights)))
		goto out;
	struct vae_source src = vae_source_wt(wf);
	m = taehv_model_load(&cfg, &src, err, sizeof(err));
	if (!m || !(s = taehv_stream_new(m, o.incremental))) {
		fprintf(stderr, "heru-wan %s: %s\n", cmd, m ? "out of memory" : err);
		goto out;
	}
#ifdef HERU_WAN_VAE_CUDA
	if (cuda && !(tc = taehv_cuda_new(m, o.incremental, h, w, err, sizeof(err)))) {
		fprintf(stderr, "heru-wan %s: %s\n", cmd, err);
		goto out;
	}
#endif
	int total = 4 * (n - 1);
	size_t osz = (size_t)3 * 64 * h * w, isz = (size_t)16 * h * w;
	out = malloc(sizeof(float) * osz * (size_t)total);
	if (!out) {
		fprintf(stderr, "heru-wan %s: out of memory\n", cmd);
		goto out;
	}
	int done = 0, made = 0;
	while (done < n) {
		int first = taehv_stream_first(s), step = first ? 2 : 1;
		int r;
#ifdef HERU_WAN_VAE_CUDA
		if (tc)
			r = taehv_cuda_decode(tc, in + isz * done, step, out + osz * made, err, sizeof(err));
		else
#endif
		r = taehv_decode(m, s, in + isz * done, step, h, w, out + osz * made, err, sizeof(err));
		if (r) {
			fprintf(stderr, "heru-wan %s: %s\n", cmd, err);
			goto out;
		}
		made += taehv_decode_count(first, step);
		done += step;
	}
	oshape[0] = total;
	oshape[1] = 3;
	oshape[2] = 8 * h;
	oshape[3] = 8 * w;
	if (write_output(cmd, o.output, "frames", oshape, out) == 0)
		rc = 0;
out:
#ifdef HERU_WAN_VAE_CUDA
	taehv_cuda_free(tc);
#endif
	free(in);
	free(out);
	taehv_stream_free(s);
	taehv_model_free(m);
	if (wf)
		wt_close(wf);
	return rc;
}

/* ---- bench-vae (CPU reference; the CUDA engine reports through the same lines) ---- */

static void report(const char *what, double ms, double flops)
{
	if (flops > 0)
		printf("%-34s %10.2f ms  %8.3f TF  %7.2f TFLOP/s\n", what, ms, flops / 1e12,
		       flops / 1e12 / (ms / 1e3));
	else
		printf("%-34s %10.2f ms\n", what, ms);
}

#ifdef HERU_WAN_VAE_CUDA
static int bench_cuda(const struct vae_config *cfg, const struct vae_source *src, int H, int W,
		      int iters)
{
	char err[512];
	int sp = vae_config_spatial(cfg), tf = vae_config_temporal(cfg), rc = 1;
	size_t fsz = (size_t)3 * H * W, lsz = (size_t)cfg->z_dim * (H / sp) * (W / sp);
	double t0 = wan_now_ms();
	struct vae_model *m = vae_model_load(cfg, src, VAE_LOAD_ENCODER | VAE_LOAD_DECODER, err,
					     sizeof(err));
	double t_load = wan_now_ms() - t0;
	t0 = wan_now_ms();
	struct vae_cuda *v = m ? vae_cuda_new(m, VAE_LOAD_ENCODER | VAE_LOAD_DECODER, H, W,
					      !getenv("HERU_VAE_NO_FIND"), err, sizeof(err)) : NULL;
	double t_build = wan_now_ms() - t0;
	float *frames = malloc(sizeof(float) * fsz * (1 + tf));
	float *lat = malloc(sizeof(float) * lsz * 2);
	float *out = malloc(sizeof(float) * fsz * (1 + tf));
	if (!v || !frames || !lat || !out) {
		fprintf(stderr, "heru-wan bench-vae: %s\n", v ? "out of memory" : err);
		goto out;
	}
	for (size_t i = 0; i < fsz * (1 + tf); i++)
		frames[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
	printf("bench-vae: %dx%d, device cuda (encoder %s, decoder %s, cuDNN convs%s, CUDA graphs), "
	       "random weights, %d iters\n", H, W, vae_cuda_encoder_fp16(v) ? "fp16" : "bf16",
	       vae_cuda_decoder_fp16(v) ? "fp16" : "bf16", getenv("HERU_VAE_FUSE") ? " fused" : "", iters);
	printf("%-34s %10.1f ms (host fp32 random weights), build %.1f ms\n", "load", t_load, t_build);
	double fe = vae_flops_encode(cfg, H, W), fd = vae_flops_decode(cfg, H, W);
	t0 = wan_now_ms();
	if (vae_cuda_encode(v, frames, 1 + tf, lat, err, sizeof(err)))
		goto fail;
	printf("%-34s %10.2f ms wall, %8.2f ms GPU\n", "first encode (1+4 frames)", wan_now_ms() - t0,
	       vae_cuda_last_gpu_ms(v));
	double best = 1e30, bestw = 1e30, sum = 0;
	for (int i = 0; i < iters + 1; i++) {
		t0 = wan_now_ms();
		if (vae_cuda_encode(v, frames, tf, out, err, sizeof(err)))
			goto fail;
		double wall = wan_now_ms() - t0, g = vae_cuda_last_gpu_ms(v);
		if (i == 0)
			continue; /* the graph is captured on the second steady call */
		best = g < best ? g : best;
		bestw = wall < bestw ? wall : bestw;
		sum += g;
	}
	report("steady encode (4 frames), GPU", best, fe);
	printf("%-34s %10.2f ms mean GPU, %.2f ms wall best (incl. host copies)\n", "", sum / iters, bestw);
	t0 = wan_now_ms();
	if (vae_cuda_decode(v, lat, 2, out, err, sizeof(err)))
		goto fail;
	printf("%-34s %10.2f ms wall, %8.2f ms GPU\n", "first decode (2 latents)", wan_now_ms() - t0,
	       vae_cuda_last_gpu_ms(v));
	best = bestw = 1e30;
	sum = 0;
	for (int i = 0; i < iters + 1; i++) {
		t0 = wan_now_ms();
		if (vae_cuda_decode(v, lat, 1, out, err, sizeof(err)))
			goto fail;
		double wall = wan_now_ms() - t0, g = vae_cuda_last_gpu_ms(v);
		if (i == 0)
			continue;
		best = g < best ? g : best;
		bestw = wall < bestw ? wall : bestw;
		sum += g;
	}
	report("steady decode (1 latent), GPU", best, fd);
	printf("%-34s %10.2f ms mean GPU, %.2f ms wall best (incl. host copies)\n", "", sum / iters, bestw);
	static const char *cls[VAE_PROF_N] = { "cuDNN convs", "cuBLASLt GEMMs", "RMS_norm+SiLU",
					       "other elementwise", "cache copies" };
	for (int d = 0; d < 2; d++) {
		double ms[VAE_PROF_N], fl[VAE_PROF_N], tot = 0;
		if (vae_cuda_profile(v, d, ms, fl, err, sizeof(err)))
			goto fail;
		for (int k = 0; k < VAE_PROF_N; k++)
			tot += ms[k];
		printf("profile, steady %s (eager, op by op): %.2f ms\n", d ? "decode" : "encode", tot);
		for (int k = 0; k < VAE_PROF_N; k++) {
			if (fl[k] > 0)
				printf("  %-32s %10.2f ms  %8.3f TF  %7.2f TFLOP/s\n", cls[k], ms[k], fl[k] / 1e12,
				       fl[k] / 1e12 / (ms[k] / 1e3));
			else
				printf("  %-32s %10.2f ms\n", cls[k], ms[k]);
		}
	}
	printf("%-34s %10.1f MiB weights + %.1f MiB activations/caches/workspace\n", "device memory",
	       vae_cuda_weight_bytes(v) / 1048576.0, vae_cuda_act_bytes(v) / 1048576.0);
	{
		struct taehv_config tcfg;
		taehv_config_default(&tcfg);
		uint64_t tseed = 0;
		struct vae_source tsrc = vae_source_random(&tseed);
		struct taehv_model *tm = taehv_model_load(&tcfg, &tsrc, err, sizeof(err));
		if (!tm)
			goto fail;
		double ft = taehv_flops_latent(&tcfg, H, W);
		for (int inc = 1; inc >= 0; inc--) {
			struct taehv_cuda *t = taehv_cuda_new(tm, inc, H / 8, W / 8, err, sizeof(err));
			if (!t || taehv_cuda_decode(t, lat, 2, out, err, sizeof(err))) {
				taehv_cuda_free(t);
				taehv_model_free(tm);
				goto fail;
			}
			best = bestw = 1e30;
			for (int i = 0; i < iters + 4; i++) {
				t0 = wan_now_ms();
				if (taehv_cuda_decode(t, lat, 1, out, err, sizeof(err))) {
					taehv_cuda_free(t);
					taehv_model_free(tm);
					goto fail;
				}
				double wall = wan_now_ms() - t0, g = taehv_cuda_last_gpu_ms(t);
				if (i < 4)
					continue; /* context filled, graphs captured */
				best = g < best ? g : best;
				bestw = wall < bestw ? wall : bestw;
			}
			report(inc ? "TAEHV incremental (1 latent), GPU" : "TAEHV context (3+1 latents), GPU", best,
			       inc ? ft : 4 * ft);
			printf("%-34s %10.2f ms wall best (incl. host copies of 4 frames)\n", "", bestw);
			taehv_cuda_free(t);
		}
		taehv_model_free(tm);
	}
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "heru-wan bench-vae: %s\n", err);
out:
	free(frames);
	free(lat);
	free(out);
	vae_cuda_free(v);
	vae_model_free(m);
	return rc;
}
#endif

int cli_bench_vae(int argc, char **argv)
{
	const char *cmd = argv[0];
	struct vae_opts o;
	struct vae_config cfg;
	struct taehv_config tcfg;
	char err[512];
	bool cuda;
	int rc = cmd_begin(argc, argv, &o, &cfg, &tcfg, &cuda);
	if (rc >= 0)
		return rc;
	int sp = vae_config_spatial(&cfg), tf = vae_config_temporal(&cfg);
	int H = o.height, W = o.width, h = H / sp, w = W / sp;
	if (H % sp || W % sp) {
		fprintf(stderr, "heru-wan %s: --height and --width must be multiples of %d\n", cmd, sp);
		return 2;
	}
	uint64_t seed = 0;
	struct vae_source src = vae_source_random(&seed);
#ifdef HERU_WAN_VAE_CUDA
	if (cuda)
		return bench_cuda(&cfg, &src, H, W, o.iters);
#endif
	struct vae_model *m = vae_model_load(&cfg, &src, VAE_LOAD_ENCODER | VAE_LOAD_DECODER, err,
					     sizeof(err));
	struct taehv_model *tm = taehv_model_load(&tcfg, &src, err, sizeof(err));
	struct vae_stream *s = m ? vae_stream_new(m) : NULL;
	struct taehv_stream *ts[2] = { tm ? taehv_stream_new(tm, 0) : NULL,
				       tm ? taehv_stream_new(tm, 1) : NULL };
	size_t fsz = (size_t)3 * H * W, lsz = (size_t)cfg.z_dim * h * w;
	float *frames = malloc(sizeof(float) * fsz * (1 + tf));
	float *lat = malloc(sizeof(float) * lsz * 2);
	float *out = malloc(sizeof(float) * fsz * (1 + tf));
	rc = 1;
	if (!m || !tm || !s || !ts[0] || !ts[1] || !frames || !lat || !out) {
		fprintf(stderr, "heru-wan %s: %s\n", cmd, !m || !tm ? err : "out of memory");
		goto out;
	}
	for (size_t i = 0; i < fsz * (1 + tf); i++)
		frames[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
	printf("bench-vae: %dx%d, device cpu (fp32 reference), random weights, %d iters\n", H, W,
	       o.iters);
	double t0 = wan_now_ms();
	if (vae_encode(m, s, frames, 1 + tf, H, W, lat, err, sizeof(err)))
		goto fail;
	report("first encode (1+4 frames)", wan_now_ms() - t0, -1);
	double fe = vae_flops_encode(&cfg, H, W), fd = vae_flops_decode(&cfg, H, W);
	double best = 1e30;
	for (int i = 0; i < o.iters; i++) {
		t0 = wan_now_ms();
		if (vae_encode(m, s, frames, tf, H, W, out, err, sizeof(err)))
			goto fail;
		double ms = wan_now_ms() - t0;
		best = ms < best ? ms : best;
	}
	report("steady encode (4 frames)", best, fe);
	t0 = wan_now_ms();
	if (vae_decode(m, s, lat, 2, h, w, out, err, sizeof(err)))
		goto fail;
	report("first decode (2 latents)", wan_now_ms() - t0, -1);
	best = 1e30;
	for (int i = 0; i < o.iters; i++) {
		t0 = wan_now_ms();
		if (vae_decode(m, s, lat, 1, h, w, out, err, sizeof(err)))
			goto fail;
		double ms = wan_now_ms() - t0;
		best = ms < best ? ms : best;
	}
	report("steady decode (1 latent)", best, fd);
	double ft = taehv_flops_latent(&tcfg, H, W);
	for (int k = 0; k < 2; k++) {
		if (taehv_decode(tm, ts[k], lat, 2, h, w, out, err, sizeof(err)))
			goto fail;
		best = 1e30;
		for (int i = 0; i < o.iters + 3; i++) { /* fill the 3-latent context first */
			t0 = wan_now_ms();
			if (taehv_decode(tm, ts[k], lat, 1, h, w, out, err, sizeof(err)))
				goto fail;
			double ms = wan_now_ms() - t0;
			best = ms < best ? ms : best;
		}
		report(k ? "TAEHV incremental decode (1 latent)" : "TAEHV context decode (3+1 latents)",
		       best, k ? ft : 4 * ft);
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("%-34s %10.1f MiB (host max RSS)\n", "peak memory", ru.ru_maxrss / 1024.0);
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "heru-wan %s: %s\n", cmd, err);
out:
	free(frames);
	free(lat);
	free(out);
	vae_stream_free(s);
	taehv_stream_free(ts[0]);
	taehv_stream_free(ts[1]);
	vae_model_free(m);
	taehv_model_free(tm);
	return rc;
}
