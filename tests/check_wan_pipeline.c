/* check_wan_pipeline.c: the StreamDiffusionV2 frame-to-frame pipeline on the C reference
 * engines, with a tiny model: DiT random weights written at test time (wan_dit_random_weights
 * _save), the tiny VAE/TAEHV/umT5/tokenizer fixtures of the engine tests, 32x32 pixels. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wan_config.h"
#include "wan_dit_weights.h"
#include "wan_pipeline.h"
#include "wan_rng.h"
#include "wan_sched.h"

#define FIX WAN_TOP_SRCDIR "/tests/fixtures/wan"
#define PW 32
#define PH 32
#define MAX_OUT 64

static char root[512]; /* the tiny weights folder, made once */
static char root_big[600]; /* the same model at 128x128 */

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static void make_root(void)
{
	char path[1024], err[512];
	struct wan_dit_config c;
	if (root[0])
		return;
	snprintf(root, sizeof(root), "%s/wanpipe.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(root));
	snprintf(path, sizeof(path), "%s/dit.json", root);
	write_file(path, "{\"dim\": 64, \"ffn_dim\": 96, \"num_heads\": 2, \"num_layers\": 2, "
			 "\"in_dim\": 16, \"out_dim\": 16, \"text_len\": 512, \"text_dim\": 64, "
			 "\"freq_dim\": 32, \"eps\": 1e-6}");
	ck_assert_int_eq(wan_dit_config_load(path, &c, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/ckpts", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/ckpts/wan_causal_dmd_v2v", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/ckpts/wan_causal_dmd_v2v/model.pt", root);
	ck_assert_msg(wan_dit_random_weights_save(&c, "tiny", path, 7, WT_F32, "model.", 1, err,
						  sizeof(err)) == 0, "%s", err);
	snprintf(path, sizeof(path), "%s/heru-model.json", root);
	write_file(path, "{\"_comment\": \"tiny test model\", \"dit_config\": \"dit.json\", "
			 "\"vae_weights\": \"" FIX "/vae/tiny_vae.safetensors\", "
			 "\"vae_config\": \"" FIX "/vae/tiny_config.json\", "
			 "\"taehv_weights\": \"" FIX "/vae/tiny_taehv.safetensors\", "
			 "\"t5_weights\": \"" FIX "/t5/t5_tiny.safetensors\", "
			 "\"t5_config\": \"" FIX "/t5/t5_tiny_config.json\", "
			 "\"tokenizer\": \"" FIX "/t5/bytefb.model\", "
			 "\"width\": 32, \"height\": 32}");
	/* the same files at 128x128 (16x16 latents), for what needs room to be local */
	snprintf(root_big, sizeof(root_big), "%s/big", root);
	mkdir(root_big, 0755);
	char cmd[4096];
	snprintf(cmd, sizeof(cmd), "sed 's#\"dit.json\"#\"%s/dit.json\", \"dit_weights\": "
		 "\"%s/ckpts/wan_causal_dmd_v2v/model.pt\"#; s#\"width\": 32, \"height\": 32#"
		 "\"width\": 128, \"height\": 128#' '%s/heru-model.json' > '%s/heru-model.json'",
		 root, root, root, root_big);
	ck_assert_int_eq(system(cmd), 0);
}

static struct wan_pipeline *open_at(const char *dir, int steps, bool taehv)
{
	char err[1024];
	struct wan_pipeline_options o = { .root = dir, .model = "wan-1.3b",
		.device = WAN_DEVICE_CPU, .taehv = taehv, .steps = steps, .threads = 1 };
	struct wan_pipeline *p = wan_pipeline_open(&o, err, sizeof(err));
	ck_assert_msg(p != NULL, "%s", err);
	return p;
}

static struct wan_pipeline *open_tiny(int steps, bool taehv)
{
	make_root();
	return open_at(root, steps, taehv);
}

/* A moving test pattern, W x H, frame I. */
static void pattern(uint8_t *rgb, int w, int h, int i)
{
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			uint8_t *px = rgb + 3 * ((size_t)y * w + x);
			px[0] = (uint8_t)(x * 255 / w + 3 * i);
			px[1] = (uint8_t)(y * 255 / h);
			px[2] = (uint8_t)(((x / 4 + y / 4 + i) & 1) * 200);
		}
}

struct sink {
	int n;
	uint64_t ids[MAX_OUT];
	uint8_t *frames[MAX_OUT];
	int w, h;
};

static int collect(void *ctx, const uint8_t *rgb, int w, int h, const struct wan_frame_tag *t)
{
	struct sink *s = ctx;
	ck_assert_int_lt(s->n, MAX_OUT);
	s->w = w;
	s->h = h;
	s->ids[s->n] = t->id;
	s->frames[s->n] = malloc((size_t)w * h * 3);
	memcpy(s->frames[s->n], rgb, (size_t)w * h * 3);
	s->n++;
	return 0;
}

static void sink_free(struct sink *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->frames[i]);
	memset(s, 0, sizeof(*s));
}

static struct wan_pipeline_params params(const char *prompt, uint64_t seed)
{
	struct wan_pipeline_params p = { .prompt = prompt, .prompt_dominance = 0.8f, .seed = seed };
	return p;
}

/* Pushes frames FIRST..FIRST+N-1 (ids = index); returns how many came out during it. */
static int feed(struct wan_pipeline *p, struct sink *s, int first, int n,
		const struct wan_pipeline_params *prm)
{
	uint8_t rgb[48 * 40 * 3];
	char err[512];
	int before = s->n;
	for (int i = first; i < first + n; i++) {
		struct wan_frame_tag t = { (uint64_t)i, i * 10.0 };
		pattern(rgb, 48, 40, i); /* not the model size: resized */
		ck_assert_msg(wan_pipeline_push(p, rgb, 48, 40, 48 * 3, &t, prm, collect, s, err,
						sizeof(err)) == 0, "%s", err);
	}
	return s->n - before;
}

/* The pipeline's noise source: values generated ahead (wan_rng_prefetch, dit_stream's idle
 * hook on a device) are the values generating them when asked would give, in the same order,
 * whatever the draw sizes; a new seed forgets them. */
START_TEST(test_rng_ahead)
{
	enum { N = 1001 }; /* odd: the Box-Muller spare crosses draws */
	struct wan_rng a = { 0 }, b = { 0 };
	float *va = malloc(4 * N * sizeof(float)), *vb = malloc(4 * N * sizeof(float));
	ck_assert_ptr_nonnull(va);
	ck_assert_ptr_nonnull(vb);
	wan_rng_seed(&a, 42);
	wan_rng_seed(&b, 42);
	for (int i = 0; i < 4; i++)
		wan_rng_fill(&a, va + i * N, N);
	wan_rng_fill(&b, vb, N);
	ck_assert_int_eq(wan_rng_prefetch(&b, N), 0);
	ck_assert_int_eq(wan_rng_prefetch(&b, N), 0); /* already ahead: nothing more */
	wan_rng_fill(&b, vb + N, N);
	ck_assert_int_eq(wan_rng_prefetch(&b, N), 0);
	wan_rng_fill(&b, vb + 2 * N, 10);         /* a shorter draw: the rest stays ahead */
	wan_rng_fill(&b, vb + 2 * N + 10, N + 20); /* a longer one: the rest, then new values */
	wan_rng_fill(&b, vb + 3 * N + 30, N - 30);
	ck_assert_int_eq(memcmp(va, vb, 4 * N * sizeof(float)), 0);
	double sum = 0;
	for (int i = 0; i < 4 * N; i++)
		sum += (double)va[i] * va[i];
	ck_assert(sum / (4 * N) > 0.8 && sum / (4 * N) < 1.2); /* standard normals */
	ck_assert_int_eq(wan_rng_prefetch(&b, N), 0);
	wan_rng_seed(&b, 42);
	wan_rng_fill(&b, vb, N);
	ck_assert_int_eq(memcmp(va, vb, N * sizeof(float)), 0);
	wan_rng_release(&a);
	wan_rng_release(&b);
	free(va);
	free(vb);
}
END_TEST

START_TEST(test_counts_order_vae)
{
	struct wan_pipeline *p = open_tiny(2, false);
	struct sink s = { 0 };
	struct wan_pipeline_params prm = params("a red fox", 1);
	ck_assert_int_eq(wan_pipeline_phase(p), WAN_PHASE_IDLE);
	ck_assert_int_eq(feed(p, &s, 1, 4, &prm), 0);
	ck_assert_int_eq(feed(p, &s, 5, 1, &prm), 5); /* first chunk: 5 frames */
	ck_assert_int_eq(wan_pipeline_phase(p), WAN_PHASE_WARMUP);
	ck_assert_int_eq(feed(p, &s, 6, 4, &prm), 0); /* S-1 = 1 warm-up call */
	ck_assert_int_eq(wan_pipeline_phase(p), WAN_PHASE_WARMUP);
	ck_assert_int_eq(feed(p, &s, 10, 3, &prm), 0);
	ck_assert_int_eq(feed(p, &s, 13, 1, &prm), 4);
	ck_assert_int_eq(wan_pipeline_phase(p), WAN_PHASE_ACTIVE);
	ck_assert_int_eq(feed(p, &s, 14, 4, &prm), 4);
	ck_assert_int_eq(s.w, PW);
	ck_assert_int_eq(s.h, PH);
	/* outputs answer inputs in order: 1..5, then chunk 1 (6..9), chunk 2 (10..13) */
	for (int i = 0; i < s.n; i++)
		ck_assert_uint_eq(s.ids[i], (uint64_t)(i + 1));
	struct wan_pipeline_stats st;
	wan_pipeline_get_stats(p, &st);
	ck_assert_uint_eq(st.frames_in, 17);
	ck_assert_uint_eq(st.frames_out, 13);
	ck_assert_uint_eq(st.chunks, 4);
	ck_assert(st.runs[WAN_STAGE_DIT] == 4 && st.runs[WAN_STAGE_TEXT] == 1);
	ck_assert(st.noise_scale > 0.69 && st.noise_scale <= 0.8);
	sink_free(&s);
	wan_pipeline_free(p);
}
END_TEST

START_TEST(test_counts_taehv_s1)
{
	struct wan_pipeline *p = open_tiny(1, true);
	struct sink s = { 0 };
	struct wan_pipeline_params prm = params("a red fox", 1);
	ck_assert_int_eq(feed(p, &s, 1, 5, &prm), 4); /* TAEHV: 4 for the first chunk */
	ck_assert_int_eq(feed(p, &s, 6, 4, &prm), 4); /* S = 1: no warm-up */
	ck_assert_int_eq(wan_pipeline_phase(p), WAN_PHASE_ACTIVE);
	for (int i = 0; i < s.n; i++) /* frame 1 has no output: TAEHV drops it */
		ck_assert_uint_eq(s.ids[i], (uint64_t)(i + 2));
	sink_free(&s);
	wan_pipeline_free(p);
}
END_TEST

/* S = 5 (the documented extension of the step list): 4 warm-up calls */
START_TEST(test_counts_s5)
{
	struct wan_pipeline *p = open_tiny(5, false);
	struct sink s = { 0 };
	struct wan_pipeline_params prm = params("a red fox", 1);
	ck_assert_int_eq(feed(p, &s, 1, 5, &prm), 5);
	ck_assert_int_eq(feed(p, &s, 6, 16, &prm), 0);
	ck_assert_int_eq(wan_pipeline_phase(p), WAN_PHASE_WARMUP);
	ck_assert_int_eq(feed(p, &s, 22, 4, &prm), 4);
	ck_assert_int_eq(wan_pipeline_phase(p), WAN_PHASE_ACTIVE);
	for (int i = 0; i < s.n; i++)
		ck_assert_uint_eq(s.ids[i], (uint64_t)(i + 1));
	sink_free(&s);
	wan_pipeline_free(p);
}
END_TEST

static bool same_frames(const struct sink *a, const struct sink *b)
{
	if (a->n != b->n)
		return false;
	for (int i = 0; i < a->n; i++)
		if (memcmp(a->frames[i], b->frames[i], (size_t)PW * PH * 3))
			return false;
	return true;
}

START_TEST(test_determinism)
{
	struct wan_pipeline *p = open_tiny(2, false), *q = open_tiny(2, false);
	struct sink a = { 0 }, b = { 0 }, c = { 0 };
	struct wan_pipeline_params prm = params("a red fox", 42), prm2 = params("a red fox", 43);
	feed(p, &a, 1, 13, &prm);
	feed(q, &b, 1, 13, &prm);
	ck_assert_int_eq(a.n, 9);
	ck_assert(same_frames(&a, &b));
	wan_pipeline_free(q);
	q = open_tiny(2, false);
	feed(q, &c, 1, 13, &prm2);
	ck_assert_int_eq(c.n, 9);
	ck_assert(!same_frames(&a, &c)); /* another seed, other noise */
	sink_free(&a);
	sink_free(&b);
	sink_free(&c);
	wan_pipeline_free(p);
	wan_pipeline_free(q);
}
END_TEST

START_TEST(test_prompt_change_restarts)
{
	struct wan_pipeline *p = open_tiny(2, false), *q = open_tiny(2, false);
	struct sink a = { 0 }, b = { 0 };
	struct wan_pipeline_params fox = params("a red fox", 5), owl = params("an owl at night", 5);
	ck_assert_int_eq(feed(p, &a, 1, 13, &fox), 9);
	ck_assert_int_eq(wan_pipeline_phase(p), WAN_PHASE_ACTIVE);
	/* the new prompt: a new first chunk of 5 frames, nothing in between */
	ck_assert_int_eq(feed(p, &a, 14, 4, &owl), 0);
	ck_assert_int_eq(wan_pipeline_phase(p), WAN_PHASE_IDLE);
	ck_assert_int_eq(feed(p, &a, 18, 1, &owl), 5);
	ck_assert_int_eq(wan_pipeline_phase(p), WAN_PHASE_WARMUP);
	for (int i = 0; i < 5; i++)
		ck_assert_uint_eq(a.ids[9 + i], (uint64_t)(14 + i));
	struct wan_pipeline_stats st;
	wan_pipeline_get_stats(p, &st);
	ck_assert_uint_eq(st.restarts, 1);
	ck_assert_uint_eq(st.runs[WAN_STAGE_TEXT], 2);
	/* exactly a fresh stream: the same as a new pipeline given only those frames */
	ck_assert_int_eq(feed(q, &b, 14, 5, &owl), 5);
	for (int i = 0; i < 5; i++)
		ck_assert(memcmp(a.frames[9 + i], b.frames[i], (size_t)PW * PH * 3) == 0);
	/* and the prompt matters */
	ck_assert(memcmp(a.frames[0], b.frames[0], (size_t)PW * PH * 3) != 0);
	sink_free(&a);
	sink_free(&b);
	wan_pipeline_free(p);
	wan_pipeline_free(q);
}
END_TEST

START_TEST(test_locks_zero_are_unlocked)
{
	struct wan_pipeline *p = open_tiny(1, false), *q = open_tiny(1, false);
	struct sink a = { 0 }, b = { 0 };
	float zeros[4 * 4] = { 0 };
	struct wan_pipeline_params plain = params("a red fox", 9), locked = plain;
	locked.preserve = zeros;
	locked.preserve_w = 4;
	locked.preserve_h = 4;
	locked.motion_lock = 0.0f;
	feed(p, &a, 1, 13, &plain);
	feed(q, &b, 1, 13, &locked);
	ck_assert_int_eq(a.n, 13);
	ck_assert(same_frames(&a, &b));
	sink_free(&a);
	sink_free(&b);
	wan_pipeline_free(p);
	wan_pipeline_free(q);
}
END_TEST

START_TEST(test_controller)
{
	/* motion_lock 0 is upstream's controller, bit for bit */
	struct wan_noise_ctl c;
	float video[3 * 5 * 4];
	for (int i = 0; i < 3 * 5 * 4; i++) /* [3][5][4]: frame f is 0.5 f - 1 everywhere */
		video[i] = 0.5f * (float)((i / 4) % 5) - 1.0f;
	wan_noise_ctl_init(&c, 0.8);
	c.scale = 0.75;
	int64_t step;
	double want = wan_noise_ctl_update(&c, video, 3, 4, 4, &step);
	double dhat = 1.0; /* 0.5 RMS between frames: dhat = min(0.5 / 0.2, 1) */
	ck_assert(wan_pipeline_ctl_step(0.8, 0.75, dhat, 0.0f) == want);
	ck_assert(wan_pipeline_ctl_step(0.8, 0.8, 0.0, 0.0f) == 0.8 * 0.9 + 0.8 * 0.1);
	/* motion_lock widens the motion term and slows s down */
	ck_assert(wan_pipeline_ctl_step(0.8, 0.8, 1.0, 1.0f) < wan_pipeline_ctl_step(0.8, 0.8, 1.0, 0.0f));
	ck_assert(fabs(wan_pipeline_ctl_step(0.8, 0.5, 0.0, 1.0f) - 0.5) <
		  fabs(wan_pipeline_ctl_step(0.8, 0.5, 0.0, 0.0f) - 0.5));
	ck_assert(fabs(wan_pipeline_init_scale(0.8f) - 0.8) < 1e-6);
	ck_assert(fabs(wan_pipeline_init_scale(0.0f) - 0.4) < 1e-6);
}
END_TEST

/* The controller inside the pipeline sees each later chunk's motion: the largest RMS step
 * between its frames, the first one measured against the previous chunk's last frame. Uniform
 * frames at the model size (no resize) make the steps known: byte value v is 2·v/255 - 1. */
static void push_gray(struct wan_pipeline *p, struct sink *s, int v, uint64_t id,
		      const struct wan_pipeline_params *prm)
{
	uint8_t rgb[PW * PH * 3];
	struct wan_frame_tag t = { id, (double)id * 10.0 };
	char err[256];
	memset(rgb, v, sizeof(rgb));
	ck_assert_msg(wan_pipeline_push(p, rgb, PW, PH, PW * 3, &t, prm, collect, s, err, sizeof(err)) == 0,
		      "%s", err);
}

START_TEST(test_motion_in_pipeline)
{
	struct wan_pipeline *p = open_tiny(1, false);
	struct sink s = { 0 };
	struct wan_pipeline_params prm = params("a red fox", 3);
	struct wan_pipeline_stats st;
	/* chunk 0 ends on 100; chunk 1: 106 107 108 109 (largest step 6, from chunk 0's last
	 * frame); chunk 2: 109 109 112 112 (largest 3, inside it); chunk 3: still (0) */
	static const int chunks[3][4] = { { 106, 107, 108, 109 }, { 109, 109, 112, 112 }, { 112, 112, 112, 112 } };
	static const int steps[3] = { 6, 3, 0 };
	uint64_t id = 1;
	double init = wan_pipeline_init_scale(prm.prompt_dominance), prev = init;

	for (int i = 0; i < 5; i++)
		push_gray(p, &s, 100, id++, &prm);
	for (int c = 0; c < 3; c++) {
		for (int i = 0; i < 4; i++)
			push_gray(p, &s, chunks[c][i], id++, &prm);
		double dhat = steps[c] / 127.5 / 0.2, want = wan_pipeline_ctl_step(init, prev, dhat, 0.0f);
		wan_pipeline_get_stats(p, &st);
		ck_assert_msg(fabs(st.noise_scale - want) < 1e-6, "chunk %d: s %.12f, want %.12f (dhat %.6f)", c + 1,
			      st.noise_scale, want, dhat);
		prev = st.noise_scale;
	}
	ck_assert(st.chunks == 4);
	sink_free(&s);
	wan_pipeline_free(p);
}
END_TEST

/* Mean absolute difference of two frame sets (SIZE x SIZE) over columns [x0, x1). */
static double diff_cols(const struct sink *a, const struct sink *b, int size, int x0, int x1)
{
	double acc = 0;
	size_t n = 0;
	for (int i = 0; i < a->n; i++)
		for (int y = 0; y < size; y++)
			for (int x = x0; x < x1; x++)
				for (int c = 0; c < 3; c++) {
					size_t k = 3 * ((size_t)y * size + x) + c;
					acc += abs((int)a->frames[i][k] - (int)b->frames[i][k]);
					n++;
				}
	return acc / (double)n;
}

START_TEST(test_preserve_map_is_local)
{
	make_root();
	struct wan_pipeline *p = open_at(root_big, 1, false), *q = open_at(root_big, 1, false);
	struct sink a = { 0 }, b = { 0 };
	float map[16 * 16];
	for (int y = 0; y < 16; y++)
		for (int x = 0; x < 16; x++)
			map[y * 16 + x] = x < 4 ? 1.0f : 0.0f; /* the left quarter */
	struct wan_pipeline_params plain = params("a red fox", 3), locked = plain;
	locked.preserve = map;
	locked.preserve_w = 16;
	locked.preserve_h = 16;
	feed(p, &a, 1, 5, &plain);
	feed(q, &b, 1, 5, &locked);
	ck_assert_int_eq(a.n, 5);
	ck_assert_int_eq(a.w, 128);
	double left = diff_cols(&a, &b, 128, 0, 32), right = diff_cols(&a, &b, 128, 64, 128);
	ck_assert_msg(left > 1.0, "the preserve map changed nothing (%g)", left);
	ck_assert_msg(left > 4.0 * right, "changes not local: left %g, right %g", left, right);
	printf("preserve map: mean |diff| %.2f where locked, %.2f in the right half\n", left, right);
	sink_free(&a);
	sink_free(&b);
	wan_pipeline_free(p);
	wan_pipeline_free(q);
}
END_TEST

static void expect_open_error(const char *dir, bool taehv, const char *want1, const char *want2)
{
	char err[2048];
	struct wan_pipeline_options o = { .root = dir, .model = "wan-1.3b",
		.device = WAN_DEVICE_CPU, .taehv = taehv, .steps = 2, .threads = 1 };
	ck_assert_ptr_null(wan_pipeline_open(&o, err, sizeof(err)));
	ck_assert_msg(strstr(err, want1) != NULL, "'%s' lacks '%s'", err, want1);
	if (want2)
		ck_assert_msg(strstr(err, want2) != NULL, "'%s' lacks '%s'", err, want2);
}

START_TEST(test_missing_files)
{
	char dir[512], path[1024], cmd[4096];
	make_root();
	snprintf(dir, sizeof(dir), "%s/wanpipe-miss.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	expect_open_error(dir, false, "ckpts/wan_causal_dmd_v2v/model.pt", "README");
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/ckpts/wan_causal_dmd_v2v' && cp '%s/ckpts/"
		 "wan_causal_dmd_v2v/model.pt' '%s/ckpts/wan_causal_dmd_v2v/'", dir, root, dir);
	ck_assert_int_eq(system(cmd), 0);
	expect_open_error(dir, false, "wan_models/Wan2.1-T2V-1.3B/Wan2.1_VAE.pth",
			  "huggingface-cli download Wan-AI/Wan2.1-T2V-1.3B");
	/* the tiny model without its TAEHV file */
	snprintf(path, sizeof(path), "%s/heru-model.json", dir);
	snprintf(cmd, sizeof(cmd), "sed 's#tiny_taehv.safetensors#nothing.safetensors#; "
		 "s#\"dit.json\"#\"%s/dit.json\"#' '%s/heru-model.json' > '%s'", root, root, path);
	ck_assert_int_eq(system(cmd), 0);
	expect_open_error(dir, true, "nothing.safetensors", "taew2_1.pth");
	/* an unknown key is refused with the list of known ones */
	write_file(path, "{\"dit_wieghts\": \"x\"}");
	expect_open_error(dir, false, "unknown key 'dit_wieghts'", "dit_weights");
	/* a missing folder */
	snprintf(path, sizeof(path), "%s/does-not-exist", dir);
	expect_open_error(path, false, "weights not found at", "does-not-exist");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(test_bad_input)
{
	struct wan_pipeline *p = open_tiny(1, false);
	struct sink s = { 0 };
	struct wan_pipeline_params prm = params("a red fox", 1);
	uint8_t rgb[16 * 16 * 3] = { 0 };
	char err[256];
	ck_assert_int_eq(wan_pipeline_push(p, rgb, 16, 16, 16, NULL, &prm, collect, &s, err,
					   sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "stride"));
	ck_assert_int_eq(wan_pipeline_push(p, rgb, 0, 16, 48, NULL, &prm, collect, &s, err,
					   sizeof(err)), -1);
	struct wan_pipeline_stats st;
	wan_pipeline_get_stats(p, &st);
	ck_assert_uint_eq(st.frames_in, 0);
	/* the stream still works */
	ck_assert_int_eq(feed(p, &s, 1, 5, &prm), 5);
	sink_free(&s);
	wan_pipeline_free(p);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("wan_pipeline");
	TCase *tc = tcase_create("cpu");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_counts_order_vae);
	tcase_add_test(tc, test_counts_taehv_s1);
	tcase_add_test(tc, test_counts_s5);
	tcase_add_test(tc, test_determinism);
	tcase_add_test(tc, test_prompt_change_restarts);
	tcase_add_test(tc, test_locks_zero_are_unlocked);
	tcase_add_test(tc, test_controller);
	tcase_add_test(tc, test_motion_in_pipeline);
	tcase_add_test(tc, test_preserve_map_is_local);
	tcase_add_test(tc, test_missing_files);
	tcase_add_test(tc, test_bad_input);
	tcase_add_test(tc, test_rng_ahead);
	suite_add_tcase(su, tc);
	SRunner *sr = srunner_create(su);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (root[0]) {
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", root);
	}
	return failed ? 1 : 0;
}
