/* jpeg.h: TurboJPEG decode/encode with bounds, and RGB resizing.
 * A struct jpeg_codec is NOT thread-safe: each thread owns its own (one tjhandle per
 * thread per direction). */
#ifndef HERU_JPEG_H
#define HERU_JPEG_H

#include <stddef.h>
#include <stdint.h>

#define JPEG_MAX_DIM 4096		 /* largest accepted width or height */
#define JPEG_MAX_PIXELS (4096 * 2304)	 /* largest accepted width*height (4K UHD) */

struct jpeg_codec;

struct jpeg_codec *jpeg_codec_new(void); /* new, or NULL */
void jpeg_codec_free(struct jpeg_codec *jc);

/* Read the header only and check the limits (before any allocation). */
int jpeg_probe(struct jpeg_codec *jc, const uint8_t *buf, size_t len, int *w, int *h, char *err, size_t errlen);

/* Decode to packed RGB8. *RGB is new (free()). */
int jpeg_decode(struct jpeg_codec *jc, const uint8_t *buf, size_t len, uint8_t **rgb, int *w, int *h, char *err,
		size_t errlen);

/* Decode into DST (borrowed, H rows of STRIDE bytes) after jpeg_probe gave W x H. */
int jpeg_decode_into(struct jpeg_codec *jc, const uint8_t *buf, size_t len, uint8_t *dst, int w, int stride, int h,
		     char *err, size_t errlen);

/* Encode packed RGB8 (borrowed) at QUALITY 1..100 (4:2:0). *OUT is new (free()). */
int jpeg_encode(struct jpeg_codec *jc, const uint8_t *rgb, int w, int h, int quality, uint8_t **out, size_t *len,
		char *err, size_t errlen);

/* Bilinear resize of packed RGB8 SRC (sw x sh) into DST (dw x dh); both borrowed. */
void jpeg_resize_rgb(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh);

#endif
