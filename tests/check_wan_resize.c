/* check_wan_resize.c: wan_resize (camera frame -> the model's planar float frame) bitwise
 * against the per-pixel definition below (bilinear when the output is at least as large on
 * both axes, else the box average over each output pixel's source footprint), over same-size,
 * up-, down- and mixed-axis sizes, padded rows, a 1x1 source, the tables kept across frames
 * and rebuilt when the size changes; and the way back (planes to RGB8) bitwise against its
 * per-value definition, special values included.
 * `check_wan_resize bench` prints the time per frame of both for common camera sizes. */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_util.h"
#include "plugins/wan/wan_clock.h"
#include "wan_resize.h"

/* The definition, one output pixel at a time (what the pipeline computed before the tables). */
static void resize_ref(const uint8_t *rgb, int sw, int sh, size_t stride, int W, int H, float *dst)
{
	const double fx = (double)sw / W, fy = (double)sh / H;
	const size_t npix = (size_t)W * H;

	for (int y = 0; y < H; y++) {
		double y0 = y * fy, y1 = (y + 1) * fy;
		for (int x = 0; x < W; x++) {
			double x0 = x * fx, x1 = (x + 1) * fx, acc[3] = { 0, 0, 0 }, wsum = 0;
			if (fx > 1.0 || fy > 1.0) {
				int ya = (int)y0, yb = (int)ceil(y1), xa = (int)x0, xb = (int)ceil(x1);
				if (yb <= ya)
					yb = ya + 1;
				if (xb <= xa)
					xb = xa + 1;
				for (int sy = ya; sy < yb && sy < sh; sy++) {
					double wy = fmin(y1, sy + 1) - fmax(y0, sy);
					if (fy <= 1.0 || wy <= 0)
						wy = 1.0;
					for (int sx = xa; sx < xb && sx < sw; sx++) {
						double wx = fmin(x1, sx + 1) - fmax(x0, sx);
						if (fx <= 1.0 || wx <= 0)
							wx = 1.0;
						const uint8_t *px = rgb + (size_t)sy * stride + 3 * (size_t)sx;
						for (int c = 0; c < 3; c++)
							acc[c] += wx * wy * px[c];
						wsum += wx * wy;
					}
				}
			} else {
				double sx = (x + 0.5) * fx - 0.5, sy = (y + 0.5) * fy - 0.5;
				if (sx < 0)
					sx = 0;
				if (sy < 0)
					sy = 0;
				int ix = (int)sx, iy = (int)sy;
				int ix1 = ix + 1 < sw ? ix + 1 : ix, iy1 = iy + 1 < sh ? iy + 1 : iy;
				double ax = sx - ix, ay = sy - iy;
				const uint8_t *r0 = rgb + (size_t)iy * stride, *r1 = rgb + (size_t)iy1 * stride;
				for (int c = 0; c < 3; c++)
					acc[c] = (1 - ay) * ((1 - ax) * r0[3 * ix + c] + ax * r0[3 * ix1 + c]) +
						 ay * ((1 - ax) * r1[3 * ix + c] + ax * r1[3 * ix1 + c]);
				wsum = 1.0;
			}
			for (int c = 0; c < 3; c++)
				dst[(size_t)c * npix + (size_t)y * W + x] = (float)(acc[c] / wsum / 127.5 - 1.0);
		}
	}
}

static uint8_t *frame(int sw, int sh, size_t stride, unsigned seed)
{
	uint8_t *rgb = malloc(stride * (size_t)sh);

	ck_assert_ptr_nonnull(rgb);
	for (size_t i = 0; i < stride * (size_t)sh; i++)
		rgb[i] = (uint8_t)(((uint32_t)(i + seed) * 2654435761u) >> 24);
	return rgb;
}

/* One size pair through R (its tables possibly from an earlier size): bitwise the definition. */
static void same_as_ref(struct wan_resize *r, int sw, int sh, int pad, int W, int H)
{
	size_t stride = (size_t)sw * 3 + (size_t)pad, n = (size_t)3 * W * H;
	uint8_t *rgb = frame(sw, sh, stride, (unsigned)(sw * 7 + sh));
	float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
	char err[128];

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	resize_ref(rgb, sw, sh, stride, W, H, a);
	memset(b, 0xff, n * sizeof(float));
	ck_assert_int_eq(wan_resize_rgb8(r, rgb, sw, sh, stride, W, H, b, err, sizeof(err)), 0);
	if (memcmp(a, b, n * sizeof(float))) {
		size_t i = 0;

		while (i < n && !memcmp(a + i, b + i, sizeof(float)))
			i++;
		ck_abort_msg("%dx%d (row padding %d) -> %dx%d: value %zu is %.9g, the definition gives %.9g", sw,
			     sh, pad, W, H, i, (double)b[i], (double)a[i]);
	}
	free(rgb);
	free(a);
	free(b);
}

START_TEST(test_sizes)
{
	static const int src[][2] = { { 832, 480 }, { 640, 480 }, { 1280, 720 }, { 1920, 1080 }, { 512, 512 },
				      { 833, 479 }, { 100, 700 }, { 1000, 300 }, { 7, 5 }, { 832, 481 },
				      { 1, 1 }, { 48, 40 } };
	static const int out[][2] = { { 832, 480 }, { 512, 512 }, { 64, 48 }, { 48, 40 } };
	struct wan_resize r = { 0 };

	for (size_t o = 0; o < sizeof(out) / sizeof(out[0]); o++)
		for (size_t s = 0; s < sizeof(src) / sizeof(src[0]); s++)
			for (int pad = 0; pad <= 5; pad += 5) {
				same_as_ref(&r, src[s][0], src[s][1], pad, out[o][0], out[o][1]);
				/* a second frame on the kept tables */
				same_as_ref(&r, src[s][0], src[s][1], pad, out[o][0], out[o][1]);
			}
	wan_resize_release(&r);
	wan_resize_release(&r); /* twice is harmless */
}
END_TEST

START_TEST(test_values)
{
	/* the same size is the values themselves: 0 -> -1, 255 -> 1 */
	uint8_t px[2 * 3] = { 0, 255, 51, 255, 0, 204 };
	float out[6];
	struct wan_resize r = { 0 };
	char err[128];

	ck_assert_int_eq(wan_resize_rgb8(&r, px, 2, 1, 6, 2, 1, out, err, sizeof(err)), 0);
	ck_assert_float_eq(out[0], -1.0f);  /* R of pixel 0 */
	ck_assert_float_eq(out[1], 1.0f);   /* R of pixel 1 */
	ck_assert_float_eq(out[2], 1.0f);   /* G of pixel 0 */
	ck_assert_float_eq(out[3], -1.0f);
	ck_assert_float_eq_tol(out[4], -0.6f, 1e-6f);
	ck_assert_float_eq_tol(out[5], 0.6f, 1e-6f);
	/* halving a 2x2 block averages it */
	uint8_t blk[4 * 3] = { 0, 0, 0, 100, 100, 100, 200, 200, 200, 100, 100, 100 };
	float one[3];
	ck_assert_int_eq(wan_resize_rgb8(&r, blk, 2, 2, 6, 1, 1, one, err, sizeof(err)), 0);
	ck_assert_float_eq_tol(one[0], (float)(100.0 / 127.5 - 1.0), 1e-6f);
	wan_resize_release(&r);
}
END_TEST

/* The way back, one value at a time (what the pipeline computed before). */
static void rgb8_ref(const float *src, size_t npix, uint8_t *rgb)
{
	for (size_t i = 0; i < npix; i++)
		for (int c = 0; c < 3; c++) {
			float v = src[(size_t)c * npix + i] * 0.5f + 0.5f;
			v = v != v ? 0.0f : v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
			rgb[3 * i + c] = (uint8_t)(v * 255.0f);
		}
}

START_TEST(test_rgb8_back)
{
	static const size_t sizes[] = { 1, 15, 16, 17, 1023, 1024, 1025, 4099, 832 * 480 };
	static const float special[] = { NAN, -NAN, INFINITY, -INFINITY, -0.0f, 0.0f, 1.0f, -1.0f,
					 0.99999994f, -0.99999994f, 1.0000001f, 3.0f, -3.0f, 1e-30f };
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t n = sizes[k];
		float *src = malloc(3 * n * sizeof(float));
		uint8_t *a = malloc(3 * n), *b = malloc(3 * n);
		ck_assert(src && a && b);
		for (size_t i = 0; i < 3 * n; i++) {
			uint32_t h = (uint32_t)(i + 1) * 2654435761u;
			src[i] = (float)(h >> 8) / 16777216.0f * 3.0f - 1.5f;
			if (h % 7 == 0)
				src[i] = special[(h >> 3) % (sizeof(special) / sizeof(special[0]))];
		}
		rgb8_ref(src, n, a);
		memset(b, 0x5a, 3 * n);
		wan_rgb8_from_planes(src, n, b);
		for (size_t i = 0; i < 3 * n; i++)
			ck_assert_msg(a[i] == b[i], "%zu pixels: byte %zu is %u, the definition gives %u (value %.9g)", n,
				      i, b[i], a[i], (double)src[(i % 3) * n + i / 3]);
		free(src);
		free(a);
		free(b);
	}
}
END_TEST

/* `bench`: ms per frame, the definition against the tables, common camera sizes. */
static int bench(void)
{
	static const int src[][2] = { { 832, 480 }, { 640, 480 }, { 1280, 720 }, { 1920, 1080 }, { 512, 512 } };
	static const int out[][2] = { { 832, 480 }, { 512, 512 } };
	struct wan_resize r = { 0 };
	char err[128];

	printf("resize bench: ms per frame (mean of 10 after one untimed), one thread\n");
	for (size_t o = 0; o < 2; o++)
		for (size_t s = 0; s < sizeof(src) / sizeof(src[0]); s++) {
			int sw = src[s][0], sh = src[s][1], W = out[o][0], H = out[o][1];
			size_t stride = (size_t)sw * 3;
			uint8_t *rgb = malloc(stride * (size_t)sh);
			float *d = malloc((size_t)3 * W * H * sizeof(float));
			double t0, tref, t1, t2;

			if (!rgb || !d)
				return 1;
			for (size_t i = 0; i < stride * (size_t)sh; i++)
				rgb[i] = (uint8_t)((uint32_t)i * 2654435761u >> 24);
			resize_ref(rgb, sw, sh, stride, W, H, d);
			t0 = wan_now_ms();
			for (int k = 0; k < 10; k++)
				resize_ref(rgb, sw, sh, stride, W, H, d);
			tref = (wan_now_ms() - t0) / 10;
			if (wan_resize_rgb8(&r, rgb, sw, sh, stride, W, H, d, err, sizeof(err)))
				return 1;
			t1 = wan_now_ms();
			for (int k = 0; k < 10; k++)
				wan_resize_rgb8(&r, rgb, sw, sh, stride, W, H, d, err, sizeof(err));
			t2 = wan_now_ms();
			printf("  %4dx%-4d -> %dx%d: per-pixel definition %7.2f ms, tables %6.2f ms (%.1fx)\n", sw, sh, W, H,
			       tref, (t2 - t1) / 10, tref / ((t2 - t1) / 10));
			free(rgb);
			free(d);
		}
	wan_resize_release(&r);
	{
		size_t n = 832 * 480;
		float *planes = malloc(3 * n * sizeof(float));
		uint8_t *rgb = malloc(3 * n);
		double t0, t1, t2;

		if (!planes || !rgb)
			return 1;
		for (size_t i = 0; i < 3 * n; i++)
			planes[i] = (float)(((uint32_t)i * 2654435761u) >> 8) / 16777216.0f * 2.6f - 1.3f;
		t0 = wan_now_ms();
		for (int k = 0; k < 10; k++)
			rgb8_ref(planes, n, rgb);
		t1 = wan_now_ms();
		for (int k = 0; k < 10; k++)
			wan_rgb8_from_planes(planes, n, rgb);
		t2 = wan_now_ms();
		printf("  832x480 planes -> RGB8: per-value definition %.2f ms, wan_rgb8_from_planes %.2f ms (%.1fx)\n",
		       (t1 - t0) / 10, (t2 - t1) / 10, (t1 - t0) / (t2 - t1));
		free(planes);
		free(rgb);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "bench"))
		return bench();
	Suite *s = suite_create("wan_resize");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_sizes);
	tcase_add_test(tc, test_values);
	tcase_add_test(tc, test_rgb8_back);
	suite_add_tcase(s, tc);
	return check_run_suite(s);
}
