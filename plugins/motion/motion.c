/*
 * motion.c: motion.so, a frame-difference motion conditioner (heru.motion/1).
 *
 * This is the worked example of a Heru conditioner: copy this file, change the id,
 * the capability and process(), and you have a plugin. Build it with
 *
 *   cc -std=c99 -O2 -fPIC -shared $(pkg-config --cflags heru-plugin) motion.c \
 *      -o motion.so -Wl,--version-script=<(echo '{ global: heru_plugin_entry; local: *; };')
 *
 * and drop motion.so into herud's plugin folder (--plugin-dir).
 *
 * DESIGN
 *
 * The map says, per 4x4 block of the camera, how much changed since the previous
 * frame: 0 = still, 1 = moving. Backends use it with motion_lock: the mock smooths
 * still regions over time and leaves moving ones sharp (no ghosting); a diffusion
 * backend lowers its noise where the scene is still. To keep a moving edge from
 * flickering, the map decays instead of dropping to 0 at once (a short motion trail).
 *
 * Threads: the host creates and destroys the instance on its loader thread and
 * calls process on one worker thread at a time, so the instance needs no locking.
 * Nothing here is global except the constant entry and vtable.
 *
 * Ownership: the camera frame passed to process is borrowed (we read it during the
 * call only); the map we return is a new frame from host->frame_new, and the host
 * releases it. We keep our own history in plain malloc'd arrays.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <heru/plugin.h>

#define BLOCK 4          /* map pixel = BLOCK x BLOCK camera pixels */
#define MAX_DIM 8192
#define GAIN 6.0f        /* a mean luma change of ~42/255 reads as full motion */
#define DECAY 0.7f       /* map(t) >= DECAY * map(t-1): a short trail */

struct motion {
	const struct heru_host *host; /* borrowed, valid until destroy */
	int32_t mw, mh;               /* map size of the history below */
	float *prev_luma;             /* new: mw*mh block means of the previous frame */
	float *prev_map;              /* new: mw*mh previous map */
	bool have_prev;
	uint64_t frames;
};

static void *motion_create(const struct heru_host *host, const char *config_json, char *err,
	size_t errlen)
{
	struct motion *m;

	(void)config_json; /* no settings */
	m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "out of memory creating the motion conditioner");
		return NULL;
	}
	m->host = host;
	return m;
}

static void motion_destroy(void *instance)
{
	struct motion *m = instance;

	if (!m)
		return;
	free(m->prev_luma);
	free(m->prev_map);
	free(m);
}

/* (Re)size the history; forgets the previous frame. */
static int resize_history(struct motion *m, int32_t mw, int32_t mh)
{
	size_t n = (size_t)mw * (size_t)mh;

	free(m->prev_luma);
	free(m->prev_map);
	m->prev_luma = calloc(n, sizeof(float));
	m->prev_map = calloc(n, sizeof(float));
	m->have_prev = false;
	if (!m->prev_luma || !m->prev_map) {
		free(m->prev_luma);
		free(m->prev_map);
		m->prev_luma = m->prev_map = NULL;
		m->mw = m->mh = 0;
		return HERU_ENOMEM;
	}
	m->mw = mw;
	m->mh = mh;
	return 0;
}

/* Mean luma (0..255) of the block at map pixel (bx, by). */
static float block_luma(const struct heru_frame *f, int32_t bx, int32_t by)
{
	int32_t x0 = bx * BLOCK, y0 = by * BLOCK, x, y, n = 0;
	uint32_t sum = 0;

	for (y = y0; y < y0 + BLOCK && y < f->height; y++) {
		const uint8_t *p = heru_frame_row(f, y);
		for (x = x0; x < x0 + BLOCK && x < f->width; x++, n++)
			sum += (uint32_t)(54 * p[3 * x] + 183 * p[3 * x + 1] + 19 * p[3 * x + 2]) >> 8;
	}
	return n ? (float)sum / (float)n : 0.0f;
}

static int motion_process(void *instance, struct heru_frame *frame, struct heru_frame **out,
	char *err, size_t errlen)
{
	struct motion *m = instance;
	struct heru_frame *map;
	int32_t mw, mh, bx, by;

	if (out)
		*out = NULL;
	if (!m || !frame || !out) {
		snprintf(err, errlen, "motion: process called without a frame or output pointer");
		return HERU_EINVAL;
	}
	if (frame->format != HERU_FORMAT_RGB8 || frame->width < 1 || frame->height < 1 ||
	    frame->width > MAX_DIM || frame->height > MAX_DIM || !frame->data ||
	    frame->stride < frame->width * 3) {
		snprintf(err, errlen, "motion: the input frame is not an RGB8 image of 1 to %d "
			"pixels a side", MAX_DIM);
		return HERU_EINVAL;
	}
	mw = (frame->width + BLOCK - 1) / BLOCK;
	mh = (frame->height + BLOCK - 1) / BLOCK;
	if ((mw != m->mw || mh != m->mh) && resize_history(m, mw, mh) != 0) {
		snprintf(err, errlen, "motion: out of memory");
		return HERU_ENOMEM;
	}
	map = m->host->frame_new(m->host, HERU_FORMAT_F32, mw, mh);
	if (!map) {
		snprintf(err, errlen, "motion: the host could not allocate a %dx%d map", mw, mh);
		return HERU_ENOMEM;
	}
	for (by = 0; by < mh; by++) {
		float *row = heru_frame_row(map, by);
		for (bx = 0; bx < mw; bx++) {
			size_t i = (size_t)by * (size_t)mw + (size_t)bx;
			float l = block_luma(frame, bx, by), v = 0.0f, d;

			if (m->have_prev) {
				d = l - m->prev_luma[i];
				v = (d < 0 ? -d : d) * GAIN / 255.0f;
				if (v > 1.0f)
					v = 1.0f;
				if (v < DECAY * m->prev_map[i])
					v = DECAY * m->prev_map[i];
			}
			row[bx] = v;
			m->prev_luma[i] = l;
			m->prev_map[i] = v;
		}
	}
	m->have_prev = true;
	m->frames++;
	map->id = frame->id;
	map->ts_ms = frame->ts_ms;
	*out = map; /* new reference: the host releases it */
	return 0;
}

static const struct heru_conditioner_vtable motion_vtable = {
	.struct_size = sizeof(struct heru_conditioner_vtable),
	.create = motion_create,
	.process = motion_process,
	.destroy = motion_destroy,
};

static const char *const motion_caps[] = { HERU_CAP_MOTION, NULL };

HERU_PLUGIN_EXPORT const struct heru_plugin_entry heru_plugin_entry = {
	.abi_major = HERU_ABI_MAJOR,
	.abi_minor = HERU_ABI_MINOR,
	.struct_size = sizeof(struct heru_plugin_entry),
	.kind = HERU_KIND_CONDITIONER,
	.abi_fingerprint = HERU_ABI_FINGERPRINT,
	.id = "motion",
	.name = "Motion map",
	.version = "1.0.0",
	.description = "Frame-difference motion map (0 still, 1 moving) for motion_lock.",
	.flags = HERU_FLAG_UNLOADABLE,
	.capabilities = motion_caps,
	.conditioner = &motion_vtable,
};
