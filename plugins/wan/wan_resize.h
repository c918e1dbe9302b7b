/* wan_resize.h: camera frames (RGB8, any size) to the model's planar float frames, and the
 * model's frames back to RGB8.
 *
 * Each output pixel is the bilinear sample of the source (when the output is at least as large
 * on both axes) or the average over its source footprint (box filter, each axis at least one
 * pixel), mapped from 0..255 to -1..1. The per-axis sampling positions and weights are
 * computed once per (source size, output size) and kept in the struct, so a frame costs only
 * the taps; the result is bitwise the per-pixel definition's (tests/check_wan_resize.c keeps
 * that definition as its reference). A source of the output's size is a table lookup. */
#ifndef HERU_WAN_RESIZE_H
#define HERU_WAN_RESIZE_H

#include <stddef.h>
#include <stdint.h>

struct wan_resize_axis {
	int *b0, *n, *off; /* box, per output index: first source index, tap count, first weight in w */
	double *w;         /* box: every output index's tap weights in turn */
	int *l0, *l1;      /* bilinear, per output index: the two source indices */
	double *a;         /* bilinear: the second one's weight */
};

/* Zero-initialise; wan_resize_release frees the tables. */
struct wan_resize {
	int sw, sh, W, H; /* the sizes the tables are for (0: none yet) */
	int box;
	struct wan_resize_axis x, y;
};

/* RGB (3 bytes a pixel, rows STRIDE bytes apart) of SW x SH to DST [3][H][W], values
 * 2·v/255 - 1. Returns 0, or -1 with a message in ERR when the tables cannot be allocated
 * (DST untouched then). The caller checks the sizes (1..some maximum). */
int wan_resize_rgb8(struct wan_resize *r, const uint8_t *rgb, int sw, int sh, size_t stride, int W,
		    int H, float *dst, char *err, size_t errlen);
void wan_resize_release(struct wan_resize *r);

/* The way back: planes SRC [3][NPIX] in -1..1 to interleaved RGB8, each value v to
 * (uint8_t)(clamp(v·0.5 + 0.5, 0, 1)·255) (truncation, as upstream), NaN to 0. */
void wan_rgb8_from_planes(const float *src, size_t npix, uint8_t *rgb);

#endif
