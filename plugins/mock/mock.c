/*
 * mock.c: mock.so, the deterministic CPU stylizer backend.
 *
 * DESIGN
 *
 * The mock stands in for a video diffusion model so everything around it (server,
 * UI, conditioners, locks, presets, benchmarks) can be built and tested without a
 * GPU. It follows the same control semantics as the Wan backend (architecture.md §6):
 *
 *   prompt            selects a style from its words (style.c): palette, tint, hue,
 *                     posterize, edges, pixelation, grain. An empty prompt is the
 *                     camera image.
 *   prompt_dominance  how far the output departs from the camera: per-pixel blend
 *                     strength s = dominance * (1 - preserve).
 *   pose/depth/seg    weigh the matching conditioner maps (heru.pose/1, heru.depth/1,
 *   locks             heru.segmentation/1) into one preserve map:
 *                     preserve = 1 - prod(1 - lock_i * map_i). Where it is high the
 *                     camera shows through. A lock whose map is missing (no such
 *                     conditioner loaded) has no effect, and stats say so.
 *   motion_lock       temporal smoothing: out = lerp(out, previous out, 0.85 * lock),
 *                     weaker where a heru.motion/1 map reports motion (so moving
 *                     parts do not ghost), uniform without one.
 *   seed              nudges the style's hue and drives the film grain pattern.
 *
 * Every control at its neutral value (locks 0) gives exactly the unlocked output;
 * the pipeline is integer-only after the style is built, so the same frames, config
 * and seed give the same bytes. The output has params->output_width x output_height
 * pixels (bilinear resampling of the camera first when it differs).
 *
 * Cost (plugins/mock/bench-mock): about 4 to 6 ms of one core's CPU time per 512x512
 * frame depending on the style (1 ms for the empty prompt), so one core sustains
 * 150 to 250 frames/s, far above 30.
 *
 * Threads: any thread for create/destroy; process/update_config/stats on the
 * instance's worker, never concurrently (the host guarantees that). No globals.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "heru/plugin.h"
#include "style.h"

#define MOCK_MAX_DIM 8192
#define MOCK_PROMPT_MAX 4096
#define MOCK_SMOOTH_MAX 0.85f

enum { LOCK_POSE, LOCK_DEPTH, LOCK_SEG, LOCK_MOTION, LOCK_COUNT };

static const char *const lock_field[LOCK_COUNT] = {
	"pose_lock", "depth_lock", "seg_lock", "motion_lock"
};
static const char *const lock_cap[LOCK_COUNT] = {
	HERU_CAP_POSE, HERU_CAP_DEPTH, HERU_CAP_SEGMENTATION, HERU_CAP_MOTION
};

struct mock {
	const struct heru_host *host; /* borrowed, valid until destroy */

	/* style cache */
	char *prompt;                 /* new: prompt the style was built from */
	uint64_t seed;
	bool have_style;
	struct mock_style style;

	/* planes at the output size (w x h), reallocated when it changes */
	int32_t w, h;
	uint8_t *resized;   /* new: camera resampled to w x h (when sizes differ) */
	uint8_t *pixelated; /* new: pixelated camera (styles with pixelate) */
	uint8_t *luma;      /* new: luma of the styled source */
	uint16_t *strength; /* new: 0..256 per pixel */
	uint16_t *smooth;   /* new: 0..256 per pixel */
	uint8_t *prev;      /* new: previous output, w*h*3 */
	bool have_prev;
	uint8_t *row;       /* new: one styled row, w*3 */

	/* stats */
	uint64_t frames;
	double total_ms, last_ms;
	float lock_value[LOCK_COUNT];
	bool lock_has_map[LOCK_COUNT];
	float dominance;
	float smoothing;
};

static void seterr(char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static inline int32_t clamp255(int32_t v)
{
	return v < 0 ? 0 : v > 255 ? 255 : v;
}

static float clamp01(float v)
{
	return v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f; /* also maps NaN to 0 */
}

/* ---- instance lifecycle ---- */

static void *mock_create(const struct heru_host *host, const char *config_json, char *err,
	size_t errlen)
{
	struct mock *m;

	(void)config_json; /* every mock setting arrives live through heru_params */
	m = calloc(1, sizeof(*m));
	if (!m) {
		seterr(err, errlen, "out of memory creating the mock backend");
		return NULL;
	}
	m->host = host;
	return m;
}

static void free_planes(struct mock *m)
{
	free(m->resized);
	free(m->pixelated);
	free(m->luma);
	free(m->strength);
	free(m->smooth);
	free(m->prev);
	free(m->row);
	m->resized = m->pixelated = m->luma = m->prev = m->row = NULL;
	m->strength = m->smooth = NULL;
	m->w = m->h = 0;
	m->have_prev = false;
}

static void mock_destroy(void *instance)
{
	struct mock *m = instance;

	if (!m)
		return;
	free_planes(m);
	free(m->prompt);
	free(m);
}

static int ensure_planes(struct mock *m, int32_t w, int32_t h)
{
	size_t n = (size_t)w * (size_t)h;

	if (m->w == w && m->h == h)
		return 0;
	free_planes(m);
	m->resized = malloc(n * 3);
	m->pixelated = malloc(n * 3);
	m->luma = malloc(n);
	m->strength = malloc(n * sizeof(uint16_t));
	m->smooth = malloc(n * sizeof(uint16_t));
	m->prev = malloc(n * 3);
	m->row = malloc((size_t)w * 3);
	if (!m->resized || !m->pixelated || !m->luma || !m->strength || !m->smooth ||
	    !m->prev || !m->row) {
		free_planes(m);
		return HERU_ENOMEM;
	}
	m->w = w;
	m->h = h;
	return 0;
}

static int update_style(struct mock *m, const char *prompt, uint64_t seed)
{
	size_t n;
	char *copy;

	if (!prompt)
		prompt = "";
	if (m->have_style && m->seed == seed && strcmp(m->prompt, prompt) == 0)
		return 0;
	n = strnlen(prompt, MOCK_PROMPT_MAX);
	copy = malloc(n + 1);
	if (!copy)
		return HERU_ENOMEM;
	memcpy(copy, prompt, n);
	copy[n] = 0;
	free(m->prompt);
	m->prompt = copy;
	m->seed = seed;
	mock_style_from_prompt(&m->style, copy, seed);
	m->have_style = true;
	return 0;
}

/* ---- pixel stages ---- */

/* The two source samples i0, i1 (of sn) that output sample i (of n) falls between, and the
 * weight of i1 in 1/256 (pixel centres aligned, edges clamped). */
static void resample_taps(int32_t i, int32_t n, int32_t sn, int32_t *i0, int32_t *i1, int32_t *wgt)
{
	int64_t f = ((int64_t)(2 * i + 1) * sn * 128) / n - 128; /* 1/256 units */
	if (f < 0)
		f = 0;
	*i0 = (int32_t)(f >> 8);
	*wgt = (int32_t)(f & 255);
	*i1 = *i0 + 1 < sn ? *i0 + 1 : sn - 1;
	if (*i0 >= sn)
		*i0 = *i1 = sn - 1;
}

/* Bilinear resample of src (sw x sh, stride) into dst (w x h, packed). */
static void resample(const uint8_t *src, int32_t sw, int32_t sh, int32_t stride, uint8_t *dst,
	int32_t w, int32_t h)
{
	int32_t x, y, c;

	for (y = 0; y < h; y++) {
		int32_t y0, y1, wy;
		resample_taps(y, h, sh, &y0, &y1, &wy);
		for (x = 0; x < w; x++) {
			int32_t x0, x1, wx;
			const uint8_t *r0, *r1;
			resample_taps(x, w, sw, &x0, &x1, &wx);
			r0 = src + (size_t)y0 * (size_t)stride;
			r1 = src + (size_t)y1 * (size_t)stride;
			for (c = 0; c < 3; c++) {
				int32_t a = r0[x0 * 3 + c] * (256 - wx) + r0[x1 * 3 + c] * wx;
				int32_t b = r1[x0 * 3 + c] * (256 - wx) + r1[x1 * 3 + c] * wx;
				dst[((size_t)y * (size_t)w + (size_t)x) * 3 + (size_t)c] =
					(uint8_t)((a * (256 - wy) + b * wy + 32768) >> 16);
			}
		}
	}
}

static void pixelate(const uint8_t *src, size_t stride, uint8_t *dst, int32_t w, int32_t h,
	int32_t block)
{
	int32_t x, y;

	for (y = 0; y < h; y++) {
		int32_t sy = y - y % block + block / 2;
		const uint8_t *row;
		if (sy >= h)
			sy = h - 1;
		row = src + (size_t)sy * stride;
		for (x = 0; x < w; x++) {
			int32_t sx = x - x % block + block / 2;
			if (sx >= w)
				sx = w - 1;
			memcpy(dst + ((size_t)y * (size_t)w + (size_t)x) * 3, row + (size_t)sx * 3, 3);
		}
	}
}

static void compute_luma(const uint8_t *src, size_t stride, uint8_t *luma, int32_t w, int32_t h)
{
	int32_t x, y;

	for (y = 0; y < h; y++) {
		const uint8_t *p = src + (size_t)y * stride;
		uint8_t *l = luma + (size_t)y * (size_t)w;
		for (x = 0; x < w; x++, p += 3)
			l[x] = (uint8_t)((54 * p[0] + 183 * p[1] + 19 * p[2]) >> 8);
	}
}

/* Find the map answering `cap` among args->maps; NULL when absent or unusable. */
static const struct heru_frame *find_map(const struct heru_process_args *args, const char *cap)
{
	uint32_t i;

	if (!args->maps)
		return NULL;
	for (i = 0; i < args->n_maps; i++) {
		const struct heru_map *mp = &args->maps[i];
		const struct heru_frame *f = mp->map;
		if (!mp->capability || !f || strcmp(mp->capability, cap) != 0)
			continue;
		if (f->format != HERU_FORMAT_F32 || f->width < 1 || f->height < 1 || !f->data ||
		    f->stride < f->width * (int32_t)sizeof(float))
			continue;
		return f;
	}
	return NULL;
}

static float map_at(const struct heru_frame *f, int32_t mx, int32_t my)
{
	const float *row = (const float *)((const uint8_t *)f->data + (size_t)my * (size_t)f->stride);
	return clamp01(row[mx]);
}

/* Fill m->strength (0..256) and m->smooth (0..256) for this frame. */
static void compute_weights(struct mock *m, const struct heru_process_args *args)
{
	const struct heru_params *p = args->params;
	const struct heru_frame *maps[LOCK_COUNT];
	float locks[LOCK_COUNT] = { clamp01(p->pose_lock), clamp01(p->depth_lock),
				    clamp01(p->seg_lock), clamp01(p->motion_lock) };
	float dom = clamp01(p->prompt_dominance), smooth = MOCK_SMOOTH_MAX * locks[LOCK_MOTION];
	bool any_preserve = false;
	int32_t x, y, k, w = m->w, h = m->h;

	for (k = 0; k < LOCK_COUNT; k++) {
		maps[k] = find_map(args, lock_cap[k]);
		m->lock_value[k] = locks[k];
		m->lock_has_map[k] = maps[k] != NULL;
		if (k != LOCK_MOTION && maps[k] && locks[k] > 0.0f)
			any_preserve = true;
	}
	m->dominance = dom;
	m->smoothing = smooth;
	if (!any_preserve) {
		uint16_t s = (uint16_t)lrintf(dom * 256.0f);
		for (size_t i = 0; i < (size_t)w * (size_t)h; i++)
			m->strength[i] = s;
	} else {
		for (y = 0; y < h; y++) {
			for (x = 0; x < w; x++) {
				float keep = 1.0f; /* prod(1 - lock * map) */
				for (k = 0; k < LOCK_MOTION; k++) {
					const struct heru_frame *f = maps[k];
					if (!f || locks[k] <= 0.0f)
						continue;
					keep *= 1.0f - locks[k] * map_at(f, (int32_t)((int64_t)x * f->width / w),
						(int32_t)((int64_t)y * f->height / h));
				}
				m->strength[(size_t)y * (size_t)w + (size_t)x] =
					(uint16_t)lrintf(dom * keep * 256.0f);
			}
		}
	}
	if (!maps[LOCK_MOTION] || smooth <= 0.0f) {
		uint16_t t = (uint16_t)lrintf(smooth * 256.0f);
		for (size_t i = 0; i < (size_t)w * (size_t)h; i++)
			m->smooth[i] = t;
	} else {
		const struct heru_frame *f = maps[LOCK_MOTION];
		for (y = 0; y < h; y++)
			for (x = 0; x < w; x++) {
				float mv = map_at(f, (int32_t)((int64_t)x * f->width / w),
					(int32_t)((int64_t)y * f->height / h));
				m->smooth[(size_t)y * (size_t)w + (size_t)x] =
					(uint16_t)lrintf(smooth * (1.0f - mv) * 256.0f);
			}
	}
}

static inline uint32_t grain_hash(uint32_t x, uint32_t y, uint32_t f, uint32_t seed)
{
	uint32_t h = x * 73856093u ^ y * 19349663u ^ f * 83492791u ^ seed;
	h ^= h >> 13;
	h *= 0x5bd1e995u;
	h ^= h >> 15;
	return h;
}

/*
 * Style one row: sp (RGB8) -> dst (RGB8). Everything the loop reads is copied into
 * locals first: the uint8_t stores could otherwise alias the style and force the
 * compiler to reload it for every pixel.
 */
static void style_row(const struct mock_style *s, const uint8_t *restrict sp,
	const uint8_t *restrict l, const uint8_t *restrict lu, const uint8_t *restrict ld,
	int32_t w, int32_t y, uint32_t frame, uint8_t *restrict dst)
{
	const int32_t m00 = s->matrix[0][0], m01 = s->matrix[0][1], m02 = s->matrix[0][2];
	const int32_t m10 = s->matrix[1][0], m11 = s->matrix[1][1], m12 = s->matrix[1][2];
	const int32_t m20 = s->matrix[2][0], m21 = s->matrix[2][1], m22 = s->matrix[2][2];
	const int32_t o0 = s->offset[0], o1 = s->offset[1], o2 = s->offset[2];
	const int32_t pw = s->palette_weight, egain = s->edge_gain, eweight = s->edge_weight;
	const int32_t ec0 = s->edge_color[0], ec1 = s->edge_color[1], ec2 = s->edge_color[2];
	const int32_t grain = s->grain;
	const uint32_t seed = s->seed_hash;
	const uint8_t (*pal)[3] = s->palette;
	const uint8_t *post = s->post;
	int32_t x;

	for (x = 0; x < w; x++) {
		int32_t r = sp[3 * x], g = sp[3 * x + 1], b = sp[3 * x + 2];
		int32_t v0, v1, v2, ew = 0, gn = 0;

		v0 = clamp255(((m00 * r + m01 * g + m02 * b) >> 10) + o0);
		v1 = clamp255(((m10 * r + m11 * g + m12 * b) >> 10) + o1);
		v2 = clamp255(((m20 * r + m21 * g + m22 * b) >> 10) + o2);
		if (pw) {
			const uint8_t *pc = pal[l[x]];
			v0 += (pc[0] - v0) * pw >> 8;
			v1 += (pc[1] - v1) * pw >> 8;
			v2 += (pc[2] - v2) * pw >> 8;
		}
		if (grain)
			gn = ((int32_t)(grain_hash((uint32_t)x, (uint32_t)y, frame, seed) & 255) - 128) *
				grain >> 7;
		v0 = clamp255(post[clamp255(v0)] + gn);
		v1 = clamp255(post[clamp255(v1)] + gn);
		v2 = clamp255(post[clamp255(v2)] + gn);
		if (eweight) {
			int32_t gx = l[x + 1 < w ? x + 1 : x] - l[x > 0 ? x - 1 : x];
			int32_t gy = ld[x] - lu[x], e;
			e = ((gx < 0 ? -gx : gx) + (gy < 0 ? -gy : gy)) * egain >> 4;
			ew = (e > 255 ? 255 : e) * eweight >> 8;
			v0 += (ec0 - v0) * ew >> 8;
			v1 += (ec1 - v1) * ew >> 8;
			v2 += (ec2 - v2) * ew >> 8;
		}
		dst[3 * x] = (uint8_t)v0;
		dst[3 * x + 1] = (uint8_t)v1;
		dst[3 * x + 2] = (uint8_t)v2;
	}
}

/* Blend one row: out = cam + (styled - cam) * strength, then toward prev by smooth. */
static void blend_row(const uint8_t *restrict cam, const uint8_t *restrict styled,
	const uint16_t *restrict st, const uint16_t *restrict sm, bool smooth,
	uint8_t *restrict prev, uint8_t *restrict out, int32_t w)
{
	int32_t x, c;

	if (smooth) {
		for (x = 0; x < w; x++) {
			const int32_t k = st[x], t = sm[x];
			for (c = 0; c < 3; c++) {
				int32_t i = 3 * x + c, cv = cam[i], v = cv + ((styled[i] - cv) * k >> 8);
				v += (prev[i] - v) * t >> 8;
				out[i] = prev[i] = (uint8_t)v;
			}
		}
	} else {
		for (x = 0; x < w; x++) {
			const int32_t k = st[x];
			for (c = 0; c < 3; c++) {
				int32_t i = 3 * x + c, cv = cam[i];
				out[i] = prev[i] = (uint8_t)(cv + ((styled[i] - cv) * k >> 8));
			}
		}
	}
}

/* The per-pixel pipeline: style, blend with the camera, temporal smoothing. All
 * intermediate values stay within 0..255 (blends of values in 0..255), so the
 * stores need no clamping. */
static void render(struct mock *m, const uint8_t *cam, size_t cam_stride, const uint8_t *sty,
	size_t sty_stride, uint8_t *out, size_t out_stride)
{
	const struct mock_style *s = &m->style;
	const int32_t w = m->w, h = m->h;
	const uint32_t frame = (uint32_t)m->frames;
	const bool smooth = m->have_prev && m->smoothing > 0.0f;
	uint8_t *row = m->row;
	int32_t y;

	for (y = 0; y < h; y++) {
		const uint8_t *cp = cam + (size_t)y * cam_stride;
		const uint8_t *l = m->luma + (size_t)y * (size_t)w;

		if (!s->identity)
			style_row(s, sty + (size_t)y * sty_stride, l, y > 0 ? l - w : l,
				y + 1 < h ? l + w : l, w, y, frame, row);
		blend_row(cp, s->identity ? cp : row, m->strength + (size_t)y * (size_t)w,
			m->smooth + (size_t)y * (size_t)w, smooth, m->prev + (size_t)y * (size_t)w * 3,
			out + (size_t)y * out_stride, w);
	}
	m->have_prev = true;
}

/* ---- vtable ---- */

static int mock_process(void *instance, const struct heru_process_args *args, char *err,
	size_t errlen)
{
	struct mock *m = instance;
	const struct heru_frame *in;
	const struct heru_params *p;
	struct heru_frame *out;
	const uint8_t *cam, *sty;
	size_t cam_stride, sty_stride;
	int32_t w, h;
	double t0 = now_ms();
	int rc;

	if (!m || !args || args->struct_size < sizeof(*args) || !args->frame || !args->params ||
	    !args->emit) {
		seterr(err, errlen, "mock: process called without a frame, params or emit function");
		return HERU_EINVAL;
	}
	in = args->frame;
	p = args->params;
	if (in->format != HERU_FORMAT_RGB8 || in->width < 1 || in->height < 1 ||
	    in->width > MOCK_MAX_DIM || in->height > MOCK_MAX_DIM || !in->data ||
	    in->stride < in->width * 3) {
		seterr(err, errlen, "mock: the input frame is not an RGB8 image of 1 to 8192 pixels a side");
		return HERU_EINVAL;
	}
	w = p->output_width >= 1 && p->output_width <= MOCK_MAX_DIM ? p->output_width : in->width;
	h = p->output_height >= 1 && p->output_height <= MOCK_MAX_DIM ? p->output_height : in->height;
	if (ensure_planes(m, w, h) != 0 || update_style(m, p->prompt, p->seed) != 0) {
		seterr(err, errlen, "mock: out of memory");
		return HERU_ENOMEM;
	}
	if (w == in->width && h == in->height) {
		cam = in->data;
		cam_stride = (size_t)in->stride;
	} else {
		resample(in->data, in->width, in->height, in->stride, m->resized, w, h);
		cam = m->resized;
		cam_stride = (size_t)w * 3;
	}
	sty = cam;
	sty_stride = cam_stride;
	if (!m->style.identity && m->style.pixelate > 1) {
		pixelate(cam, cam_stride, m->pixelated, w, h, m->style.pixelate);
		sty = m->pixelated;
		sty_stride = (size_t)w * 3;
	}
	if (!m->style.identity)
		compute_luma(sty, sty_stride, m->luma, w, h);
	compute_weights(m, args);
	out = m->host && m->host->frame_new ? m->host->frame_new(m->host, HERU_FORMAT_RGB8, w, h)
					    : NULL;
	if (!out) {
		seterr(err, errlen, "mock: the host could not allocate an output frame");
		return HERU_ENOMEM;
	}
	render(m, cam, cam_stride, sty, sty_stride, out->data, (size_t)out->stride);
	out->id = in->id;
	out->ts_ms = in->ts_ms;
	m->frames++;
	m->last_ms = now_ms() - t0;
	m->total_ms += m->last_ms;
	rc = args->emit(args->emit_ctx, out);
	if (rc != 0) {
		seterr(err, errlen, "mock: the host refused the output frame");
		return rc;
	}
	return 0;
}

static int mock_update_config(void *instance, const char *config_json, char *err, size_t errlen)
{
	(void)instance;
	(void)config_json;
	(void)err;
	(void)errlen;
	return 0; /* everything the mock uses is live (heru_params) */
}

static int mock_stats(void *instance, char *buf, size_t buflen)
{
	struct mock *m = instance;
	size_t n = 0;
	int k, r;

#define APPEND(...) do { \
		r = snprintf(buf + n, buflen - n, __VA_ARGS__); \
		if (r < 0 || (size_t)r >= buflen - n) \
			return HERU_ENOSPC; \
		n += (size_t)r; \
	} while (0)

	if (!buf || buflen == 0)
		return HERU_ENOSPC;
	APPEND("{\"backend\":\"mock\",\"style\":\"%s\",\"frames\":%llu,"
		"\"avg_process_ms\":%.3f,\"last_process_ms\":%.3f,\"width\":%d,\"height\":%d,"
		"\"prompt_dominance\":%.3f,\"temporal_smoothing\":%.3f,\"locks\":{",
		m->have_style ? m->style.name : "none", (unsigned long long)m->frames,
		m->frames ? m->total_ms / (double)m->frames : 0.0, m->last_ms, m->w, m->h,
		m->dominance, m->smoothing);
	for (k = 0; k < LOCK_COUNT; k++) {
		const char *effect;
		if (m->lock_value[k] <= 0.0f)
			effect = "off";
		else if (m->lock_has_map[k])
			effect = k == LOCK_MOTION ? "motion-aware smoothing" : "preserving the camera";
		else if (k == LOCK_MOTION)
			effect = "uniform smoothing (no heru.motion/1 conditioner loaded)";
		else
			effect = "none";
		APPEND("%s\"%s\":{\"value\":%.3f,\"map\":%s,\"effect\":\"%s\"}", k ? "," : "",
			lock_field[k], m->lock_value[k], m->lock_has_map[k] ? "true" : "false",
			effect);
	}
	APPEND("},\"notes\":[");
	for (k = 0, r = 0; k < LOCK_MOTION; k++) {
		int q;
		if (m->lock_value[k] <= 0.0f || m->lock_has_map[k])
			continue;
		q = snprintf(buf + n, buflen - n, "%s\"%s has no effect: no %s conditioner is loaded\"",
			r ? "," : "", lock_field[k], lock_cap[k]);
		if (q < 0 || (size_t)q >= buflen - n)
			return HERU_ENOSPC;
		n += (size_t)q;
		r = 1;
	}
	APPEND("]}");
#undef APPEND
	return (int)n;
}

static const struct heru_backend_vtable mock_vtable = {
	.struct_size = sizeof(struct heru_backend_vtable),
	.create = mock_create,
	.process = mock_process,
	.update_config = mock_update_config,
	.stats = mock_stats,
	.destroy = mock_destroy,
};

static const char *const mock_caps[] = { HERU_CAP_VIDEO_GEN, HERU_CAP_STYLIZE, NULL };

HERU_PLUGIN_EXPORT const struct heru_plugin_entry heru_plugin_entry = {
	.abi_major = HERU_ABI_MAJOR,
	.abi_minor = HERU_ABI_MINOR,
	.struct_size = sizeof(struct heru_plugin_entry),
	.kind = HERU_KIND_BACKEND,
	.abi_fingerprint = HERU_ABI_FINGERPRINT,
	.id = "mock",
	.name = "Mock stylizer",
	.version = "1.0.0",
	.description = "Deterministic CPU stylizer: the prompt picks a style, "
		       "prompt_dominance and the locks set how much of the camera remains.",
	.flags = HERU_FLAG_UNLOADABLE,
	.capabilities = mock_caps,
	.backend = &mock_vtable,
};
