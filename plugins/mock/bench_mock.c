/*
 * bench_mock.c: time mock.so's process() per frame (no JPEG, no server), for a few
 * styles, with and without a conditioner map and locks. Prints ms per frame and
 * frames/s on one core. Usage: bench-mock [WIDTH HEIGHT [FRAMES]] (default 512 512 200).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "heru/plugin.h"
#include "plugin.h"

extern const struct heru_plugin_entry heru_plugin_entry;

static struct heru_frame *last;

static int keep(void *ctx, struct heru_frame *f)
{
	(void)ctx;
	heru_frame_release(last);
	last = f;
	return 0;
}

/* CPU time of this thread: on a shared machine wall time says more about the
 * neighbours than about the mock. */
static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *prompt;
		float lock, motion;
	} cases[] = {
		{ "", 0, 0 },
		{ "a watercolor painting, soft pastel colors", 0, 0 },
		{ "noir pencil sketch", 0, 0 },
		{ "neon cyberpunk film grain", 0, 0 },
		{ "pixel retro", 0, 0 },
		{ "comic cartoon", 0.8f, 0 },
		{ "comic cartoon", 0.8f, 0.7f },
	};
	const struct heru_backend_vtable *v = heru_plugin_entry.backend;
	struct heru_host host = { .struct_size = sizeof(host), .frame_new = plugin_host_frame_new };
	int w = argc > 2 ? atoi(argv[1]) : 512, h = argc > 2 ? atoi(argv[2]) : 512;
	int frames = argc > 3 ? atoi(argv[3]) : 200, x, y;
	struct heru_frame *in, *map;
	size_t c;
	char err[256];

	if (w < 1 || h < 1 || w > 4096 || h > 4096 || frames < 1) {
		fprintf(stderr, "usage: bench-mock [WIDTH HEIGHT [FRAMES]]\n");
		return 2;
	}
	in = plugin_frame_new(HERU_FORMAT_RGB8, w, h);
	map = plugin_frame_new(HERU_FORMAT_F32, w / 4 > 0 ? w / 4 : 1, h / 4 > 0 ? h / 4 : 1);
	if (!in || !map)
		return 1;
	for (y = 0; y < h; y++)
		for (x = 0; x < w; x++) {
			uint8_t *p = (uint8_t *)heru_frame_row(in, y) + 3 * x;
			p[0] = (uint8_t)(x * 7 + y);
			p[1] = (uint8_t)(y * 3);
			p[2] = (uint8_t)((x ^ y) * 5);
		}
	for (y = 0; y < map->height; y++)
		for (x = 0; x < map->width; x++)
			((float *)heru_frame_row(map, y))[x] = (float)((x + y) % 10) / 10.0f;
	printf("mock process(), %dx%d, %d frames per case, CPU time of one thread\n", w, h, frames);
	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct heru_map maps[2] = { { HERU_CAP_POSE, map }, { HERU_CAP_MOTION, map } };
		struct heru_params p = {
			.struct_size = sizeof(p), .prompt = cases[c].prompt, .prompt_dominance = 0.7f,
			.pose_lock = cases[c].lock, .motion_lock = cases[c].motion, .output_width = w,
			.output_height = h, .seed = 42,
		};
		struct heru_process_args a = {
			.struct_size = sizeof(a), .n_maps = cases[c].lock > 0 ? 2 : 0, .frame = in,
			.maps = maps, .params = &p, .emit = keep,
		};
		void *inst = v->create(&host, "{}", err, sizeof(err));
		double t0;
		int i;

		if (!inst || v->process(inst, &a, err, sizeof(err)) != 0) { /* warm-up */
			fprintf(stderr, "bench-mock: %s\n", err);
			return 1;
		}
		t0 = now_ms();
		for (i = 0; i < frames; i++)
			v->process(inst, &a, err, sizeof(err));
		t0 = (now_ms() - t0) / frames;
		printf("  %-45s pose_lock %.1f motion_lock %.1f: %6.2f ms/frame (%6.0f fps per core)\n",
			*cases[c].prompt ? cases[c].prompt : "(empty prompt)", cases[c].lock,
			cases[c].motion, t0, 1000.0 / t0);
		v->destroy(inst);
	}
	heru_frame_release(last);
	heru_frame_release(in);
	heru_frame_release(map);
	return 0;
}
