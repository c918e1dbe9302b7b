/* check_vae.c: the Wan VAE fp32 C reference against golden tensors from
 * tests/reference/wan_vae_ref.py (tiny config, random weights, 4 streamed chunks). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_vae_fixture.h"
#include "vae_config.h"
#include "taehv_model.h"
#include "vae_model.h"
#include "wt_file.h"

static struct fx_file *weights, *golden;
static struct vae_config cfg;
static struct vae_model *model;
static char err[512];

static void setup(void)
{
	ck_assert_msg(vae_config_load(fx_path("tiny_config.json"), &cfg, NULL, err, sizeof(err)) == 0,
		      "%s", err);
	weights = fx_open(fx_path("tiny_vae.safetensors"), err, sizeof(err));
	ck_assert_msg(weights, "%s", err);
	golden = fx_open(fx_path("tiny_golden.safetensors"), err, sizeof(err));
	ck_assert_msg(golden, "%s", err);
	struct vae_source src = fx_source(weights);
	model = vae_model_load(&cfg, &src, VAE_LOAD_ENCODER | VAE_LOAD_DECODER, err, sizeof(err));
	ck_assert_msg(model, "%s", err);
}

static void teardown(void)
{
	vae_model_free(model);
	fx_close(weights);
	fx_close(golden);
}

static const float *gold(const char *name, int64_t *shape)
{
	int nd;
	const float *d = fx_get(golden, name, &nd, shape);
	ck_assert_msg(d != NULL && nd == 4, "golden tensor %s missing", name);
	return d;
}

/* Encode 5, 4, 4, 4 frames: 2 + 1 + 1 + 1 latents matching the PyTorch stream. */
START_TEST(test_encode_stream)
{
	int64_t fs[8], ls[8];
	const float *frames = gold("frames", fs), *want = gold("latents", ls);
	int h = (int)fs[2], w = (int)fs[3];
	size_t fsz = 3 * (size_t)h * w, lsz = 16 * (size_t)ls[2] * ls[3];
	ck_assert_int_eq(fs[0], 17);
	ck_assert_int_eq(ls[0], 5);
	struct vae_stream *s = vae_stream_new(model);
	float *out = calloc(5 * lsz, sizeof(float));
	static const int chunks[4] = { 5, 4, 4, 4 };
	int t0 = 0, l0 = 0;
	for (int c = 0; c < 4; c++) {
		int n = vae_encode_count(model, vae_stream_first_encode(s), chunks[c]);
		ck_assert_int_eq(n, c == 0 ? 2 : 1);
		ck_assert_msg(vae_encode(model, s, frames + t0 * fsz, chunks[c], h, w, out + l0 * lsz,
					 err, sizeof(err)) == 0, "%s", err);
		double r = fx_rel_max(out + l0 * lsz, want + l0 * lsz, n * lsz);
		ck_assert_msg(r < 1e-4, "chunk %d: latents differ from PyTorch (rel %.3g)", c, r);
		t0 += chunks[c];
		l0 += n;
	}
	/* a reset stream reproduces the first chunk exactly */
	vae_stream_reset(s);
	float *again = calloc(2 * lsz, sizeof(float));
	ck_assert(vae_encode(model, s, frames, 5, h, w, again, err, sizeof(err)) == 0);
	ck_assert(memcmp(again, out, 2 * lsz * sizeof(float)) == 0);
	free(again);
	free(out);
	vae_stream_free(s);
}
END_TEST

/* Decode 2, 1, 1, 1 latents: 5 + 4 + 4 + 4 frames clamped to [-1,1]. */
START_TEST(test_decode_stream)
{
	int64_t ls[8], fs[8];
	const float *lat = gold("latents_in", ls), *want = gold("decoded", fs);
	int h = (int)ls[2], w = (int)ls[3];
	size_t lsz = 16 * (size_t)h * w, fsz = 3 * (size_t)fs[2] * fs[3];
	ck_assert_int_eq(fs[0], 17);
	struct vae_stream *s = vae_stream_new(model);
	float *out = calloc(17 * fsz, sizeof(float));
	static const int chunks[4] = { 2, 1, 1, 1 };
	int l0 = 0, t0 = 0;
	for (int c = 0; c < 4; c++) {
		int n = vae_decode_count(model, vae_stream_first_decode(s), chunks[c]);
		ck_assert_int_eq(n, c == 0 ? 5 : 4);
		ck_assert_msg(vae_decode(model, s, lat + l0 * lsz, chunks[c], h, w, out + t0 * fsz, err,
					 sizeof(err)) == 0, "%s", err);
		double r = fx_rel_max(out + t0 * fsz, want + t0 * fsz, n * fsz);
		ck_assert_msg(r < 1e-4, "chunk %d: frames differ from PyTorch (rel %.3g)", c, r);
		l0 += chunks[c];
		t0 += n;
	}
	for (size_t i = 0; i < 17 * fsz; i++)
		ck_assert(out[i] >= -1.0f && out[i] <= 1.0f);
	free(out);
	vae_stream_free(s);
}
END_TEST

/* Wrong frame counts and sizes are refused with a message and leave the stream unchanged. */
START_TEST(test_bad_calls)
{
	int64_t fs[8];
	const float *frames = gold("frames", fs);
	int h = (int)fs[2], w = (int)fs[3];
	struct vae_stream *s = vae_stream_new(model);
	float *out = calloc(16 * 16 * (size_t)h * w, sizeof(float));
	err[0] = 0;
	ck_assert_int_eq(vae_encode(model, s, frames, 4, h, w, out, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "1+4k") != NULL, "%s", err);
	ck_assert(vae_stream_first_encode(s));
	ck_assert_int_eq(vae_encode(model, s, frames, 5, h - 4, w, out, err, sizeof(err)), -1);
	ck_assert(vae_stream_first_encode(s));
	ck_assert(vae_encode(model, s, frames, 5, h, w, out, err, sizeof(err)) == 0);
	ck_assert(!vae_stream_first_encode(s));
	ck_assert_int_eq(vae_encode(model, s, frames, 5, h, w, out, err, sizeof(err)), -1);
	ck_assert_int_eq(vae_encode(model, s, frames, 4, h, w + 8, out, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "reset") != NULL, "%s", err);
	ck_assert_int_eq(vae_decode(model, s, frames, 0, 4, 6, out, err, sizeof(err)), -1);
	free(out);
	vae_stream_free(s);
}
END_TEST

/* A missing or mis-shaped tensor fails the load with the file and the tensor named. */
static struct fx_file *bad_file;
static int drop_read(void *ctx, const char *name, int ndim, const int64_t *shape, float *dst,
		     char *e, size_t el)
{
	if (!strcmp(name, "decoder.upsamples.3.time_conv.weight")) {
		snprintf(e, el, "'%s': tensor '%s' is missing", "tiny_vae.safetensors", name);
		return -1;
	}
	struct vae_source s = fx_source(bad_file);
	return s.read(ctx, name, ndim, shape, dst, e, el);
}

START_TEST(test_load_errors)
{
	struct vae_source src = fx_source(weights);
	bad_file = weights;
	src.read = drop_read;
	struct vae_model *m = vae_model_load(&cfg, &src, VAE_LOAD_DECODER, err, sizeof(err));
	ck_assert(m == NULL);
	ck_assert_msg(strstr(err, "decoder.upsamples.3.time_conv.weight"), "%s", err);
	/* a config that does not match the file: shapes differ */
	struct vae_config c2 = cfg;
	c2.dim = 12;
	src = fx_source(weights);
	m = vae_model_load(&c2, &src, VAE_LOAD_ENCODER, err, sizeof(err));
	ck_assert(m == NULL);
	ck_assert_msg(strstr(err, "encoder.conv1.weight") && strstr(err, "tiny_vae"), "%s", err);
	/* the encoder alone cannot decode */
	src = fx_source(weights);
	m = vae_model_load(&cfg, &src, VAE_LOAD_ENCODER, err, sizeof(err));
	ck_assert_msg(m != NULL, "%s", err);
	struct vae_stream *s = vae_stream_new(m);
	float lat[16 * 24], out[3 * 32 * 48];
	memset(lat, 0, sizeof(lat));
	ck_assert_int_eq(vae_decode(m, s, lat, 1, 4, 6, out, err, sizeof(err)), -1);
	vae_stream_free(s);
	vae_model_free(m);
}
END_TEST

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert(f);
	fputs(text, f);
	fclose(f);
}

START_TEST(test_config)
{
	struct vae_config c;
	struct taehv_config t;
	ck_assert(vae_config_load(NULL, &c, &t, err, sizeof(err)) == 0);
	ck_assert_int_eq(c.dim, 96);
	ck_assert_int_eq(vae_config_spatial(&c), 8);
	ck_assert_int_eq(vae_config_temporal(&c), 4);
	ck_assert_int_eq(t.widths[0], 256);
	char path[] = "/tmp/check_vae_cfgXXXXXX";
	int fd = mkstemp(path);
	ck_assert(fd >= 0);
	close(fd);
	write_file(path, "{\"dim\": 0}");
	ck_assert_int_eq(vae_config_load(path, &c, NULL, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "'dim'") && strstr(err, path), "%s", err);
	write_file(path, "{\"dim_mult\": [1,2,2], \"temperal_downsample\": [true]}");
	ck_assert_int_eq(vae_config_load(path, &c, NULL, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "temperal_downsample"), "%s", err);
	write_file(path, "{\"decoder_widths\": [1,2,3]}");
	ck_assert_int_eq(vae_config_load(path, NULL, &t, err, sizeof(err)), -1);
	write_file(path, "not json");
	ck_assert_int_eq(vae_config_load(path, &c, NULL, err, sizeof(err)), -1);
	ck_assert_int_eq(c.dim, 96); /* unchanged */
	unlink(path);
}
END_TEST

/* heru-wan vae-encode / vae-decode stream the fixture like the library calls above. */
static int run_cli(const char *args)
{
	char cmd[20480];
	const char *top = getenv("top_builddir");
	snprintf(cmd, sizeof(cmd), "%s/heru-wan %s", top ? top : "..", args);
	return system(cmd);
}

START_TEST(test_cli)
{
	char dir[] = "/tmp/check_vae_cliXXXXXX", args[16384], out[4200];
	ck_assert(mkdtemp(dir));
	char cfgp[2048], wp[2048], gp[2048];
	snprintf(cfgp, sizeof(cfgp), "%s", fx_path("tiny_config.json"));
	snprintf(wp, sizeof(wp), "%s", fx_path("tiny_vae.safetensors"));
	snprintf(gp, sizeof(gp), "%s", fx_path("tiny_golden.safetensors"));
	static const struct {
		const char *cmd, *out_name, *gold_name;
	} runs[2] = { { "vae-encode", "latents", "latents" }, { "vae-decode", "frames", "decoded" } };
	/* the decoder's input: the golden latents_in under the CLI's tensor name */
	char inp[2100];
	snprintf(inp, sizeof(inp), "%s/in.safetensors", dir);
	{
		int64_t ls[8];
		const float *lat = gold("latents_in", ls);
		struct wt_writer *wr = wt_writer_new();
		ck_assert(wt_writer_add(wr, "latents", WT_F32, 4, ls, lat, err, sizeof(err)) == 0);
		ck_assert_msg(wt_writer_save(wr, inp, err, sizeof(err)) == 0, "%s", err);
		wt_writer_free(wr);
	}
	for (int i = 0; i < 2; i++) {
		snprintf(out, sizeof(out), "%s/%s.safetensors", dir, runs[i].out_name);
		snprintf(args, sizeof(args), "%s --weights %s --config %s --input %s --output %s",
			 runs[i].cmd, wp, cfgp, i ? inp : gp, out);
		ck_assert_int_eq(run_cli(args), 0);
		struct fx_file *f = fx_open(out, err, sizeof(err));
		ck_assert_msg(f, "%s", err);
		int nd;
		int64_t a[8], b[8];
		const float *got = fx_get(f, runs[i].out_name, &nd, a);
		const float *want = fx_get(golden, runs[i].gold_name, &nd, b);
		ck_assert(got && want);
		ck_assert(memcmp(a, b, sizeof(int64_t) * 4) == 0);
		ck_assert(fx_rel_max(got, want, (size_t)(a[0] * a[1] * a[2] * a[3])) < 1e-4);
		fx_close(f);
		unlink(out);
	}
	/* taehv-decode in both modes on the same latents */
	static const char *modes[2][2] = { { "", "taehv_context" }, { "--incremental", "taehv_incremental" } };
	for (int i = 0; i < 2; i++) {
		snprintf(out, sizeof(out), "%s/t.safetensors", dir);
		snprintf(args, sizeof(args), "taehv-decode %s --weights %s --config %s --input %s --output %s",
			 modes[i][0], fx_path("tiny_taehv.safetensors"), cfgp, inp, out);
		ck_assert_int_eq(run_cli(args), 0);
		struct fx_file *f = fx_open(out, err, sizeof(err));
		ck_assert_msg(f, "%s", err);
		int nd;
		int64_t a[8], b[8];
		const float *got = fx_get(f, "frames", &nd, a);
		const float *want = fx_get(golden, modes[i][1], &nd, b);
		ck_assert(got && want && a[0] == 16 && memcmp(a, b, sizeof(int64_t) * 4) == 0);
		ck_assert(fx_rel_max(got, want, (size_t)(a[0] * a[1] * a[2] * a[3])) < 1e-4);
		fx_close(f);
		unlink(out);
	}
	/* usage errors exit 2, bad files exit 1 with one line naming the file */
	ck_assert_int_eq(WEXITSTATUS(run_cli("vae-encode --input x 2>/dev/null")), 2);
	snprintf(args, sizeof(args), "vae-decode --weights %s/missing.pth --input %s --output %s/o "
		 "2>/dev/null", dir, gp, dir);
	ck_assert_int_eq(WEXITSTATUS(run_cli(args)), 1);
	unlink(inp);
	rmdir(dir);
}
END_TEST

static int n_tensors;
static void count_tensor(void *ctx, const char *name, int ndim, const int64_t *shape)
{
	n_tensors++;
	if (!strcmp(name, "decoder.upsamples.3.time_conv.weight"))
		ck_assert(ndim == 5 && shape[0] == 768 && shape[1] == 384 && shape[2] == 3);
}

/* The real architecture: the 194 tensors of Wan2.1_VAE.pth (spec §3.3) and the analytic FLOPs
 * of spec §5.6 / §5.7. */
START_TEST(test_flops)
{
	struct vae_config c;
	struct taehv_config t;
	vae_config_default(&c);
	taehv_config_default(&t);
	n_tensors = 0;
	vae_model_each_tensor(&c, VAE_LOAD_ENCODER | VAE_LOAD_DECODER, count_tensor, NULL);
	ck_assert_int_eq(n_tensors, 194);
	ck_assert(fabs(vae_flops_encode(&c, 480, 832) / 1e12 - 8.05) < 0.01);
	ck_assert(fabs(vae_flops_decode(&c, 480, 832) / 1e12 - 13.55) < 0.01);
	ck_assert(fabs(vae_flops_encode(&c, 512, 512) / 1e12 - 5.27) < 0.01);
	ck_assert(fabs(vae_flops_decode(&c, 512, 512) / 1e12 - 8.88) < 0.01);
	ck_assert(fabs(4 * taehv_flops_latent(&t, 480, 832) / 1e12 - 2.18) < 0.01);
	ck_assert(fabs(4 * taehv_flops_latent(&t, 512, 512) / 1e12 - 1.43) < 0.01);
}
END_TEST

static Suite *vae_suite(void)
{
	Suite *s = suite_create("vae");
	TCase *tc = tcase_create("reference");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_encode_stream);
	tcase_add_test(tc, test_decode_stream);
	tcase_add_test(tc, test_bad_calls);
	tcase_add_test(tc, test_load_errors);
	tcase_add_test(tc, test_cli);
	suite_add_tcase(s, tc);
	TCase *tc2 = tcase_create("config");
	tcase_add_test(tc2, test_config);
	tcase_add_test(tc2, test_flops);
	suite_add_tcase(s, tc2);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(vae_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
