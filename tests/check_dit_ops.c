/* check_dit_ops.c: the fp32 reference ops against naive formulas, and the KV ring-buffer
 * bookkeeping against the traces of spec §4.7 (ring order, sinks, adaptive refresh, no-batch
 * step counter, refusals). */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check_util.h"
#include "dit_kv.h"
#include "ops_ref.h"

static float frand(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void fill(float *x, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		x[i] = frand(&seed);
}

START_TEST(test_rope_split)
{
	int p[3];
	ops_rope_split(128, p);
	ck_assert(p[0] == 22 && p[1] == 21 && p[2] == 21);
	ops_rope_split(64, p);
	ck_assert(p[0] == 12 && p[1] == 10 && p[2] == 10);
}
END_TEST

START_TEST(test_rope_rotation)
{
	/* head_dim 128, 2 heads, grid 1x2x3 at start frame 7: pair 0 turns by the frame
	 * position, pair 22 by y, pair 43 by x; norms are preserved */
	enum { HD = 128, NH = 2, NT = 6 };
	float x[NT * NH * HD], y[NT * NH * HD];
	fill(x, NT * NH * HD, 3);
	memcpy(y, x, sizeof(x));
	ops_rope(y, 1, 2, 3, NH, HD, 7);
	for (int tok = 0; tok < NT; tok++) {
		int yy = tok / 3, xx = tok % 3;
		for (int h = 0; h < NH; h++) {
			const float *a = x + (tok * NH + h) * HD, *b = y + (tok * NH + h) * HD;
			struct { int k; double ang; } chk[] = {
				{ 0, 7.0 }, { 1, 7.0 * pow(10000.0, -2.0 / 44) },
				{ 22, (double)yy }, { 23, yy * pow(10000.0, -2.0 / 42) },
				{ 43, (double)xx }, { 63, xx * pow(10000.0, -40.0 / 42) },
			};
			for (size_t i = 0; i < sizeof(chk) / sizeof(chk[0]); i++) {
				int k = chk[i].k;
				double re = a[2 * k] * cos(chk[i].ang) - a[2 * k + 1] * sin(chk[i].ang);
				double im = a[2 * k] * sin(chk[i].ang) + a[2 * k + 1] * cos(chk[i].ang);
				ck_assert_double_eq_tol(b[2 * k], re, 1e-6);
				ck_assert_double_eq_tol(b[2 * k + 1], im, 1e-6);
			}
		}
	}
}
END_TEST

START_TEST(test_linear_attention)
{
	enum { N = 13, IN = 37, OUT = 70, M = 75, H = 3, HD = 20 };
	static float x[N * IN], w[OUT * IN], b[OUT], y[N * OUT];
	fill(x, N * IN, 1);
	fill(w, OUT * IN, 2);
	fill(b, OUT, 3);
	ops_linear(y, x, w, b, N, IN, OUT);
	for (int i = 0; i < N; i++)
		for (int o = 0; o < OUT; o++) {
			double s = b[o];
			for (int k = 0; k < IN; k++)
				s += (double)x[i * IN + k] * w[o * IN + k];
			ck_assert_double_eq_tol(y[i * OUT + o], s, 1e-5);
		}
	static float q[N * H * HD], k[M * H * HD], v[M * H * HD], o[N * H * HD];
	fill(q, sizeof(q) / 4, 4);
	fill(k, sizeof(k) / 4, 5);
	fill(v, sizeof(v) / 4, 6);
	for (size_t i = 0; i < sizeof(q) / 4; i++)
		q[i] *= 3.0f; /* sharper softmax */
	ops_attention(o, q, k, v, N, M, H, HD, 0.5f);
	for (int i = 0; i < N; i++)
		for (int h = 0; h < H; h++) {
			double s[M], mx = -1e30, sum = 0;
			for (int j = 0; j < M; j++) {
				double d = 0;
				for (int e = 0; e < HD; e++)
					d += (double)q[(i * H + h) * HD + e] * k[(j * H + h) * HD + e];
				s[j] = 0.5 * d;
				mx = s[j] > mx ? s[j] : mx;
			}
			for (int j = 0; j < M; j++)
				sum += s[j] = exp(s[j] - mx);
			for (int e = 0; e < HD; e++) {
				double acc = 0;
				for (int j = 0; j < M; j++)
					acc += s[j] / sum * v[(j * H + h) * HD + e];
				ck_assert_double_eq_tol(o[(i * H + h) * HD + e], acc, 1e-5);
			}
		}
}
END_TEST

START_TEST(test_norms_and_misc)
{
	float x[2 * 8], y[2 * 8], g[8], sh[2 * 3 * 8];
	fill(x, 16, 7);
	fill(g, 8, 8);
	fill(sh, sizeof(sh) / 4, 9);
	ops_layer_norm(y, x, NULL, NULL, 2, 8, 1e-6f);
	double m = 0, v = 0;
	for (int j = 0; j < 8; j++)
		m += y[j];
	for (int j = 0; j < 8; j++)
		v += y[j] * y[j];
	ck_assert_double_eq_tol(m, 0.0, 1e-5);
	ck_assert_double_eq_tol(v / 8, 1.0, 1e-4);
	/* modulate = LN * (1 + scale) + shift, with per-frame vectors at a stride */
	float z[16];
	ops_modulate(z, x, sh, sh + 8, 24, 2, 1, 8, 1e-6f);
	float ln[16];
	ops_layer_norm(ln, x, NULL, NULL, 2, 8, 1e-6f);
	for (int f = 0; f < 2; f++)
		for (int j = 0; j < 8; j++)
			ck_assert_float_eq_tol(z[f * 8 + j],
					       ln[f * 8 + j] * (1 + sh[f * 24 + 8 + j]) + sh[f * 24 + j],
					       1e-6f);
	/* RMSNorm over the full row */
	ops_rms_norm(y, x, g, 1, 8, 1e-6f);
	double ss = 0;
	for (int j = 0; j < 8; j++)
		ss += (double)x[j] * x[j];
	for (int j = 0; j < 8; j++)
		ck_assert_double_eq_tol(y[j], x[j] / sqrt(ss / 8 + 1e-6) * g[j], 1e-6);
	/* sinusoidal embedding: cos first */
	int64_t t = 700;
	float e[256];
	ops_sin_embedding(e, &t, 1, 256);
	ck_assert_double_eq_tol(e[0], cos(700.0), 1e-6);
	ck_assert_double_eq_tol(e[128], sin(700.0), 1e-6);
	ck_assert_double_eq_tol(e[5], cos(700.0 * pow(10000.0, -5.0 / 128)), 1e-6);
	/* GELU(tanh) and SiLU at known points */
	float a[3] = { 1.0f, -2.0f, 0.0f };
	ops_gelu_tanh(a, 3);
	ck_assert_double_eq_tol(a[0], 0.8411920, 1e-6);
	ck_assert_double_eq_tol(a[1], -0.0454023, 1e-6);
	float s1[1] = { 1.0f };
	ops_silu(s1, 1);
	ck_assert_double_eq_tol(s1[0], 0.7310586, 1e-6);
	/* cosine: zero vector gives 0 */
	float zero[4] = { 0 }, one[4] = { 1, 0, 0, 0 };
	ck_assert_double_eq(ops_cosine(zero, one, 4), 0.0);
	ck_assert_double_eq_tol(ops_cosine(one, one, 4), 1.0, 1e-12);
}
END_TEST

START_TEST(test_patch_roundtrip)
{
	/* patch embed with an identity-like weight picks (c, dy, dx), c slowest; unpatchify
	 * places (dy, dx, c), c fastest */
	enum { C = 3, F = 2, Hh = 4, Ww = 6, K = C * 4 };
	float z[C * F * Hh * Ww], tok[F * 2 * 3 * K], w[K * K], b[K] = { 0 }, back[C * F * Hh * Ww];
	fill(z, sizeof(z) / 4, 11);
	memset(w, 0, sizeof(w));
	for (int i = 0; i < K; i++)
		w[i * K + i] = 1.0f;
	ops_patch_embed(tok, z, w, b, C, F, Hh, Ww, K);
	/* token (f=1, y=1, x=2), entry c*4 + dy*2 + dx */
	int t = (1 * 2 + 1) * 3 + 2;
	ck_assert_float_eq(tok[t * K + 2 * 4 + 1 * 2 + 0], z[(2 * F + 1) * Hh * Ww + 3 * Ww + 4]);
	/* reorder to (dy, dx, c) and unpatchify: back == z */
	float o[F * 2 * 3 * K];
	for (int i = 0; i < F * 6; i++)
		for (int c = 0; c < C; c++)
			for (int q = 0; q < 4; q++)
				o[i * K + q * C + c] = tok[i * K + c * 4 + q];
	ops_unpatchify(back, o, C, F, Hh, Ww);
	ck_assert_int_eq(memcmp(back, z, sizeof(z)), 0);
}
END_TEST

/* ---- KV bookkeeping ---- */

static struct dit_kv *kv_make(int sink, double thr, int steps, int slots)
{
	char err[256];
	struct dit_kv_config c = { .tokens_per_frame = 1, .kv_frames = 6, .sink_frames = sink,
				   .sink_threshold = thr, .total_steps = steps, .layers = 2,
				   .max_slots = slots };
	struct dit_kv *kv = dit_kv_new(&c, err, sizeof(err));
	ck_assert_msg(kv != NULL, "%s", err);
	return kv;
}

static struct dit_kv_step adv(struct dit_kv *kv, int slot, int frame, int n, int pick)
{
	char err[256];
	struct dit_kv_step st;
	ck_assert_msg(dit_kv_advance(kv, 0, slot, frame, n, pick, &st, err, sizeof(err)) == 0, "%s",
		      err);
	return st;
}

START_TEST(test_kv_ring_trace)
{
	/* spec §4.7 measured trace: S=2, thr=-1, L=1 (rows are frames) */
	struct dit_kv *kv = kv_make(3, -1, 2, 2);
	char err[128];
	struct dit_kv_step st = adv(kv, 0, 0, 2, -1); /* first chunk, step 1 */
	ck_assert(st.write_row == 0 && st.attn_len == 2);
	st = adv(kv, 0, 0, 2, -1); /* step 2 rewrites the same rows */
	ck_assert(st.write_row == 0 && st.attn_len == 2);
	ck_assert_int_eq(dit_kv_expand(kv, 2, err, sizeof(err)), 0);
	int64_t l[16];
	ck_assert_int_eq(dit_kv_evict_list(kv, 0, 1, l, 16), 1);
	ck_assert_int_eq(l[0], 4);
	static const int rows[] = { 2, 3, 4, 5, 3, 4, 5, 3, 4, 5 };
	for (int f = 2; f < 12; f++) {
		st = adv(kv, 0, f, 1, -1);
		ck_assert_int_eq(st.write_row, rows[f - 2]);
		ck_assert_int_eq(st.attn_len, f < 5 ? f + 1 : 6);
		if (f == 4) {
			ck_assert_int_eq(dit_kv_evict_list(kv, 0, 0, l, 16), 3);
			ck_assert(l[0] == 4 && l[1] == 5 && l[2] == 6);
		}
	}
	/* RoPE refresh: position 5 again with a full cache keeps rotating */
	st = adv(kv, 0, 5, 1, -1);
	ck_assert_int_eq(st.write_row, 3);
	ck_assert_int_eq(st.attn_len, 6);
	/* slot 1 is independent */
	st = adv(kv, 1, 2, 1, -1);
	ck_assert_int_eq(st.write_row, 2);
	dit_kv_free(kv);
}
END_TEST

START_TEST(test_kv_adaptive_sink)
{
	/* the first streamed chunk finds sink frame 2 empty: refresh of frame 2 is queued; the
	 * first full write replaces it once and the ring then rotates over [3, 6) */
	struct dit_kv *kv = kv_make(3, 0.2, 1, 1);
	double a[3] = { 0.9, 0.8, 0.0 };
	ck_assert(dit_kv_sink_check_needed(kv, 1));
	ck_assert(!dit_kv_sink_check_needed(kv, 2));
	ck_assert_int_eq(dit_kv_sink_pick(kv, a), 2);
	double same[3] = { 0.5, 0.1, 0.1 };
	ck_assert_int_eq(dit_kv_sink_pick(kv, same), 1); /* first minimum */
	double high[3] = { 0.5, 0.3, 0.25 };
	ck_assert_int_eq(dit_kv_sink_pick(kv, high), -1);
	adv(kv, 0, 0, 2, -1);
	adv(kv, 0, 2, 1, 2);
	int64_t l[16];
	ck_assert_int_eq(dit_kv_evict_list(kv, 0, 0, l, 16), 2);
	ck_assert(l[0] == 3 && l[1] == 4);
	adv(kv, 0, 3, 1, -1);
	adv(kv, 0, 4, 1, -1);
	adv(kv, 0, 5, 1, -1);
	static const int rows[] = { 2, 3, 4, 5, 3, 4 };
	for (int f = 6; f < 12; f++)
		ck_assert_int_eq(adv(kv, 0, f, 1, -1).write_row, rows[f - 6]);
	/* a later refresh of sink frame 0 goes to rows [0, 1) and is not re-queued */
	ck_assert_int_eq(adv(kv, 0, 12, 1, 0).write_row, 0);
	ck_assert_int_eq(adv(kv, 0, 13, 1, -1).write_row, 5);
	/* a new stream starts clean */
	dit_kv_reset(kv);
	ck_assert_int_eq(dit_kv_evict_list(kv, 0, 0, l, 16), 0);
	ck_assert_int_eq(dit_kv_local_end(kv, 0, 0), 0);
	dit_kv_free(kv);
}
END_TEST

START_TEST(test_kv_nobatch_steps)
{
	/* no-batch, S=2: both steps of a chunk write the same ring slot; the list rotates once
	 * per chunk */
	struct dit_kv *kv = kv_make(3, -1, 2, 1);
	for (int s = 0; s < 2; s++)
		adv(kv, 0, 0, 2, -1);
	for (int f = 2; f < 5; f++)
		for (int s = 0; s < 2; s++)
			ck_assert_int_eq(adv(kv, 0, f, 1, -1).write_row, f);
	/* frame 5: step 1 fills the last row, then the cache counts as full: step 2 goes to the
	 * ring's front (upstream's order) */
	ck_assert_int_eq(adv(kv, 0, 5, 1, -1).write_row, 5);
	ck_assert_int_eq(adv(kv, 0, 5, 1, -1).write_row, 3);
	/* that extra rotation puts the step counter out of phase, so from then on the two steps
	 * of a chunk write neighbouring ring slots, exactly as upstream's counter does */
	static const int rows[4][2] = { { 3, 4 }, { 4, 5 }, { 5, 3 }, { 3, 4 } };
	for (int f = 6; f < 10; f++)
		for (int s = 0; s < 2; s++)
			ck_assert_int_eq(adv(kv, 0, f, 1, -1).write_row, rows[f - 6][s]);
	dit_kv_free(kv);
}
END_TEST

START_TEST(test_kv_refusals)
{
	char err[256];
	struct dit_kv_config c = { .tokens_per_frame = 4, .kv_frames = 3, .sink_frames = 1,
				   .sink_threshold = -1, .total_steps = 1, .layers = 1,
				   .max_slots = 1 };
	ck_assert_ptr_null(dit_kv_new(&c, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "kv-frames"));
	c.kv_frames = 6;
	c.sink_frames = 6;
	ck_assert_ptr_null(dit_kv_new(&c, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "sink-frames"));
	struct dit_kv *kv = kv_make(3, -1, 1, 2);
	struct dit_kv_step st;
	/* slot 1 does not exist before expand; a write past the cache is refused */
	ck_assert_int_eq(dit_kv_advance(kv, 0, 1, 0, 1, -1, &st, err, sizeof(err)), -1);
	ck_assert_int_eq(dit_kv_advance(kv, 0, 0, 0, 7, -1, &st, err, sizeof(err)), -1);
	ck_assert_int_eq(dit_kv_advance(kv, 5, 0, 0, 1, -1, &st, err, sizeof(err)), -1);
	ck_assert_int_eq(dit_kv_local_end(kv, 0, 0), 0);
	ck_assert_int_eq(dit_kv_expand(kv, 3, err, sizeof(err)), -1);
	dit_kv_free(kv);
}
END_TEST

START_TEST(test_kv_pending_cap)
{
	/* refreshes queued faster than the ring rotates are capped, newest kept */
	struct dit_kv *kv = kv_make(3, 0.2, 1, 1);
	adv(kv, 0, 0, 2, -1);
	for (int i = 0; i < DIT_KV_SINK_PENDING_MAX + 50; i++)
		adv(kv, 0, 2, 1, i % 3);
	int64_t l[DIT_KV_SINK_PENDING_MAX + 8];
	int n = dit_kv_evict_list(kv, 0, 0, l, DIT_KV_SINK_PENDING_MAX + 8);
	ck_assert_int_eq(n, DIT_KV_SINK_PENDING_MAX + 1);
	ck_assert_int_eq(l[0], (DIT_KV_SINK_PENDING_MAX + 49) % 3 + 1);
	ck_assert_int_eq(l[n - 1], 4);
	dit_kv_free(kv);
}
END_TEST

START_TEST(test_kv_inspection)
{
	/* what a device copy of the bookkeeping reads (the CUDA engine's adaptive sink): the
	 * rows attention will read, known before the sink decision and equal to what the write
	 * answers; the end indices; the no-batch step counter; the refresh count */
	struct dit_kv *kv = kv_make(3, 0.2, 2, 1);
	ck_assert_int_eq(dit_kv_attn_len(kv, 0, 0, 0, 2), 2);
	adv(kv, 0, 0, 2, -1);
	ck_assert_int_eq(dit_kv_global_end(kv, 0, 0), 2);
	ck_assert_int_eq(dit_kv_current_step(kv, 0), 2);
	for (int f = 2; f < 9; f++)
		for (int s = 0; s < 2; s++) {
			int pick = f == 3 && s == 0 ? 1 : f == 7 ? 0 : -1;
			int want = dit_kv_attn_len(kv, 0, 0, f, 1);
			ck_assert_int_eq(adv(kv, 0, f, 1, pick).attn_len, want);
			ck_assert_int_eq(dit_kv_global_end(kv, 0, 0), f + 1);
		}
	ck_assert_int_eq(dit_kv_local_end(kv, 0, 0), 6);
	/* full and in no-batch mode: the counter counts the chunk's steps down and back */
	for (int s = 0; s < 4; s++) {
		int cs = dit_kv_current_step(kv, 0);

		adv(kv, 0, 9, 1, -1);
		ck_assert_int_eq(dit_kv_current_step(kv, 0), cs > 1 ? cs - 1 : 2);
	}
	ck_assert_int_eq(dit_kv_sink_refreshes(kv), 3);
	/* refused writes: -1, nothing moves */
	ck_assert_int_eq(dit_kv_attn_len(kv, 0, 1, 9, 1), -1);
	ck_assert_int_eq(dit_kv_attn_len(kv, 0, 0, 9, 7), -1);
	ck_assert_int_eq(dit_kv_global_end(kv, 0, 0), 10);
	dit_kv_reset(kv);
	ck_assert_int_eq(dit_kv_sink_refreshes(kv), 0);
	ck_assert_int_eq(dit_kv_global_end(kv, 0, 0), 0);
	dit_kv_free(kv);
}
END_TEST

START_TEST(test_kv_advance_layers)
{
	/* without the adaptive sink every layer follows the same trace */
	char err[256];
	struct dit_kv *kv = kv_make(3, -1, 2, 2);
	struct dit_kv_step st[2];
	ck_assert_int_eq(dit_kv_advance_layers(kv, 0, 0, 2, st, err, sizeof(err)), 0);
	ck_assert_int_eq(dit_kv_expand(kv, 2, err, sizeof(err)), 0);
	static const int rows[] = { 2, 3, 4, 5, 3, 4, 5, 3 };
	for (int f = 2; f < 10; f++) {
		ck_assert_int_eq(dit_kv_advance_layers(kv, 1, f, 1, st, err, sizeof(err)), 0);
		ck_assert_int_eq(st[0].write_row, rows[f - 2]);
		ck_assert(st[1].write_row == st[0].write_row && st[1].attn_len == st[0].attn_len);
	}
	/* refused for a slot that does not exist, and nothing moved */
	ck_assert_int_eq(dit_kv_advance_layers(kv, 2, 10, 1, st, err, sizeof(err)), -1);
	ck_assert_int_eq(dit_kv_advance_layers(kv, 1, 10, 1, st, err, sizeof(err)), 0);
	ck_assert_int_eq(st[0].write_row, 4);
	dit_kv_free(kv);
	/* with it, each layer must decide on its own */
	kv = kv_make(3, 0.2, 1, 1);
	ck_assert_int_eq(dit_kv_advance_layers(kv, 0, 0, 2, st, err, sizeof(err)), 0);
	ck_assert_int_eq(dit_kv_advance_layers(kv, 0, 2, 1, st, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "adaptive sink"));
	dit_kv_free(kv);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("dit_ops");
	TCase *tc = tcase_create("ops");
	tcase_add_test(tc, test_rope_split);
	tcase_add_test(tc, test_rope_rotation);
	tcase_add_test(tc, test_linear_attention);
	tcase_add_test(tc, test_norms_and_misc);
	tcase_add_test(tc, test_patch_roundtrip);
	suite_add_tcase(s, tc);
	TCase *tk = tcase_create("kv");
	tcase_add_test(tk, test_kv_ring_trace);
	tcase_add_test(tk, test_kv_adaptive_sink);
	tcase_add_test(tk, test_kv_nobatch_steps);
	tcase_add_test(tk, test_kv_refusals);
	tcase_add_test(tk, test_kv_pending_cap);
	tcase_add_test(tk, test_kv_inspection);
	tcase_add_test(tk, test_kv_advance_layers);
	suite_add_tcase(s, tk);
	return check_run_suite(s);
}
