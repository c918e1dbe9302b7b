/* check_wt_file.c: tensor files: the safetensors writer and reader (round trip, dtype
 * conversion, shape checks, corrupt and truncated files), shard indexes, and torch.save
 * checkpoints from tests/fixtures/wan/loader (made by tests/reference/make_loader_fixtures.py). */
#include "config.h"

#include <check.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wt_file.h"

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
	static char buf[4][256];
	static int k;

	k = (k + 1) % 4;
	snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
	return buf[k];
}

static void setup(void)
{
	strcpy(tmpdir, "/tmp/check_wt_file.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

static long file_size(const char *path)
{
	FILE *fp = fopen(path, "rb");
	long n;

	ck_assert_ptr_nonnull(fp);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fclose(fp);
	return n;
}

/* Writes a small file with an f32 [2,3], a bf16 [4], an f16 [3], an i64 [2] and a 0-d f64. */
static void write_sample(const char *path)
{
	const float a[6] = { 1, -2, 3.5f, 0.25f, -0.125f, 1e-3f };
	const uint16_t b[4] = { wt_f32_to_bf16(1.0f), wt_f32_to_bf16(-3.0f), wt_f32_to_bf16(0.5f),
				wt_f32_to_bf16(1024.0f) };
	const uint16_t h[3] = { wt_f32_to_f16(0.5f), wt_f32_to_f16(-65504.0f), wt_f32_to_f16(6e-8f) };
	const int64_t iv[2] = { 700, -5 };
	const double d = 2.25;
	const int64_t s23[2] = { 2, 3 }, s4[1] = { 4 }, s3[1] = { 3 }, s2[1] = { 2 };
	struct wt_writer *w = wt_writer_new();
	char err[256];

	ck_assert_ptr_nonnull(w);
	ck_assert_int_eq(wt_writer_add(w, "a", WT_F32, 2, s23, a, err, sizeof err), 0);
	ck_assert_int_eq(wt_writer_add(w, "model.b", WT_BF16, 1, s4, b, err, sizeof err), 0);
	ck_assert_int_eq(wt_writer_add(w, "h", WT_F16, 1, s3, h, err, sizeof err), 0);
	ck_assert_int_eq(wt_writer_add(w, "i", WT_I64, 1, s2, iv, err, sizeof err), 0);
	ck_assert_int_eq(wt_writer_add(w, "d", WT_F64, 0, NULL, &d, err, sizeof err), 0);
	ck_assert_int_eq(wt_writer_add(w, "a", WT_F32, 2, s23, a, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "twice"), "%s", err);
	ck_assert_int_eq(wt_writer_save(w, path, err, sizeof err), 0);
	wt_writer_free(w);
}

START_TEST(roundtrip)
{
	const char *p = tmp_path("s.safetensors");
	const int64_t s23[2] = { 2, 3 }, s32[2] = { 3, 2 }, s4[1] = { 4 }, s3[1] = { 3 },
		      s2[1] = { 2 };
	const struct wt_tensor *t;
	struct wt_file *f;
	float v[6];
	int64_t iv[2];
	char err[256];

	write_sample(p);
	f = wt_open(p, err, sizeof err);
	ck_assert_msg(f != NULL, "%s", err);
	ck_assert_str_eq(wt_path(f), p);
	ck_assert_uint_eq(wt_count(f), 5);
	ck_assert_str_eq(wt_at(f, 0)->name, "a");  /* file order */
	ck_assert_str_eq(wt_at(f, 4)->name, "d");
	ck_assert_ptr_null(wt_at(f, 5));
	ck_assert_int_eq(wt_read_f32(f, "a", 2, s23, v, err, sizeof err), 0);
	ck_assert(v[0] == 1 && v[1] == -2 && v[2] == 3.5f && v[5] == 1e-3f);
	/* "b" is found under its StreamDiffusionV2 name "model.b" */
	t = wt_find(f, "b");
	ck_assert_ptr_nonnull(t);
	ck_assert_str_eq(t->name, "model.b");
	ck_assert_int_eq(t->dtype, WT_BF16);
	ck_assert_int_eq(wt_read_f32(f, "b", 1, s4, v, err, sizeof err), 0);
	ck_assert(v[0] == 1 && v[1] == -3 && v[2] == 0.5f && v[3] == 1024);
	ck_assert_int_eq(wt_read_f32(f, "h", 1, s3, v, err, sizeof err), 0);
	ck_assert(v[0] == 0.5f && v[1] == -65504.0f);
	ck_assert(fabsf(v[2] - 5.96046448e-08f) < 1e-12f);  /* f16 subnormal */
	ck_assert_int_eq(wt_read_i64(f, "i", 1, s2, iv, err, sizeof err), 0);
	ck_assert(iv[0] == 700 && iv[1] == -5);
	ck_assert_int_eq(wt_read_f32(f, "d", 0, NULL, v, err, sizeof err), 0);
	ck_assert(v[0] == 2.25f);
	/* errors name the file, the tensor and the mismatch */
	ck_assert_int_eq(wt_read_f32(f, "a", 2, s32, v, err, sizeof err), -1);
	ck_assert_msg(strstr(err, p) && strstr(err, "'a'") && strstr(err, "[2,3]") &&
		      strstr(err, "[3,2]"), "%s", err);
	ck_assert_int_eq(wt_read_f32(f, "nope", 2, s23, v, err, sizeof err), -1);
	ck_assert_msg(strstr(err, p) && strstr(err, "'nope'"), "%s", err);
	ck_assert_int_eq(wt_read_f32(f, "i", 1, s2, v, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "I64"), "%s", err);
	ck_assert_int_eq(wt_read_i64(f, "a", 2, s23, iv, err, sizeof err), -1);
	ck_assert_ptr_null(wt_load_f32(f, "a", 1, s4, err, sizeof err));
	{
		float *l = wt_load_f32(f, "a", 2, s23, err, sizeof err);

		ck_assert_ptr_nonnull(l);
		ck_assert(l[3] == 0.25f);
		free(l);
	}
	wt_close(f);
}
END_TEST

START_TEST(conversions)
{
	ck_assert_uint_eq(wt_f32_to_bf16(1.0f), 0x3f80);
	ck_assert_uint_eq(wt_f32_to_bf16(1.00390625f), 0x3f80);      /* tie to even */
	ck_assert_uint_eq(wt_f32_to_bf16(1.01171875f), 0x3f82);      /* tie to even (up) */
	ck_assert(isnan(wt_bf16_to_f32(wt_f32_to_bf16(NAN))));
	ck_assert_uint_eq(wt_f32_to_f16(1.0f), 0x3c00);
	ck_assert_uint_eq(wt_f32_to_f16(65504.0f), 0x7bff);
	ck_assert_uint_eq(wt_f32_to_f16(70000.0f), 0x7c00);
	ck_assert_uint_eq(wt_f32_to_f16(-2.0f), 0xc000);
	ck_assert_uint_eq(wt_f32_to_f16(1.0f + 1.0f / 2048), 0x3c00);  /* tie to even */
	ck_assert(wt_f16_to_f32(0x0001) == 5.9604644775390625e-08f);
	ck_assert(wt_f16_to_f32(0x3555) == 0.333251953125f);
	for (int i = 0; i < 0x7c00; i++)  /* every finite half survives a round trip */
		ck_assert_uint_eq(wt_f32_to_f16(wt_f16_to_f32((uint16_t)i)), i);
}
END_TEST

/* Big fill tensors written through the threaded window path equal a direct fill. */
static void fill_pattern(void *ctx, int64_t first, int64_t count, void *dst)
{
	float *o = dst;

	(void)ctx;
	for (int64_t i = 0; i < count; i++)
		o[i] = (float)((first + i) % 1000003);
}

static void fill_u16(void *ctx, int64_t first, int64_t count, void *dst)
{
	uint16_t *o = dst;

	(void)ctx;
	for (int64_t i = 0; i < count; i++)
		o[i] = (uint16_t)((first + i) * 7);
}

START_TEST(writer_fill_windows)
{
	/* 3 x 9M-element f32 tensors after an odd-length bf16 one: elements straddle the 64 MiB
	 * windows at unaligned offsets. */
	const int64_t s_odd[1] = { 3 }, s_big[1] = { 9000001 };
	const char *p = tmp_path("fill.safetensors");
	struct wt_writer *w = wt_writer_new();
	const char *names[3] = { "x", "y", "z" };
	struct wt_file *f;
	char err[256];

	ck_assert_int_eq(wt_writer_add_fill(w, "odd", WT_BF16, 1, s_odd, fill_u16, NULL, err,
					    sizeof err), 0);
	for (int k = 0; k < 3; k++)
		ck_assert_int_eq(wt_writer_add_fill(w, names[k], WT_F32, 1, s_big, fill_pattern, NULL,
						    err, sizeof err), 0);
	wt_writer_set_threads(w, 3);
	ck_assert_int_eq(wt_writer_save(w, p, err, sizeof err), 0);
	wt_writer_free(w);
	f = wt_open(p, err, sizeof err);
	ck_assert_msg(f != NULL, "%s", err);
	for (int k = 0; k < 3; k++) {
		const struct wt_tensor *t = wt_find(f, names[k]);
		const unsigned char *d = t->data;

		ck_assert_ptr_nonnull(t);
		for (int64_t i = 0; i < s_big[0]; i++) {
			float v;

			memcpy(&v, d + 4 * i, 4);
			if (v != (float)(i % 1000003))
				ck_abort_msg("tensor %s element %lld is %g", names[k], (long long)i, v);
		}
	}
	{
		const struct wt_tensor *t = wt_find(f, "odd");
		uint16_t v[3];

		memcpy(v, t->data, 6);
		ck_assert(v[0] == 0 && v[1] == 7 && v[2] == 14);
	}
	wt_close(f);
}
END_TEST

/* Copies the first N bytes of SRC to DST, optionally patching bytes at OFF. */
static void write_variant(const char *src, const char *dst, long n, long off, const void *patch,
			  size_t plen)
{
	FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
	char *buf = malloc((size_t)n + 1);

	ck_assert(in && out && buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, in), (size_t)n);
	if (patch)
		memcpy(buf + off, patch, plen);
	ck_assert_uint_eq(fwrite(buf, 1, (size_t)n, out), (size_t)n);
	fclose(in);
	fclose(out);
	free(buf);
}

static void expect_open_fails(const char *path, const char *needle)
{
	char err[512] = "";
	struct wt_file *f = wt_open(path, err, sizeof err);

	ck_assert_msg(f == NULL, "'%s' opened", path);
	ck_assert_msg(strstr(err, path), "error '%s' does not name the file", err);
	ck_assert_msg(strstr(err, needle), "error '%s' lacks '%s'", err, needle);
}

START_TEST(corrupt_safetensors)
{
	const char *p = tmp_path("good.safetensors"), *q = tmp_path("bad.safetensors");
	long n;
	const unsigned char huge[8] = { 0, 0, 0, 0, 0, 0, 0, 0x10 };
	const unsigned char big[8] = { 0xff, 0xff, 0xff, 0x00, 0, 0, 0, 0 };

	write_sample(p);
	n = file_size(p);
	write_variant(p, q, n - 1, 0, NULL, 0);
	expect_open_fails(q, "'d'");               /* the last tensor is cut */
	write_variant(p, q, n - 40, 0, NULL, 0);
	expect_open_fails(q, "truncated");
	write_variant(p, q, 20, 0, NULL, 0);
	expect_open_fails(q, "truncated");
	write_variant(p, q, 5, 0, NULL, 0);
	expect_open_fails(q, "too short");
	write_variant(p, q, n, 0, huge, 8);
	expect_open_fails(q, "header length");
	write_variant(p, q, n, 0, big, 8);
	expect_open_fails(q, "truncated");
	write_variant(p, q, n, 8, "x", 1);        /* break the JSON */
	expect_open_fails(q, "JSON");
	write_variant(p, q, 0, 0, NULL, 0);
	expect_open_fails(q, "empty");
	expect_open_fails(tmp_path("missing.safetensors"), "No such file");
}
END_TEST

/* A hand-written header: bad dtype, bad sizes, too many dims. */
static void write_raw(const char *path, const char *header, size_t datalen)
{
	FILE *fp = fopen(path, "wb");
	uint64_t n = strlen(header);
	unsigned char len[8];

	ck_assert_ptr_nonnull(fp);
	for (int i = 0; i < 8; i++)
		len[i] = (unsigned char)(n >> (8 * i));
	fwrite(len, 1, 8, fp);
	fwrite(header, 1, n, fp);
	for (size_t i = 0; i < datalen; i++)
		fputc(0, fp);
	fclose(fp);
}

START_TEST(bad_headers)
{
	const char *q = tmp_path("raw.safetensors");
	struct wt_file *f;
	char err[256];

	write_raw(q, "{\"t\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
	expect_open_fails(q, "unsupported dtype 'F8_E4M3'");
	write_raw(q, "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8);
	expect_open_fails(q, "'t' spans 4 bytes");
	write_raw(q, "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,0]}}", 8);
	expect_open_fails(q, "'t' lies outside");
	write_raw(q, "{\"t\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8);
	expect_open_fails(q, "invalid shape");
	write_raw(q, "{\"t\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,8]}}", 8);
	expect_open_fails(q, "invalid");
	write_raw(q, "{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4);
	expect_open_fails(q, "9 dimensions");
	write_raw(q, "{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4);
	expect_open_fails(q, "malformed");
	write_raw(q, "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
		  "\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
	expect_open_fails(q, "JSON");
	/* metadata is skipped; an empty tensor is fine */
	write_raw(q, "{\"__metadata__\":{\"format\":\"pt\"},\"e\":{\"dtype\":\"BF16\",\"shape\":[0,3],"
		  "\"data_offsets\":[0,0]}}", 0);
	f = wt_open(q, err, sizeof err);
	ck_assert_msg(f != NULL, "%s", err);
	ck_assert_uint_eq(wt_count(f), 1);
	ck_assert_int_eq(wt_at(f, 0)->shape[0], 0);
	wt_close(f);
}
END_TEST

START_TEST(failed_save_keeps_file)
{
	const char *p = tmp_path("keep.safetensors");
	const int64_t s[1] = { 1 };
	const float one = 1;
	struct wt_writer *w = wt_writer_new();
	char err[256];

	write_sample(p);
	ck_assert_int_eq(wt_writer_add(w, "x", WT_F32, 1, s, &one, err, sizeof err), 0);
	ck_assert_int_eq(wt_writer_save(w, tmp_path("no/such/dir.safetensors"), err, sizeof err), -1);
	ck_assert_msg(strstr(err, "no/such/dir.safetensors"), "%s", err);
	wt_writer_free(w);
}
END_TEST

Suite *wt_suite(void);
Suite *wt_suite(void)
{
	Suite *s = suite_create("wt_file");
	TCase *tc = tcase_create("safetensors");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, roundtrip);
	tcase_add_test(tc, conversions);
	tcase_add_test(tc, writer_fill_windows);
	tcase_add_test(tc, corrupt_safetensors);
	tcase_add_test(tc, bad_headers);
	tcase_add_test(tc, failed_save_keeps_file);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(wt_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
