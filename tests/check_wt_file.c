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

#include <jansson.h>

#include "check_util.h"
#include "dit_test_util.h"
#include "wan_config.h"
#include "wan_dit_weights.h"
#include "wt_file.h"

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
	static struct test_path_ring ring;
	return test_path(&ring, tmpdir, name);
}

static void setup(void)
{
	/* tmpfs when there is one: the corruption tests write thousands of small files */
	strcpy(tmpdir, access("/dev/shm", W_OK) ? "/tmp/check_wt_file.XXXXXX"
						 : "/dev/shm/check_wt_file.XXXXXX");
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
	{
		uint16_t hb[6];

		ck_assert_int_eq(wt_read_bf16(f, "b", 1, s4, hb, err, sizeof err), 0);
		ck_assert(hb[1] == wt_f32_to_bf16(-3.0f));
		ck_assert_int_eq(wt_read_bf16(f, "a", 2, s23, hb, err, sizeof err), 0);
		ck_assert(hb[2] == wt_f32_to_bf16(3.5f) && hb[5] == wt_f32_to_bf16(1e-3f));
		ck_assert_int_eq(wt_read_bf16(f, "h", 1, s3, hb, err, sizeof err), 0);
		ck_assert(hb[0] == wt_f32_to_bf16(0.5f));
		ck_assert_int_eq(wt_read_bf16(f, "i", 1, s2, hb, err, sizeof err), -1);
		ck_assert_int_eq(wt_read_bf16(f, "a", 1, s4, hb, err, sizeof err), -1);
	}
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
	write_raw(q, "{\"t\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],"
		  "\"data_offsets\":[0,8]}}", 8);
	expect_open_fails(q, "invalid");
	write_raw(q, "{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
		  "\"data_offsets\":[0,4]}}", 4);
	expect_open_fails(q, "9 dimensions");
	write_raw(q, "{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4);
	expect_open_fails(q, "malformed");
	write_raw(q, "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
		  "\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
	expect_open_fails(q, "JSON");
	/* header lengths whose first byte looks like '{' (0x7b) or a pickle (0x80, 0x01) */
	for (int k = 0; k < 2; k++) {
		char hdr[512];
		size_t want = k ? 0x180 : 0x7b;

		snprintf(hdr, sizeof hdr, "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}");
		while (strlen(hdr) < want)
			strcat(hdr, " ");
		write_raw(q, hdr, 4);
		f = wt_open(q, err, sizeof err);
		ck_assert_msg(f != NULL, "header length %zu: %s", want, err);
		ck_assert_uint_eq(wt_count(f), 1);
		wt_close(f);
	}
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


/* ---- fixtures from tests/reference/make_loader_fixtures.py ---- */

static char fixdir[1024];

static const char *fix_path(const char *name)
{
	static struct test_path_ring ring;
	return test_path(&ring, fixdir, name);
}

static json_t *load_expected(void)
{
	json_error_t jerr;
	json_t *root = json_load_file(fix_path("expected.json"), 0, &jerr);

	ck_assert_msg(root != NULL, "expected.json: %s", jerr.text);
	return root;
}

static void checksum(const float *v, int64_t n, double *sum, double *wsum)
{
	*sum = 0;
	*wsum = 0;
	for (int64_t i = 0; i < n; i++) {
		*sum += v[i];
		*wsum += (double)v[i] * (double)(i % 7 + 1);
	}
}

static void expect_close(double got, double want, const char *file, const char *name)
{
	ck_assert_msg(fabs(got - want) <= 1e-9 * (1 + fabs(want)),
		      "%s: tensor '%s' checksum %.17g, expected %.17g", file, name, got, want);
}

/* Every tensor of every good fixture matches the DiT table's shape for tiny.json and the
 * checksums PyTorch computed. */
START_TEST(fixture_files)
{
	struct wan_dit_config cfg;
	struct wan_dit_weight *tab;
	json_t *exp = load_expected(), *files = json_object_get(exp, "files"), *fe;
	size_t ntab, fi;
	char err[512];

	ck_assert_int_eq(wan_dit_config_load(fix_path("tiny.json"), &cfg, err, sizeof err), 0);
	tab = wan_dit_weights_new(&cfg, &ntab);
	ck_assert_ptr_nonnull(tab);
	ck_assert_uint_ge(json_array_size(files), 10);
	json_array_foreach(files, fi, fe) {
		const char *fname = json_string_value(json_object_get(fe, "file"));
		const char *set = json_string_value(json_object_get(fe, "set"));
		const char *prefix = json_string_value(json_object_get(fe, "prefix"));
		const char *dtype = json_string_value(json_object_get(fe, "dtype"));
		json_t *sums = json_object_get(json_object_get(exp, "sets"), set);
		json_t *extras = json_object_get(fe, "extras"), *xv;
		const char *xname;
		struct wt_file *f = wt_open(fix_path(fname), err, sizeof err);

		ck_assert_msg(f != NULL, "%s: %s", fname, err);
		ck_assert_uint_eq(wt_count(f), ntab + json_object_size(extras));
		for (size_t i = 0; i < ntab; i++) {
			const struct wt_tensor *t = wt_find(f, tab[i].name);
			json_t *want = json_object_get(sums, tab[i].name);
			char full[128];
			double s, ws;
			float *v;

			ck_assert_msg(t != NULL, "%s: no '%s'", fname, tab[i].name);
			snprintf(full, sizeof full, "%s%s", prefix, tab[i].name);
			ck_assert_str_eq(t->name, full);
			ck_assert_str_eq(wt_dtype_name(t->dtype), dtype);
			v = wt_load_f32(f, tab[i].name, tab[i].ndim, tab[i].shape, err, sizeof err);
			ck_assert_msg(v != NULL, "%s", err);
			checksum(v, wan_dit_weight_numel(&tab[i]), &s, &ws);
			expect_close(s, json_real_value(json_array_get(want, 0)), fname, tab[i].name);
			expect_close(ws, json_real_value(json_array_get(want, 1)), fname, tab[i].name);
			free(v);
		}
		json_object_foreach(extras, xname, xv) {
			json_t *shape = json_object_get(xv, "shape"), *vals = json_object_get(xv, "values");
			int64_t shp[WT_MAX_DIMS];
			float v[64];

			ck_assert_uint_le(json_array_size(vals), 64);
			for (size_t d = 0; d < json_array_size(shape); d++)
				shp[d] = json_integer_value(json_array_get(shape, d));
			if (json_is_true(json_object_get(xv, "int"))) {
				int64_t iv[64];

				ck_assert_msg(wt_read_i64(f, xname, (int)json_array_size(shape), shp, iv,
							  err, sizeof err) == 0, "%s", err);
				ck_assert_int_eq(wt_find(f, xname)->dtype, WT_I64);
				for (size_t k = 0; k < json_array_size(vals); k++)
					ck_assert_int_eq(iv[k], json_integer_value(json_array_get(vals, k)));
				continue;
			}
			ck_assert_msg(wt_read_f32(f, xname, (int)json_array_size(shape), shp, v, err,
						  sizeof err) == 0, "%s", err);
			for (size_t k = 0; k < json_array_size(vals); k++)
				ck_assert_msg(v[k] == (float)json_number_value(json_array_get(vals, k)),
					      "%s: '%s'[%zu] = %g", fname, xname, k, v[k]);
		}
		wt_close(f);
	}
	free(tab);
	json_decref(exp);
}
END_TEST

/* The loaders check shapes against the config: a checkpoint of one size does not load as
 * another; the error names the file, the tensor and both shapes. */
START_TEST(fixture_shape_mismatch)
{
	struct wan_dit_config cfg;
	struct wan_dit_weight *tab;
	struct wt_file *f;
	size_t n;
	char err[512];
	float *v;

	ck_assert_int_eq(wan_dit_config_load(fix_path("tiny.json"), &cfg, err, sizeof err), 0);
	cfg.ffn_dim = 48;
	tab = wan_dit_weights_new(&cfg, &n);
	f = wt_open(fix_path("sdv2_generator_bf16.pt"), err, sizeof err);
	ck_assert_msg(f != NULL, "%s", err);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(tab[i].name, "blocks.0.ffn.0.weight"))
			continue;
		v = wt_load_f32(f, tab[i].name, tab[i].ndim, tab[i].shape, err, sizeof err);
		ck_assert_ptr_null(v);
		ck_assert_msg(strstr(err, "sdv2_generator_bf16.pt") &&
			      strstr(err, "'model.blocks.0.ffn.0.weight'") && strstr(err, "[32,16]") &&
			      strstr(err, "[48,16]"), "%s", err);
	}
	wt_close(f);
	free(tab);
}
END_TEST

/* The whole-checkpoint check of the DiT loader: complete files pass, the views file (with
 * extra tensors) passes only when not strict, another config fails naming the tensor. */
START_TEST(fixture_dit_check)
{
	struct wan_dit_config cfg, other;
	json_t *exp = load_expected(), *files = json_object_get(exp, "files"), *fe;
	struct wt_file *f;
	char err[512];
	size_t i;

	ck_assert_int_eq(wan_dit_config_load(fix_path("tiny.json"), &cfg, err, sizeof err), 0);
	json_array_foreach(files, i, fe) {
		const char *fname = json_string_value(json_object_get(fe, "file"));
		int has_extras = json_object_size(json_object_get(fe, "extras")) > 0;

		f = wt_open(fix_path(fname), err, sizeof err);
		ck_assert_msg(f != NULL, "%s", err);
		ck_assert_msg(wan_dit_weights_check(f, &cfg, 0, err, sizeof err) == 0, "%s", err);
		ck_assert_int_eq(wan_dit_weights_check(f, &cfg, 1, err, sizeof err), has_extras ? -1 : 0);
		if (has_extras)
			ck_assert_msg(strstr(err, "'extra.") && strstr(err, fname), "%s", err);
		wt_close(f);
	}
	f = wan_dit_weights_open(fix_path("zip64_manual.pt"), &cfg, err, sizeof err);
	ck_assert_msg(f != NULL, "%s", err);
	wt_close(f);
	ck_assert_ptr_null(wan_dit_weights_open(fix_path("views_f32.pt"), &cfg, err, sizeof err));
	ck_assert_ptr_null(wan_dit_weights_open(tmp_path("nope.pt"), &cfg, err, sizeof err));
	ck_assert_msg(strstr(err, "nope.pt") && strstr(err, "random-weights") &&
		      strstr(err, "model.pt"), "%s", err);
	f = wt_open(fix_path("sdv2_generator_bf16.pt"), err, sizeof err);
	other = cfg;
	other.num_layers = 3;
	ck_assert_int_eq(wan_dit_weights_check(f, &other, 1, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "'blocks.2.modulation'"), "%s", err);
	other = cfg;
	other.text_dim = 4096;
	ck_assert_int_eq(wan_dit_weights_check(f, &other, 1, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "'model.text_embedding.0.weight'") && strstr(err, "[16,4096]"),
		      "%s", err);
	wt_close(f);
	json_decref(exp);
}
END_TEST

START_TEST(fixture_broken)
{
	json_t *exp = load_expected(), *broken = json_object_get(exp, "broken"), *b;
	size_t i;

	ck_assert_uint_ge(json_array_size(broken), 6);
	json_array_foreach(broken, i, b)
		expect_open_fails(fix_path(json_string_value(json_object_get(b, "file"))),
				  json_string_value(json_object_get(b, "error")));
	json_decref(exp);
}
END_TEST

/* Every prefix of a real checkpoint is refused cleanly (never a crash, never a success). */
START_TEST(fixture_every_truncation)
{
	const char *names[] = { "sdv2_generator_bf16.pt", "zip64_manual.pt", "tiny_bf16.safetensors" };

	for (size_t k = 0; k < 3; k++) {
		const char *src = fix_path(names[k]), *dst = tmp_path("cut.bin");
		long n = file_size(src);

		for (long len = 1; len < n; len += (len < 256 ? 1 : 97)) {
			char err[512];
			struct wt_file *f;

			write_variant(src, dst, len, 0, NULL, 0);
			f = wt_open(dst, err, sizeof err);
			ck_assert_msg(f == NULL, "%s cut at %ld bytes opened", names[k], len);
			ck_assert_msg(strstr(err, dst), "%s", err);
		}
	}
}
END_TEST

/* Single-byte corruption anywhere in a .pt never crashes (the outcome may be success when
 * the byte is in tensor data or an unused field). */
START_TEST(fixture_byte_flips)
{
	const char *src = fix_path("ema_with_optimizer.pt"), *dst = tmp_path("flip.pt");
	long n = file_size(src);

	for (long off = 0; off < n; off += 13) {
		const unsigned char x = 0xa5;
		char err[512];
		struct wt_file *f;

		write_variant(src, dst, n, off, &x, 1);
		f = wt_open(dst, err, sizeof err);
		if (f) {
			for (size_t i = 0; i < wt_count(f); i++) {
				const struct wt_tensor *t = wt_at(f, i);
				volatile unsigned char sink = 0;

				/* every byte of every tensor lies inside the mapping */
				for (size_t b = 0; b < t->nbytes; b++)
					sink ^= ((const unsigned char *)t->data)[b];
				(void)sink;
			}
			wt_close(f);
		} else {
			ck_assert_msg(strstr(err, dst), "%s", err);
		}
	}
}
END_TEST

static void write_text(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	ck_assert_ptr_nonnull(fp);
	fputs(text, fp);
	fclose(fp);
}

START_TEST(bad_index)
{
	const char *idx = tmp_path("m.safetensors.index.json");
	char cmd[1024];

	snprintf(cmd, sizeof cmd, "cp '%s' '%s' '%s/'", fix_path("model-00001-of-00002.safetensors"),
		 fix_path("model-00002-of-00002.safetensors"), tmpdir);
	ck_assert_int_eq(system(cmd), 0);
	write_text(idx, "{\"weight_map\": {\"head.head.bias\": \"model-00001-of-00002.safetensors\"}}");
	expect_open_fails(idx, "'head.head.bias' is listed in shard");
	write_text(idx, "{\"weight_map\": {\"head.head.bias\": \"../etc/passwd\"}}");
	expect_open_fails(idx, "not a shard file name");
	write_text(idx, "{\"weight_map\": {\"x\": \"missing.safetensors\"}}");
	expect_open_fails(idx, "missing.safetensors");
	write_text(idx, "{\"weight_map\": {\"x\": \"m.safetensors.index.json\"}}");
	expect_open_fails(idx, "not a tensor file");  /* an index naming itself */
	write_text(idx, "{\"metadata\": {}}");
	expect_open_fails(idx, "weight_map");
	write_text(idx, "{\"weight_map\": {\"head.head.bias\": \"model-00002-of-00002.safetensors\"}}");
	{
		char err[512];
		struct wt_file *f = wt_open(idx, err, sizeof err);

		ck_assert_msg(f != NULL, "%s", err);
		ck_assert_uint_eq(wt_count(f), 1);  /* the weight map decides */
		ck_assert_ptr_nonnull(wt_find(f, "head.head.bias"));
		wt_close(f);
	}
}
END_TEST

/* A minimal stored zip holding PREFIX "x": x/data.pkl = PKL (and x/data/0 = 16 zero bytes). */
static void put16(FILE *fp, unsigned v)
{
	fputc((int)(v & 0xff), fp);
	fputc((int)((v >> 8) & 0xff), fp);
}

static void put32(FILE *fp, unsigned long v)
{
	put16(fp, (unsigned)(v & 0xffff));
	put16(fp, (unsigned)((v >> 16) & 0xffff));
}

static void write_pickle_zip(const char *path, const void *pkl, size_t len)
{
	const char *names[2] = { "x/data.pkl", "x/data/0" };
	static const unsigned char zeros[16];
	const void *data[2] = { pkl, zeros };
	size_t lens[2] = { len, sizeof zeros };
	long offs[2], cd;
	FILE *fp = fopen(path, "wb");

	ck_assert_ptr_nonnull(fp);
	for (int i = 0; i < 2; i++) {
		offs[i] = ftell(fp);
		put32(fp, 0x04034b50);
		put16(fp, 20); put16(fp, 0); put16(fp, 0); put16(fp, 0); put16(fp, 0);
		put32(fp, 0); put32(fp, lens[i]); put32(fp, lens[i]);
		put16(fp, (unsigned)strlen(names[i])); put16(fp, 0);
		fputs(names[i], fp);
		fwrite(data[i], 1, lens[i], fp);
	}
	cd = ftell(fp);
	for (int i = 0; i < 2; i++) {
		put32(fp, 0x02014b50);
		put16(fp, 20); put16(fp, 20); put16(fp, 0); put16(fp, 0); put16(fp, 0); put16(fp, 0);
		put32(fp, 0); put32(fp, lens[i]); put32(fp, lens[i]);
		put16(fp, (unsigned)strlen(names[i])); put16(fp, 0); put16(fp, 0); put16(fp, 0);
		put16(fp, 0); put32(fp, 0); put32(fp, (unsigned long)offs[i]);
		fputs(names[i], fp);
	}
	{
		long end = ftell(fp);

		put32(fp, 0x06054b50);
		put16(fp, 0); put16(fp, 0); put16(fp, 2); put16(fp, 2);
		put32(fp, (unsigned long)(end - cd)); put32(fp, (unsigned long)cd); put16(fp, 0);
	}
	fclose(fp);
}

#define T_STORAGE "(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" \
	"0X\x03\x00\x00\x00" "cpuK\x04tQ"
#define T_REBUILD "ctorch._utils\n_rebuild_tensor_v2\n("

START_TEST(hostile_pickles)
{
	static const struct { const char *pkl; size_t len; const char *error; } cases[] = {
#define C(lit, e) { lit, sizeof lit - 1, e }
		C("\x80\x02K\x05.", "holds no dict"),
		C("\x80\x02}.", "holds no tensors"),
		C("\x80\x02}", "no STOP"),
		C("\x80\x02s.", "stack underflow"),
		C("\x80\x02h\x05.", "unknown memo"),
		C("\x80\x02}r\xff\xff\xff\x7f.", "memo index out of range"),
		C("\x80\x02X\xff\xff\xff\x7f", "truncated"),
		C("\x80\x02\x8a\x09", "wider than 64 bits"),
		C("\x80\x02}(X\x01\x00\x00\x00" "aK\x01Qu.", "persistent id"),
		C("\x80\x02" "cbuiltins\neval\n.", "'builtins.eval'"),
		C("\x80\x02" "ctorch\nload\n.", "'torch.load'"),
		C("\x80\x02" "c__builtin__\nset\n.", "'__builtin__.set'"),
		C("\x80\x02(X\x01\x00\x00\x00" "al.", "opcode 'l'"),
		C("\x80\x02" "ccollections\nOrderedDict\nK\x01\x85R.", "unexpected arguments"),
		C("\x80\x02K\x01)R.", "not callable"),
		/* a tensor of 8 elements on a 4-element storage */
		C("\x80\x02}X\x01\x00\x00\x00w" T_REBUILD T_STORAGE "K\x00K\x08\x85K\x01\x85\x89)tRs.",
		  "reaches past the end of its storage"),
		/* a storage claiming more elements than its 16-byte record holds */
		C("\x80\x02}X\x01\x00\x00\x00w" T_REBUILD "(X\x07\x00\x00\x00storagectorch\nFloatStorage\n"
		  "X\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x09tQK\x00K\x09\x85K\x01\x85\x89)tRs.",
		  "less than"),
		/* a storage key naming another folder */
		C("\x80\x02}X\x01\x00\x00\x00w" T_REBUILD "(X\x07\x00\x00\x00storagectorch\nFloatStorage\n"
		  "X\x04\x00\x00\x00../0X\x03\x00\x00\x00" "cpuK\x04tQK\x00K\x04\x85K\x01\x85\x89)tRs.",
		  "bad storage key"),
#undef C
	};
	const char *path = tmp_path("hostile.pt");

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		write_pickle_zip(path, cases[i].pkl, cases[i].len);
		expect_open_fails(path, cases[i].error);
	}
	/* the same tensor, well formed, loads: [4] f32 of zeros, shared by two names, with the
	 * state dict's _metadata applied by BUILD */
	{
		static const char ok[] = "\x80\x02" "ccollections\nOrderedDict\n)Rq\x00(X\x01\x00\x00\x00w"
			T_REBUILD T_STORAGE "K\x00K\x04\x85K\x01\x85\x88)tRq\x01"
			"X\x01\x00\x00\x00vh\x01u}X\x09\x00\x00\x00_metadata}sb.";
		const int64_t s4[1] = { 4 };
		float v[4] = { 1, 1, 1, 1 };
		char err[512];
		struct wt_file *f;

		write_pickle_zip(path, ok, sizeof ok - 1);
		f = wt_open(path, err, sizeof err);
		ck_assert_msg(f != NULL, "%s", err);
		ck_assert_uint_eq(wt_count(f), 2);
		ck_assert_int_eq(wt_read_f32(f, "v", 1, s4, v, err, sizeof err), 0);
		ck_assert(v[0] == 0 && v[3] == 0);
		ck_assert_ptr_eq(wt_find(f, "w")->data, wt_find(f, "v")->data);
		wt_close(f);
	}
	/* torch 2.x's form for a tensor with Python attributes: _rebuild_from_type_v2 */
	{
		static const char ok[] = "\x80\x02}X\x01\x00\x00\x00w"
			"ctorch._tensor\n_rebuild_from_type_v2\n("
			"ctorch._utils\n_rebuild_tensor_v2\nctorch\nTensor\n("
			T_STORAGE "K\x01K\x02\x85K\x01\x85\x89)t}X\x03\x00\x00\x00" "fooK\x01stRs.";
		const int64_t s2[1] = { 2 };
		float v[2] = { 1, 1 };
		char err[512];
		struct wt_file *f;

		write_pickle_zip(path, ok, sizeof ok - 1);
		f = wt_open(path, err, sizeof err);
		ck_assert_msg(f != NULL, "%s", err);
		ck_assert_int_eq(wt_read_f32(f, "w", 1, s2, v, err, sizeof err), 0);
		ck_assert(v[0] == 0 && v[1] == 0);
		wt_close(f);
	}
	/* deeply nested marks */
	{
		size_t n = 70000;
		char *deep = malloc(n + 3);

		deep[0] = '\x80';
		deep[1] = 2;
		memset(deep + 2, '(', n);
		deep[n + 2] = '.';
		write_pickle_zip(path, deep, n + 3);
		expect_open_fails(path, "too deep");
		free(deep);
	}
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
	tc = tcase_create("fixtures");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, fixture_files);
	tcase_add_test(tc, fixture_shape_mismatch);
	tcase_add_test(tc, fixture_dit_check);
	tcase_add_test(tc, fixture_broken);
	tcase_add_test(tc, fixture_every_truncation);
	tcase_add_test(tc, fixture_byte_flips);
	tcase_add_test(tc, bad_index);
	tcase_add_test(tc, hostile_pickles);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	const char *top = getenv("top_srcdir");

	snprintf(fixdir, sizeof fixdir, "%s/tests/fixtures/wan/loader", top && *top ? top : "..");
	return check_run_suite(wt_suite());
}
