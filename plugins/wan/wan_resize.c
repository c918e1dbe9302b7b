/* wan_resize.c: see wan_resize.h. */
#include "plugins/wan/wan_resize.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

static void axis_free(struct wan_resize_axis *ax)
{
	free(ax->b0);
	free(ax->n);
	free(ax->off);
	free(ax->w);
	free(ax->l0);
	free(ax->l1);
	free(ax->a);
	*ax = (struct wan_resize_axis){ 0 };
}

/* One axis: OUT output pixels over SRC source pixels, F = SRC / OUT. The box taps and their
 * weights, and the bilinear taps and weight, exactly as the per-pixel definition computes
 * them for an output pixel (so the same doubles go into the same sums). */
static int axis_make(struct wan_resize_axis *ax, int out, int src, double f)
{
	size_t taps = 0;

	ax->b0 = malloc((size_t)out * sizeof(int));
	ax->n = malloc((size_t)out * sizeof(int));
	ax->off = malloc((size_t)out * sizeof(int));
	ax->l0 = malloc((size_t)out * sizeof(int));
	ax->l1 = malloc((size_t)out * sizeof(int));
	ax->a = malloc((size_t)out * sizeof(double));
	if (!ax->b0 || !ax->n || !ax->off || !ax->l0 || !ax->l1 || !ax->a)
		return -1;
	for (int o = 0; o < out; o++) {
		int sa = (int)(o * f), sb = (int)ceil((o + 1) * f);

		if (sb <= sa)
			sb = sa + 1;
		if (sb > src)
			sb = src;
		ax->b0[o] = sa;
		ax->off[o] = (int)taps;
		ax->n[o] = sb > sa ? sb - sa : 0;
		taps += (size_t)ax->n[o];
	}
	ax->w = malloc((taps + 1) * sizeof(double));
	if (!ax->w)
		return -1;
	for (int o = 0; o < out; o++) {
		double s0 = o * f, s1 = (o + 1) * f, sc = (o + 0.5) * f - 0.5;

		for (int k = 0; k < ax->n[o]; k++) {
			int s = ax->b0[o] + k;
			double w = fmin(s1, s + 1) - fmax(s0, s);

			ax->w[ax->off[o] + k] = f <= 1.0 || w <= 0 ? 1.0 : w;
		}
		if (sc < 0)
			sc = 0;
		ax->l0[o] = (int)sc;
		ax->l1[o] = ax->l0[o] + 1 < src ? ax->l0[o] + 1 : ax->l0[o];
		ax->a[o] = sc - ax->l0[o];
	}
	return 0;
}

void wan_resize_release(struct wan_resize *r)
{
	axis_free(&r->x);
	axis_free(&r->y);
	r->sw = r->sh = r->W = r->H = 0;
}

int wan_resize_rgb8(struct wan_resize *r, const uint8_t *rgb, int sw, int sh, size_t stride, int W,
		    int H, float *dst, char *err, size_t errlen)
{
	const size_t npix = (size_t)W * H;
	float lut[256];

	/* value v of a tap (or of an average with weight sum 1) as the definition maps it */
	for (int v = 0; v < 256; v++)
		lut[v] = (float)((double)v / 1.0 / 127.5 - 1.0);
	if (sw == W && sh == H) { /* bilinear at the source pixels themselves: the values */
		for (int y = 0; y < H; y++) {
			const uint8_t *s = rgb + (size_t)y * stride;
			float *d0 = dst + (size_t)y * W, *d1 = d0 + npix, *d2 = d1 + npix;

			for (int x = 0; x < W; x++, s += 3) {
				d0[x] = lut[s[0]];
				d1[x] = lut[s[1]];
				d2[x] = lut[s[2]];
			}
		}
		return 0;
	}
	if (r->sw != sw || r->sh != sh || r->W != W || r->H != H) {
		const double fx = (double)sw / W, fy = (double)sh / H;

		wan_resize_release(r);
		if (axis_make(&r->x, W, sw, fx) || axis_make(&r->y, H, sh, fy)) {
			wan_resize_release(r);
			snprintf(err, errlen, "out of memory (resize tables for %dx%d -> %dx%d)", sw, sh, W, H);
			return -1;
		}
		r->box = fx > 1.0 || fy > 1.0;
		r->sw = sw;
		r->sh = sh;
		r->W = W;
		r->H = H;
	}
	for (int y = 0; y < H; y++) {
		float *d0 = dst + (size_t)y * W, *d1 = d0 + npix, *d2 = d1 + npix;

		if (!r->box) {
			const uint8_t *r0 = rgb + (size_t)r->y.l0[y] * stride, *r1 = rgb + (size_t)r->y.l1[y] * stride;
			const double ay = r->y.a[y];

			for (int x = 0; x < W; x++) {
				const uint8_t *p0 = r0 + 3 * (size_t)r->x.l0[x], *p1 = r0 + 3 * (size_t)r->x.l1[x];
				const uint8_t *q0 = r1 + 3 * (size_t)r->x.l0[x], *q1 = r1 + 3 * (size_t)r->x.l1[x];
				const double ax = r->x.a[x];
				double acc[3];

				for (int c = 0; c < 3; c++)
					acc[c] = (1 - ay) * ((1 - ax) * p0[c] + ax * p1[c]) +
						 ay * ((1 - ax) * q0[c] + ax * q1[c]);
				d0[x] = (float)(acc[0] / 1.0 / 127.5 - 1.0);
				d1[x] = (float)(acc[1] / 1.0 / 127.5 - 1.0);
				d2[x] = (float)(acc[2] / 1.0 / 127.5 - 1.0);
			}
			continue;
		}
		/* box: the taps in the definition's order (rows outer), weight wx·wy each */
		const double *wy = r->y.w + r->y.off[y];
		const int ny = r->y.n[y];
		const uint8_t *row = rgb + (size_t)r->y.b0[y] * stride;

		for (int x = 0; x < W; x++) {
			const double *wx = r->x.w + r->x.off[x];
			const int nx = r->x.n[x];
			double acc[3] = { 0, 0, 0 }, wsum = 0;

			for (int ky = 0; ky < ny; ky++) {
				const uint8_t *px = row + (size_t)ky * stride + 3 * (size_t)r->x.b0[x];

				for (int kx = 0; kx < nx; kx++, px += 3) {
					const double w = wx[kx] * wy[ky];

					acc[0] += w * px[0];
					acc[1] += w * px[1];
					acc[2] += w * px[2];
					wsum += w;
				}
			}
			d0[x] = (float)(acc[0] / wsum / 127.5 - 1.0);
			d1[x] = (float)(acc[1] / wsum / 127.5 - 1.0);
			d2[x] = (float)(acc[2] / wsum / 127.5 - 1.0);
		}
	}
	return 0;
}

/* One plane to bytes; SSE2 (every x86-64) does 16 values a step with the same operations in
 * the same order: the multiply and the add apart, max(v, 0) (NaN to 0), min(v, 1),
 * truncation. */
static void plane_to_u8(const float *s, uint8_t *t, size_t n)
{
	size_t i = 0;

#ifdef __SSE2__
	const __m128 half = _mm_set1_ps(0.5f), zero = _mm_setzero_ps(), one = _mm_set1_ps(1.0f);
	const __m128 k = _mm_set1_ps(255.0f);

	for (; i + 16 <= n; i += 16) {
		__m128i q[4];

		for (int j = 0; j < 4; j++) {
			__m128 v = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(s + i + 4 * j), half), half);

			v = _mm_min_ps(_mm_max_ps(v, zero), one); /* max: NaN in its first operand gives 0 */
			q[j] = _mm_cvttps_epi32(_mm_mul_ps(v, k));
		}
		_mm_storeu_si128((__m128i *)(t + i),
				 _mm_packus_epi16(_mm_packs_epi32(q[0], q[1]), _mm_packs_epi32(q[2], q[3])));
	}
#endif
	for (; i < n; i++) {
		float v = s[i] * 0.5f + 0.5f;

		v = v > 0.0f ? v : 0.0f; /* NaN to 0 */
		v = v < 1.0f ? v : 1.0f;
		t[i] = (uint8_t)(v * 255.0f);
	}
}

void wan_rgb8_from_planes(const float *src, size_t npix, uint8_t *rgb)
{
	enum { BLOCK = 1024 };
	uint8_t t[3][BLOCK];

	for (size_t i0 = 0; i0 < npix; i0 += BLOCK) {
		size_t n = npix - i0 < BLOCK ? npix - i0 : BLOCK;
		uint8_t *d = rgb + 3 * i0;

		for (int c = 0; c < 3; c++)
			plane_to_u8(src + (size_t)c * npix + i0, t[c], n);
		for (size_t i = 0; i < n; i++) {
			d[3 * i] = t[0][i];
			d[3 * i + 1] = t[1][i];
			d[3 * i + 2] = t[2][i];
		}
	}
}
