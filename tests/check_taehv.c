/* check_taehv.c: the TAEHV fp32 C reference against golden tensors from
 * tests/reference/wan_vae_ref.py (tiny widths, random weights, 4 streamed calls, both modes). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_vae_fixture.h"
#include "taehv_model.h"
#include "vae_config.h"

static struct fx_file *weights, *golden;
static struct taehv_config cfg;
static struct taehv_model *model;
static char err[512];

static void setup(void)
{
	ck_assert_msg(vae_config_load(fx_path("tiny_config.json"), NULL, &cfg, err, sizeof(err)) == 0,
		      "%s", err);
	weights = fx_open(fx_path("tiny_taehv.safetensors"), err, sizeof(err));
	ck_assert_msg(weights, "%s", err);
	golden = fx_open(fx_path("tiny_golden.safetensors"), err, sizeof(err));
	ck_assert_msg(golden, "%s", err);
	struct vae_source src = fx_source(weights);
	/* the file's decoder.7 TGrow has twice the rows: the load-time patch keeps the last ones */
	int64_t sh[8];
	ck_assert_int_eq(src.shape(src.ctx, "decoder.7.conv.weight", sh), 4);
	ck_assert_int_eq(sh[0], 2 * cfg.widths[0]);
	model = taehv_model_load(&cfg, &src, err, sizeof(err));
	ck_assert_msg(model, "%s", err);
}

static void teardown(void)
{
	taehv_model_free(model);
	fx_close(weights);
	fx_close(golden);
}

static void run_mode(int incremental, const char *golden_name)
{
	int64_t ls[8], gs[8];
	int nd;
	const float *lat = fx_get(golden, "latents_in", &nd, ls);
	const float *want = fx_get(golden, golden_name, &nd, gs);
	ck_assert(lat && want);
	int h = (int)ls[2], w = (int)ls[3];
	size_t lsz = 16 * (size_t)h * w, fsz = 3 * (size_t)gs[2] * gs[3];
	ck_assert_int_eq(gs[0], 16);
	ck_assert_int_eq(gs[2], 8 * h);
	struct taehv_stream *s = taehv_stream_new(model, incremental);
	float *out = calloc(16 * fsz, sizeof(float));
	static const int chunks[4] = { 2, 1, 1, 1 };
	int l0 = 0, t0 = 0;
	for (int c = 0; c < 4; c++) {
		int n = taehv_decode_count(taehv_stream_first(s), chunks[c]);
		ck_assert_int_eq(n, 4);
		ck_assert_msg(taehv_decode(model, s, lat + l0 * lsz, chunks[c], h, w, out + t0 * fsz,
					   err, sizeof(err)) == 0, "%s", err);
		double r = fx_rel_max(out + t0 * fsz, want + t0 * fsz, n * fsz);
		ck_assert_msg(r < 1e-4, "%s call %d: frames differ from PyTorch (rel %.3g)", golden_name,
			      c, r);
		l0 += chunks[c];
		t0 += n;
	}
	free(out);
	taehv_stream_free(s);
}

START_TEST(test_context_mode)
{
	run_mode(0, "taehv_context");
}
END_TEST

START_TEST(test_incremental_mode)
{
	run_mode(1, "taehv_incremental");
}
END_TEST

/* The two modes agree on the first call (same window) and differ later (memory vs. context). */
START_TEST(test_modes_differ)
{
	int nd;
	int64_t a[8], b[8];
	const float *x = fx_get(golden, "taehv_context", &nd, a);
	const float *y = fx_get(golden, "taehv_incremental", &nd, b);
	size_t fsz = 3 * (size_t)a[2] * a[3];
	ck_assert(fx_rel_max(x, y, 4 * fsz) < 1e-5);
	ck_assert(fx_rel_max(x + 12 * fsz, y + 12 * fsz, 4 * fsz) > 1e-4);
}
END_TEST

static const char *missing;
static int miss_read(void *ctx, const char *name, int ndim, const int64_t *shape, float *dst,
		     char *e, size_t el)
{
	if (!strcmp(name, missing)) {
		snprintf(e, el, "'tiny_taehv.safetensors': tensor '%s' is missing", name);
		return -1;
	}
	struct vae_source s = fx_source(ctx);
	return s.read(ctx, name, ndim, shape, dst, e, el);
}

START_TEST(test_load_errors)
{
	struct vae_source src = fx_source(weights);
	src.read = miss_read;
	missing = "decoder.16.conv.2.bias";
	ck_assert(taehv_model_load(&cfg, &src, err, sizeof(err)) == NULL);
	ck_assert_msg(strstr(err, "decoder.16.conv.2.bias"), "%s", err);
	struct taehv_config c2 = cfg;
	c2.widths[1] = 12;
	src = fx_source(weights);
	ck_assert(taehv_model_load(&c2, &src, err, sizeof(err)) == NULL);
	ck_assert_msg(strstr(err, "decoder.8.weight"), "%s", err);
	struct taehv_stream *s = taehv_stream_new(model, 0);
	float buf[16];
	ck_assert_int_eq(taehv_decode(model, s, buf, 0, 4, 6, buf, err, sizeof(err)), -1);
	ck_assert(taehv_stream_first(s));
	taehv_stream_free(s);
}
END_TEST

static Suite *taehv_suite(void)
{
	Suite *s = suite_create("taehv");
	TCase *tc = tcase_create("reference");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_context_mode);
	tcase_add_test(tc, test_incremental_mode);
	tcase_add_test(tc, test_modes_differ);
	tcase_add_test(tc, test_load_errors);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(taehv_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
