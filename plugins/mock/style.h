/*
 * style.h: the mock backend's prompt -> style mapping.
 */
#ifndef HERU_MOCK_STYLE_H
#define HERU_MOCK_STYLE_H

#include <stdbool.h>
#include <stdint.h>

#define STYLE_NAME_MAX 160

/* Everything the per-pixel pipeline needs, precomputed from (prompt, seed). */
struct mock_style {
	char name[STYLE_NAME_MAX];  /* human summary, e.g. "noir + sketch" */
	bool identity;              /* empty prompt: the style is the camera image */
	int32_t matrix[3][3];       /* color matrix, fixed point 1/1024 */
	int32_t offset[3];          /* added after the matrix, 0..255 units */
	uint8_t palette[256][3];    /* luma -> palette color */
	int32_t palette_weight;     /* 0..256: blend of the palette over the color */
	uint8_t post[256];          /* per channel tone curve: posterize, invert */
	int32_t posterize;          /* levels, 0 = off (already folded into post) */
	int32_t edge_weight;        /* 0..256 */
	int32_t edge_gain;          /* gradient multiplier, fixed point 1/16 */
	uint8_t edge_color[3];
	int32_t pixelate;           /* block size in pixels, 0 or 1 = off */
	int32_t grain;              /* 0..64: film grain amplitude */
	uint32_t seed_hash;
};

/* Build the style of `prompt` (borrowed, UTF-8, may be NULL) and `seed`. */
void mock_style_from_prompt(struct mock_style *style, const char *prompt, uint64_t seed);

#endif /* HERU_MOCK_STYLE_H */
