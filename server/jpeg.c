/* jpeg.c: TurboJPEG wrappers. Dimensions are checked against JPEG_MAX_* from the
 * header before any pixel buffer is allocated, so a 65535x65535 JPEG of a few hundred
 * bytes costs nothing. Decoder warnings (a truncated scan) still give an image. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "jpeg.h"

struct jpeg_codec {
	tjhandle dec; /* new */
	tjhandle enc; /* new */
};

struct jpeg_codec *jpeg_codec_new(void)
{
	struct jpeg_codec *jc = calloc(1, sizeof(*jc));
	if (!jc)
		return NULL;
	jc->dec = tjInitDecompress();
	jc->enc = tjInitCompress();
	if (!jc->dec || !jc->enc) {
		jpeg_codec_free(jc);
		return NULL;
	}
	return jc;
}

void jpeg_codec_free(struct jpeg_codec *jc)
{
	if (!jc)
		return;
	if (jc->dec)
		tjDestroy(jc->dec);
	if (jc->enc)
		tjDestroy(jc->enc);
	free(jc);
}

/* After a failed call a tjhandle can refuse the next valid image (libjpeg-turbo 2.1
 * keeps the aborted decompressor's state), so a failure gets a fresh handle. */
static void jpeg_reset_dec(struct jpeg_codec *jc)
{
	tjhandle fresh = tjInitDecompress();
	if (fresh) {
		tjDestroy(jc->dec);
		jc->dec = fresh;
	}
}

int jpeg_probe(struct jpeg_codec *jc, const uint8_t *buf, size_t len, int *w, int *h, char *err, size_t errlen)
{
	int subsamp, colorspace;

	if (len < 4 || buf[0] != 0xFF || buf[1] != 0xD8) {
		snprintf(err, errlen, "data is not a JPEG (no SOI marker)");
		return -1;
	}
	if (len > 0x7fffffffUL) {
		snprintf(err, errlen, "JPEG is too large");
		return -1;
	}
	if (tjDecompressHeader3(jc->dec, buf, (unsigned long)len, w, h, &subsamp, &colorspace) < 0) {
		snprintf(err, errlen, "cannot read the JPEG header: %s", tjGetErrorStr2(jc->dec));
		jpeg_reset_dec(jc);
		return -1;
	}
	if (*w <= 0 || *h <= 0 || *w > JPEG_MAX_DIM || *h > JPEG_MAX_DIM ||
	    (long long)*w * *h > JPEG_MAX_PIXELS) {
		snprintf(err, errlen, "JPEG of %dx%d exceeds the limit of %dx%d and %d pixels", *w, *h, JPEG_MAX_DIM,
			 JPEG_MAX_DIM, JPEG_MAX_PIXELS);
		return -1;
	}
	return 0;
}

int jpeg_decode(struct jpeg_codec *jc, const uint8_t *buf, size_t len, uint8_t **rgb, int *w, int *h, char *err,
		size_t errlen)
{
	uint8_t *px;

	*rgb = NULL;
	if (jpeg_probe(jc, buf, len, w, h, err, errlen) < 0)
		return -1;
	px = malloc((size_t)*w * (size_t)*h * 3);
	if (!px) {
		snprintf(err, errlen, "out of memory decoding a %dx%d JPEG", *w, *h);
		return -1;
	}
	if (jpeg_decode_into(jc, buf, len, px, *w, *w * 3, *h, err, errlen) < 0) {
		free(px);
		return -1;
	}
	*rgb = px;
	return 0;
}

int jpeg_decode_into(struct jpeg_codec *jc, const uint8_t *buf, size_t len, uint8_t *dst, int w, int stride, int h,
		     char *err, size_t errlen)
{
	if (tjDecompress2(jc->dec, buf, (unsigned long)len, dst, w, stride, h, TJPF_RGB, TJFLAG_FASTDCT) < 0 &&
	    tjGetErrorCode(jc->dec) != TJERR_WARNING) {
		snprintf(err, errlen, "cannot decode the JPEG: %s", tjGetErrorStr2(jc->dec));
		jpeg_reset_dec(jc);
		return -1;
	}
	return 0;
}

int jpeg_encode(struct jpeg_codec *jc, const uint8_t *rgb, int w, int h, int quality, uint8_t **out, size_t *len,
		char *err, size_t errlen)
{
	unsigned char *tjbuf = NULL;
	unsigned long tjlen = 0;

	*out = NULL;
	if (w <= 0 || h <= 0 || w > JPEG_MAX_DIM || h > JPEG_MAX_DIM) {
		snprintf(err, errlen, "cannot encode a %dx%d image", w, h);
		return -1;
	}
	if (tjCompress2(jc->enc, rgb, w, w * 3, h, TJPF_RGB, &tjbuf, &tjlen, TJSAMP_420, quality,
			TJFLAG_FASTDCT) < 0) {
		snprintf(err, errlen, "cannot encode JPEG: %s", tjGetErrorStr2(jc->enc));
		tjFree(tjbuf);
		return -1;
	}
	*out = malloc(tjlen);
	if (!*out) {
		tjFree(tjbuf);
		snprintf(err, errlen, "out of memory encoding JPEG");
		return -1;
	}
	memcpy(*out, tjbuf, tjlen);
	*len = tjlen;
	tjFree(tjbuf);
	return 0;
}

void jpeg_resize_rgb(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh)
{
	if (sw == dw && sh == dh) {
		memcpy(dst, src, (size_t)sw * sh * 3);
		return;
	}
	/* Bilinear with pixel-center alignment; fixed point 16.16 weights. */
	for (int y = 0; y < dh; y++) {
		float fy = ((float)y + 0.5f) * (float)sh / (float)dh - 0.5f;
		int y0 = fy < 0 ? 0 : (int)fy;
		int y1 = y0 + 1 < sh ? y0 + 1 : sh - 1;
		int wy = (int)((fy - (float)y0) * 65536.0f);
		if (wy < 0)
			wy = 0;
		const uint8_t *r0 = src + (size_t)y0 * sw * 3, *r1 = src + (size_t)y1 * sw * 3;
		uint8_t *d = dst + (size_t)y * dw * 3;
		for (int x = 0; x < dw; x++) {
			float fx = ((float)x + 0.5f) * (float)sw / (float)dw - 0.5f;
			int x0 = fx < 0 ? 0 : (int)fx;
			int x1 = x0 + 1 < sw ? x0 + 1 : sw - 1;
			int wx = (int)((fx - (float)x0) * 65536.0f);
			if (wx < 0)
				wx = 0;
			for (int c = 0; c < 3; c++) {
				int64_t top = (int64_t)r0[x0 * 3 + c] * (65536 - wx) + (int64_t)r0[x1 * 3 + c] * wx;
				int64_t bot = (int64_t)r1[x0 * 3 + c] * (65536 - wx) + (int64_t)r1[x1 * 3 + c] * wx;
				int64_t v = (top * (65536 - wy) + bot * wy + ((int64_t)1 << 31)) >> 32;
				d[x * 3 + c] = (uint8_t)(v > 255 ? 255 : v);
			}
		}
	}
}
