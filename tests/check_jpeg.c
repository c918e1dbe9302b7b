/* check_jpeg.c: TurboJPEG wrappers and resizing (server/jpeg.c). */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_util.h"
#include "jpeg.h"

static uint8_t *gradient(int w, int h)
{
	uint8_t *px = malloc((size_t)w * h * 3);
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			px[(y * w + x) * 3] = (uint8_t)(x * 255 / (w - 1));
			px[(y * w + x) * 3 + 1] = (uint8_t)(y * 255 / (h - 1));
			px[(y * w + x) * 3 + 2] = 100;
		}
	return px;
}

START_TEST(encode_decode_roundtrip)
{
	struct jpeg_codec *jc = jpeg_codec_new();
	uint8_t *px = gradient(96, 64), *jpeg, *back;
	size_t n;
	int w, h;
	char err[200];
	long diff = 0;

	ck_assert_int_eq(jpeg_encode(jc, px, 96, 64, 90, &jpeg, &n, err, sizeof(err)), 0);
	ck_assert_int_eq(jpeg[0], 0xFF);
	ck_assert_int_eq(jpeg[1], 0xD8);
	ck_assert_int_eq(jpeg_probe(jc, jpeg, n, &w, &h, err, sizeof(err)), 0);
	ck_assert_int_eq(w, 96);
	ck_assert_int_eq(h, 64);
	ck_assert_int_eq(jpeg_decode(jc, jpeg, n, &back, &w, &h, err, sizeof(err)), 0);
	for (int i = 0; i < 96 * 64 * 3; i++)
		diff += labs((long)back[i] - px[i]);
	/* a smooth gradient at quality 90 stays within a few levels on average */
	ck_assert_msg(diff / (96 * 64 * 3) < 4, "mean abs error %ld", diff / (96 * 64 * 3));
	free(back);
	free(jpeg);
	free(px);
	jpeg_codec_free(jc);
}
END_TEST

START_TEST(not_jpeg_refused)
{
	struct jpeg_codec *jc = jpeg_codec_new();
	int w, h;
	char err[200];
	uint8_t *out;
	const uint8_t png[] = "\x89PNG\r\n\x1a\n0000000000000000";
	const uint8_t junk[] = "\xff\xd8\xff\xe0garbage that is not a JPEG stream at all.....";

	ck_assert_int_eq(jpeg_probe(jc, png, sizeof(png), &w, &h, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "not a JPEG"));
	ck_assert_int_eq(jpeg_probe(jc, junk, sizeof(junk), &w, &h, err, sizeof(err)), -1);
	ck_assert_int_eq(jpeg_decode(jc, png, 3, &out, &w, &h, err, sizeof(err)), -1);
	ck_assert_ptr_null(out);
	/* a header cut before its scan, then a valid JPEG on the same codec */
	{
		uint8_t *px = malloc(32 * 32 * 3), *good;
		size_t n;
		memset(px, 90, 32 * 32 * 3);
		ck_assert_int_eq(jpeg_encode(jc, px, 32, 32, 80, &good, &n, err, sizeof(err)), 0);
		ck_assert_int_eq(jpeg_probe(jc, good, 150, &w, &h, err, sizeof(err)), -1);
		ck_assert_msg(jpeg_probe(jc, good, n, &w, &h, err, sizeof(err)) == 0, "after a failure: %s", err);
		ck_assert_int_eq(jpeg_decode(jc, good, n, &out, &w, &h, err, sizeof(err)), 0);
		free(out);
		free(good);
		free(px);
	}
	jpeg_codec_free(jc);
}
END_TEST

/* Patch the SOF of a valid JPEG to claim W x H. */
static void set_dims(uint8_t *j, size_t n, int w, int h)
{
	for (size_t i = 2; i + 9 < n;) {
		int seglen = j[i + 2] << 8 | j[i + 3];
		if (j[i + 1] == 0xC0) {
			j[i + 5] = (uint8_t)(h >> 8);
			j[i + 6] = (uint8_t)h;
			j[i + 7] = (uint8_t)(w >> 8);
			j[i + 8] = (uint8_t)w;
			return;
		}
		i += 2 + (size_t)seglen;
	}
	ck_abort_msg("no SOF0 marker");
}

START_TEST(huge_dimensions_refused_before_allocation)
{
	struct jpeg_codec *jc = jpeg_codec_new();
	uint8_t *px = gradient(32, 32), *jpeg, *out;
	size_t n;
	int w, h;
	char err[200];

	ck_assert_int_eq(jpeg_encode(jc, px, 32, 32, 80, &jpeg, &n, err, sizeof(err)), 0);
	set_dims(jpeg, n, 60000, 60000);
	ck_assert_int_eq(jpeg_decode(jc, jpeg, n, &out, &w, &h, err, sizeof(err)), -1);
	ck_assert_ptr_null(out);
	ck_assert_msg(strstr(err, "60000x60000") != NULL, "%s", err);
	set_dims(jpeg, n, 4096, 4000); /* each side allowed, too many pixels */
	ck_assert_int_eq(jpeg_probe(jc, jpeg, n, &w, &h, err, sizeof(err)), -1);
	set_dims(jpeg, n, 1920, 1080);
	ck_assert_int_eq(jpeg_probe(jc, jpeg, n, &w, &h, err, sizeof(err)), 0);
	free(jpeg);
	free(px);
	jpeg_codec_free(jc);
}
END_TEST

START_TEST(truncated_jpeg_still_decodes)
{
	struct jpeg_codec *jc = jpeg_codec_new();
	uint8_t *px = gradient(64, 64), *jpeg, *out;
	size_t n;
	int w, h;
	char err[200];

	ck_assert_int_eq(jpeg_encode(jc, px, 64, 64, 80, &jpeg, &n, err, sizeof(err)), 0);
	/* a cut scan is a warning for libjpeg: the image comes back, partly grey */
	ck_assert_int_eq(jpeg_decode(jc, jpeg, n * 2 / 3, &out, &w, &h, err, sizeof(err)), 0);
	free(out);
	free(jpeg);
	free(px);
	jpeg_codec_free(jc);
}
END_TEST

START_TEST(resize)
{
	uint8_t src[2 * 2 * 3] = { 0, 0, 0, 255, 255, 255, 0, 0, 0, 255, 255, 255 };
	uint8_t dst[4 * 2 * 3], same[2 * 2 * 3];
	jpeg_resize_rgb(src, 2, 2, same, 2, 2);
	ck_assert_int_eq(memcmp(src, same, sizeof(src)), 0);
	jpeg_resize_rgb(src, 2, 2, dst, 4, 2);
	/* edges keep the source values, the middle interpolates, monotonic */
	ck_assert_int_eq(dst[0], 0);
	ck_assert_int_eq(dst[3 * 3], 255);
	ck_assert(dst[1 * 3] > 0 && dst[1 * 3] < dst[2 * 3] && dst[2 * 3] < 255);
	uint8_t *big = gradient(640, 480), *small = malloc(128 * 96 * 3);
	jpeg_resize_rgb(big, 640, 480, small, 128, 96);
	/* top-left dark red, bottom-right bright */
	ck_assert_int_lt(small[0], 10);
	ck_assert_int_gt(small[(95 * 128 + 127) * 3], 245);
	free(big);
	free(small);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("jpeg");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, encode_decode_roundtrip);
	tcase_add_test(tc, not_jpeg_refused);
	tcase_add_test(tc, huge_dimensions_refused_before_allocation);
	tcase_add_test(tc, truncated_jpeg_still_decodes);
	tcase_add_test(tc, resize);
	suite_add_tcase(s, tc);
	return check_run_suite(s);
}
