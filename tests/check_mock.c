/*
 * check_mock.c: mock.so and motion.so as a user of herud sees them: determinism,
 * neutral controls, prompt styles, prompt_dominance, locks with and without a
 * conditioner, temporal smoothing, output size, stats. The plugins are loaded from
 * the build's plugin folder through the real loader.
 */
#include "config.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_util.h"
#include "plugin.h"

#define W 96
#define H 64

static struct plugin_registry *reg;
static const struct heru_backend_vtable *mock;
static const struct heru_conditioner_vtable *motion;

static void quiet_log(const struct heru_host *host, int level, const char *msg)
{
	(void)host;
	(void)level;
	(void)msg;
}

static const struct heru_host host = {
	.struct_size = sizeof(struct heru_host),
	.abi_major = HERU_ABI_MAJOR,
	.abi_minor = HERU_ABI_MINOR,
	.name = "check_mock",
	.version = "0",
	.log = quiet_log,
	.frame_new = plugin_host_frame_new,
};

static void setup(void)
{
	const char *dir = getenv("HERU_PLUGIN_DIR");
	const struct heru_plugin_entry *e;

	ck_assert_msg(dir && *dir, "HERU_PLUGIN_DIR is not set");
	reg = plugin_registry_new(dir, &host);
	ck_assert_ptr_nonnull(reg);
	e = plugin_registry_find(reg, "mock");
	ck_assert_msg(e != NULL, "mock.so not found in '%s'", dir);
	mock = e->backend;
	e = plugin_registry_find(reg, "motion");
	ck_assert_msg(e != NULL, "motion.so not found in '%s'", dir);
	motion = e->conditioner;
}

static void teardown(void)
{
	plugin_registry_free(reg);
	reg = NULL;
}

/* A camera frame: gradient background and a bright square at (sx, sy). */
static struct heru_frame *camera(int sx, int sy, uint64_t id)
{
	struct heru_frame *f = plugin_frame_new(HERU_FORMAT_RGB8, W, H);
	int x, y;

	ck_assert_ptr_nonnull(f);
	for (y = 0; y < H; y++) {
		uint8_t *row = heru_frame_row(f, y);
		for (x = 0; x < W; x++) {
			bool sq = x >= sx && x < sx + 20 && y >= sy && y < sy + 20;
			row[3 * x] = sq ? 240 : (uint8_t)(x * 255 / W);
			row[3 * x + 1] = sq ? 220 : (uint8_t)(y * 255 / H);
			row[3 * x + 2] = sq ? 40 : (uint8_t)(128 + (x ^ y) % 64);
		}
	}
	f->id = id;
	f->ts_ms = 1000.0 + (double)id;
	return f;
}

static struct heru_params params(const char *prompt)
{
	struct heru_params p = {
		.struct_size = sizeof(struct heru_params),
		.prompt = prompt,
		.prompt_dominance = 1.0f,
		.inference_steps = 2,
		.output_width = W,
		.output_height = H,
		.seed = 42,
	};
	return p;
}

static int capture(void *ctx, struct heru_frame *frame)
{
	struct heru_frame **slot = ctx;
	ck_assert_msg(*slot == NULL, "mock emitted two frames for one input");
	*slot = frame;
	return 0;
}

/* Run one frame through a mock instance; returns the output (caller releases). */
static struct heru_frame *run(void *inst, struct heru_frame *in, const struct heru_params *p,
	const struct heru_map *maps, uint32_t n_maps)
{
	struct heru_frame *out = NULL;
	struct heru_process_args a = {
		.struct_size = sizeof(a), .n_maps = n_maps, .frame = in, .maps = maps,
		.params = p, .emit = capture, .emit_ctx = &out,
	};
	char err[256] = "";

	ck_assert_msg(mock->process(inst, &a, err, sizeof(err)) == 0, "process: %s", err);
	ck_assert_ptr_nonnull(out);
	ck_assert_uint_eq(out->id, in->id);
	return out;
}

static void *new_mock(void)
{
	char err[256] = "";
	void *inst = mock->create(&host, "{}", err, sizeof(err));
	ck_assert_msg(inst != NULL, "create: %s", err);
	return inst;
}

static bool same(const struct heru_frame *a, const struct heru_frame *b)
{
	int y;

	if (a->width != b->width || a->height != b->height)
		return false;
	for (y = 0; y < a->height; y++)
		if (memcmp(heru_frame_row(a, y), heru_frame_row(b, y), (size_t)a->width * 3) != 0)
			return false;
	return true;
}

/* Mean absolute difference over the pixels of columns [x0, x1). */
static double diff(const struct heru_frame *a, const struct heru_frame *b, int x0, int x1)
{
	double sum = 0;
	int x, y, c;

	for (y = 0; y < a->height; y++) {
		const uint8_t *p = heru_frame_row(a, y), *q = heru_frame_row(b, y);
		for (x = x0; x < x1; x++)
			for (c = 0; c < 3; c++)
				sum += abs(p[3 * x + c] - q[3 * x + c]);
	}
	return sum / ((double)a->height * (x1 - x0) * 3);
}

/* A map of value v on columns < split, 0 elsewhere. */
static struct heru_frame *half_map(int mw, int mh, int split, float v)
{
	struct heru_frame *m = plugin_frame_new(HERU_FORMAT_F32, mw, mh);
	int x, y;

	for (y = 0; y < mh; y++) {
		float *row = heru_frame_row(m, y);
		for (x = 0; x < mw; x++)
			row[x] = x < split ? v : 0.0f;
	}
	return m;
}

/* ---- tests ---- */

START_TEST(test_deterministic)
{
	struct heru_params p = params("grainy film noir comic of a cat");
	void *a = new_mock(), *b = new_mock();
	int i;

	p.motion_lock = 0.6f;
	p.pose_lock = 0.5f;
	for (i = 0; i < 5; i++) {
		struct heru_frame *in = camera(5 * i, 3 * i, (uint64_t)i);
		struct heru_frame *oa = run(a, in, &p, NULL, 0), *ob = run(b, in, &p, NULL, 0);
		ck_assert_msg(same(oa, ob), "frame %d differs between identical runs", i);
		heru_frame_release(oa);
		heru_frame_release(ob);
		heru_frame_release(in);
	}
	mock->destroy(a);
	mock->destroy(b);
}
END_TEST

START_TEST(test_prompt_selects_style)
{
	const char *prompts[] = { "noir pencil sketch", "neon cyberpunk city", "sepia vintage photo",
				  "a cat in space", "a dog on the moon" };
	struct heru_frame *in = camera(30, 20, 1), *out[5];
	void *inst = new_mock();
	int i, j;

	for (i = 0; i < 5; i++) {
		struct heru_params p = params(prompts[i]);
		out[i] = run(inst, in, &p, NULL, 0);
		ck_assert_msg(diff(out[i], in, 0, W) > 8.0, "'%s' barely changes the camera (%.2f)",
			prompts[i], diff(out[i], in, 0, W));
	}
	for (i = 0; i < 5; i++)
		for (j = i + 1; j < 5; j++)
			ck_assert_msg(diff(out[i], out[j], 0, W) > 5.0, "'%s' and '%s' look alike (%.2f)",
				prompts[i], prompts[j], diff(out[i], out[j], 0, W));
	/* the seed varies the result of one prompt, like a diffusion seed */
	{
		struct heru_params p = params("a cat in space");
		struct heru_frame *o;
		p.seed = 7;
		o = run(inst, in, &p, NULL, 0);
		ck_assert_msg(!same(o, out[3]), "the seed does not change the output");
		heru_frame_release(o);
	}
	for (i = 0; i < 5; i++)
		heru_frame_release(out[i]);
	heru_frame_release(in);
	mock->destroy(inst);
}
END_TEST

START_TEST(test_dominance)
{
	struct heru_frame *in = camera(10, 10, 1), *o0, *o5, *o1;
	struct heru_params p = params("neon cyberpunk");
	void *inst = new_mock();

	p.prompt_dominance = 0.0f;
	o0 = run(inst, in, &p, NULL, 0);
	ck_assert_msg(same(o0, in), "prompt_dominance 0 does not give the camera image");
	p.prompt_dominance = 0.5f;
	o5 = run(inst, in, &p, NULL, 0);
	p.prompt_dominance = 1.0f;
	o1 = run(inst, in, &p, NULL, 0);
	ck_assert(diff(o5, in, 0, W) > 2.0);
	ck_assert_msg(diff(o1, in, 0, W) > diff(o5, in, 0, W) + 2.0,
		"higher dominance does not depart further from the camera");
	heru_frame_release(o0);
	heru_frame_release(o5);
	heru_frame_release(o1);
	/* the empty prompt is the camera image whatever the dominance */
	p = params("");
	o0 = run(inst, in, &p, NULL, 0);
	ck_assert(same(o0, in));
	heru_frame_release(o0);
	heru_frame_release(in);
	mock->destroy(inst);
}
END_TEST

START_TEST(test_neutral_is_unlocked)
{
	struct heru_frame *in = camera(40, 30, 1), *pose = half_map(24, 16, 12, 1.0f);
	struct heru_frame *motion_map = half_map(24, 16, 24, 0.5f);
	struct heru_map maps[2] = { { HERU_CAP_POSE, pose }, { HERU_CAP_MOTION, motion_map } };
	struct heru_params p = params("comic cartoon");
	void *a = new_mock(), *b = new_mock();
	int i;

	for (i = 0; i < 3; i++) {
		struct heru_frame *oa = run(a, in, &p, NULL, 0);   /* no conditioners */
		struct heru_frame *ob = run(b, in, &p, maps, 2);   /* maps, all locks 0 */
		ck_assert_msg(same(oa, ob), "locks at 0 with maps differ from the unlocked output");
		heru_frame_release(oa);
		heru_frame_release(ob);
	}
	heru_frame_release(pose);
	heru_frame_release(motion_map);
	heru_frame_release(in);
	mock->destroy(a);
	mock->destroy(b);
}
END_TEST

START_TEST(test_lock_preserves_region)
{
	struct heru_frame *in = camera(40, 30, 1), *pose = half_map(48, 32, 24, 1.0f), *o, *u;
	struct heru_map maps[1] = { { HERU_CAP_POSE, pose } };
	struct heru_params p = params("neon cyberpunk");
	void *inst = new_mock();
	char stats[4096];
	json_t *j;

	u = run(inst, in, &p, maps, 1); /* pose_lock 0: unlocked */
	p.pose_lock = 1.0f;
	o = run(inst, in, &p, maps, 1);
	/* left half: map 1 and lock 1 -> the camera shows through; right half unchanged */
	ck_assert_msg(diff(o, in, 0, W / 2) < 1.0, "locked region is not the camera (%.2f)",
		diff(o, in, 0, W / 2));
	ck_assert_msg(diff(o, u, W / 2 + 2, W) < 1.0, "unlocked region changed");
	ck_assert(diff(u, in, 0, W / 2) > 8.0);
	heru_frame_release(o);
	heru_frame_release(u);
	ck_assert_int_gt(mock->stats(inst, stats, sizeof(stats)), 0);
	j = json_loads(stats, 0, NULL);
	ck_assert_msg(j != NULL, "stats are not JSON: %s", stats);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(j,
		"locks"), "pose_lock"), "effect")), "preserving the camera");
	json_decref(j);

	/* the same lock without a pose conditioner: no effect, and stats say so */
	u = run(inst, in, &p, NULL, 0);
	p.pose_lock = 0.0f;
	o = run(inst, in, &p, NULL, 0);
	ck_assert_msg(same(o, u), "pose_lock without a pose map changed the output");
	p.pose_lock = 1.0f;
	heru_frame_release(run(inst, in, &p, NULL, 0));
	ck_assert_int_gt(mock->stats(inst, stats, sizeof(stats)), 0);
	ck_assert_msg(strstr(stats, "pose_lock has no effect: no heru.pose/1 conditioner is loaded"),
		"%s", stats);
	j = json_loads(stats, 0, NULL);
	ck_assert_msg(j != NULL, "stats are not JSON: %s", stats);
	json_decref(j);
	ck_assert_int_eq(mock->stats(inst, stats, 16), HERU_ENOSPC);
	heru_frame_release(o);
	heru_frame_release(u);
	heru_frame_release(pose);
	heru_frame_release(in);
	mock->destroy(inst);
}
END_TEST

START_TEST(test_motion_smoothing)
{
	struct heru_frame *a = camera(0, 0, 1), *b = camera(70, 40, 2), *fresh, *sm, *nosm, *first;
	struct heru_params p = params("painting");
	void *i0 = new_mock(), *i1 = new_mock(), *i2 = new_mock();

	/* motion_lock 0: each output depends on its own frame only */
	heru_frame_release(run(i0, a, &p, NULL, 0));
	nosm = run(i0, b, &p, NULL, 0);
	fresh = run(i1, b, &p, NULL, 0);
	ck_assert_msg(same(nosm, fresh), "output depends on earlier frames at motion_lock 0");
	/* motion_lock 1: the output keeps part of the previous one */
	p.motion_lock = 1.0f;
	first = run(i2, a, &p, NULL, 0);
	sm = run(i2, b, &p, NULL, 0);
	ck_assert_msg(diff(sm, first, 0, W) < 0.5 * diff(fresh, first, 0, W),
		"motion_lock 1 does not smooth over time (%.2f vs %.2f)", diff(sm, first, 0, W),
		diff(fresh, first, 0, W));
	heru_frame_release(first);
	heru_frame_release(sm);
	heru_frame_release(nosm);
	heru_frame_release(fresh);
	heru_frame_release(a);
	heru_frame_release(b);
	mock->destroy(i0);
	mock->destroy(i1);
	mock->destroy(i2);
}
END_TEST

START_TEST(test_output_size)
{
	struct heru_frame *in = camera(10, 10, 5), *o;
	struct heru_params p = params("pixel retro");
	void *inst = new_mock();

	p.output_width = 50;
	p.output_height = 30;
	o = run(inst, in, &p, NULL, 0);
	ck_assert_int_eq(o->width, 50);
	ck_assert_int_eq(o->height, 30);
	ck_assert(o->ts_ms == in->ts_ms);
	heru_frame_release(o);
	heru_frame_release(in);
	mock->destroy(inst);
}
END_TEST

START_TEST(test_bad_input)
{
	struct heru_frame *in = camera(0, 0, 1), *out = NULL;
	struct heru_params p = params("noir");
	struct heru_process_args a = {
		.struct_size = sizeof(a), .frame = in, .params = &p, .emit = capture,
		.emit_ctx = &out,
	};
	struct heru_map bad = { HERU_CAP_POSE, in }; /* RGB8 where a map is expected: ignored */
	void *inst = new_mock();
	char err[256];

	in->format = HERU_FORMAT_F32;
	ck_assert_int_eq(mock->process(inst, &a, err, sizeof(err)), HERU_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "not an RGB8 image"));
	in->format = HERU_FORMAT_RGB8;
	a.params = NULL;
	ck_assert_int_eq(mock->process(inst, &a, err, sizeof(err)), HERU_EINVAL);
	a.params = &p;
	a.maps = &bad;
	a.n_maps = 1;
	p.pose_lock = 1.0f;
	ck_assert_int_eq(mock->process(inst, &a, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(out);
	heru_frame_release(out);
	ck_assert_int_eq(mock->update_config(inst, "{}", err, sizeof(err)), 0);
	heru_frame_release(in);
	mock->destroy(inst);
}
END_TEST

START_TEST(test_motion_conditioner)
{
	struct heru_frame *a = camera(0, 0, 1), *b = camera(40, 0, 2), *m0, *m1, *m2;
	char err[256] = "";
	void *inst = motion->create(&host, "{}", err, sizeof(err));
	const float *row;

	ck_assert_msg(inst != NULL, "create: %s", err);
	ck_assert_int_eq(motion->process(inst, a, &m0, err, sizeof(err)), 0);
	ck_assert_int_eq(m0->format, HERU_FORMAT_F32);
	ck_assert_int_eq(m0->width, W / 4);
	ck_assert_int_eq(m0->height, H / 4);
	row = heru_frame_row(m0, 2);
	ck_assert_msg(row[2] == 0.0f, "first frame shows motion");
	ck_assert_int_eq(motion->process(inst, b, &m1, err, sizeof(err)), 0);
	ck_assert_uint_eq(m1->id, 2);
	/* the square left (0..20) and arrived (40..60): motion there, none far below */
	row = heru_frame_row(m1, 2);
	ck_assert_msg(row[2] > 0.5f && row[12] > 0.5f, "moved square not seen: %f %f", row[2], row[12]);
	ck_assert_msg(row[20] == 0.0f, "still region reported moving: %f", row[20]);
	row = heru_frame_row(m1, 12);
	ck_assert_msg(row[2] == 0.0f, "still region reported moving");
	/* nothing moves any more: the map decays rather than dropping at once */
	ck_assert_int_eq(motion->process(inst, b, &m2, err, sizeof(err)), 0);
	row = heru_frame_row(m2, 2);
	ck_assert_msg(row[2] > 0.2f && row[2] < ((const float *)heru_frame_row(m1, 2))[2],
		"map does not decay: %f", row[2]);
	/* bad input: a clear error and no map */
	heru_frame_release(m0);
	a->format = HERU_FORMAT_F32;
	ck_assert_int_eq(motion->process(inst, a, &m0 /* overwritten with NULL */, err,
		sizeof(err)), HERU_EINVAL);
	ck_assert_ptr_null(m0);
	a->format = HERU_FORMAT_RGB8;
	heru_frame_release(m1);
	heru_frame_release(m2);
	heru_frame_release(a);
	heru_frame_release(b);
	motion->destroy(inst);
}
END_TEST

static Suite *mock_suite(void)
{
	Suite *s = suite_create("mock");
	TCase *tc = tcase_create("mock");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_deterministic);
	tcase_add_test(tc, test_prompt_selects_style);
	tcase_add_test(tc, test_dominance);
	tcase_add_test(tc, test_neutral_is_unlocked);
	tcase_add_test(tc, test_lock_preserves_region);
	tcase_add_test(tc, test_motion_smoothing);
	tcase_add_test(tc, test_output_size);
	tcase_add_test(tc, test_bad_input);
	tcase_add_test(tc, test_motion_conditioner);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return check_run_suite(mock_suite());
}
