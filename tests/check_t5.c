/* check_t5.c: the umT5 encoder C reference against goldens from tests/reference/wan_t5_ref.py
 * (PyTorch, tiny config), its configs and its checkpoint validation. */
#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_util.h"
#include "cli.h"
#include "t5_model.h"
#include "tokenizer.h"
#include "t5_ref.h"
#include "wt_file.h"

static char fixdir[4096];

static void fpath(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", fixdir, name);
}

static struct wt_file *open_fix(const char *name)
{
	char path[4200], err[512];
	fpath(path, sizeof(path), name);
	struct wt_file *f = wt_open(path, err, sizeof(err));
	ck_assert_msg(f != NULL, "%s", err);
	return f;
}

static void tiny_config(struct t5_config *c)
{
	char path[4200], err[512];
	fpath(path, sizeof(path), "t5_tiny_config.json");
	ck_assert_msg(t5_config_load(path, c, err, sizeof(err)) == 0, "%s", err);
}

/* Relative L2 error and max abs error of GOT against WANT. */
static void compare(const float *got, const float *want, size_t n, double tol_rel, const char *what)
{
	double num = 0, den = 0, maxd = 0;
	for (size_t i = 0; i < n; i++) {
		double d = (double)got[i] - want[i];
		num += d * d;
		den += (double)want[i] * want[i];
		maxd = fabs(d) > maxd ? fabs(d) : maxd;
	}
	double rel = sqrt(num / (den > 0 ? den : 1));
	ck_assert_msg(rel <= tol_rel, "%s: relative L2 error %.3g > %.3g (max abs %.3g)", what, rel, tol_rel, maxd);
}

static void run_case(const char *weights, const char *ids_name, const char *mask_name, const char *ctx_name,
		     double tol, int threads)
{
	struct t5_config c;
	struct t5_weights w;
	char err[512];
	struct wt_file *f = open_fix(weights), *g = open_fix("t5_tiny_golden.safetensors");
	int64_t ids[T5_TEXT_LEN], mask[T5_TEXT_LEN], shape[3] = {1, T5_TEXT_LEN, 0};

	tiny_config(&c);
	shape[2] = c.dim;
	ck_assert_msg(t5_weights_init(&w, f, &c, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(wt_read_i64(g, ids_name, 2, shape, ids, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(wt_read_i64(g, mask_name, 2, shape, mask, err, sizeof(err)) == 0, "%s", err);
	float *want = wt_load_f32(g, ctx_name, 3, shape, err, sizeof(err));
	ck_assert_msg(want != NULL, "%s", err);
	float *got = malloc(sizeof(float) * T5_TEXT_LEN * (size_t)c.dim);
	ck_assert_msg(t5_encode_ref(&w, ids, mask, T5_TEXT_LEN, threads, got, err, sizeof(err)) == 0, "%s", err);
	compare(got, want, (size_t)T5_TEXT_LEN * c.dim, tol, ctx_name);
	/* rows past the real tokens are exactly zero, real rows are not */
	int n_real = 0;
	for (int i = 0; i < T5_TEXT_LEN; i++)
		n_real += mask[i] > 0;
	for (int i = 0; i < T5_TEXT_LEN; i++) {
		bool zero = true;
		for (int j = 0; j < c.dim; j++)
			zero &= got[(size_t)i * c.dim + j] == 0.0f;
		ck_assert_msg(zero == (i >= n_real), "row %d: zero=%d with %d real tokens", i, zero, n_real);
	}
	free(got);
	free(want);
	t5_weights_release(&w);
	wt_close(f);
	wt_close(g);
}

START_TEST(t_golden_padded) { run_case("t5_tiny.safetensors", "ids_a", "mask_a", "context_a", 1e-5, 1); }
END_TEST
START_TEST(t_golden_full) { run_case("t5_tiny.safetensors", "ids_b", "mask_b", "context_b", 1e-5, 3); }
END_TEST
/* the bf16 torch.save checkpoint, the layout of models_t5_umt5-xxl-enc-bf16.pth */
START_TEST(t_golden_pth_bf16) { run_case("t5_tiny_bf16.pth", "ids_a", "mask_a", "context_a_bf16", 1e-5, 2); }
END_TEST

/* A mask that is not a prefix: the general path must agree with the golden on real rows when
 * the hole is a padded key (PyTorch masks keys only; here only one padded key moves). */
START_TEST(t_nonprefix_mask)
{
	struct t5_config c;
	struct t5_weights w;
	char err[512];
	struct wt_file *f = open_fix("t5_tiny.safetensors"), *g = open_fix("t5_tiny_golden.safetensors");
	int64_t ids[T5_TEXT_LEN], mask[T5_TEXT_LEN], shape[2] = {1, T5_TEXT_LEN};
	tiny_config(&c);
	ck_assert_msg(t5_weights_init(&w, f, &c, err, sizeof(err)) == 0, "%s", err);
	ck_assert(wt_read_i64(g, "ids_a", 2, shape, ids, err, sizeof(err)) == 0);
	ck_assert(wt_read_i64(g, "mask_a", 2, shape, mask, err, sizeof(err)) == 0);
	float *a = malloc(sizeof(float) * T5_TEXT_LEN * (size_t)c.dim);
	float *b = malloc(sizeof(float) * T5_TEXT_LEN * (size_t)c.dim);
	ck_assert(t5_encode_ref(&w, ids, mask, T5_TEXT_LEN, 1, a, err, sizeof(err)) == 0);
	/* changing a padded token's id changes nothing (its key is masked, its row zeroed) */
	ids[100] = 5;
	ck_assert(t5_encode_ref(&w, ids, mask, T5_TEXT_LEN, 1, b, err, sizeof(err)) == 0);
	ck_assert(memcmp(a, b, sizeof(float) * T5_TEXT_LEN * (size_t)c.dim) == 0);
	/* masking a real key in the middle changes the real rows */
	mask[3] = 0;
	mask[36] = 1;
	mask[37] = 1;
	ck_assert(t5_encode_ref(&w, ids, mask, T5_TEXT_LEN, 2, b, err, sizeof(err)) == 0);
	ck_assert(memcmp(a, b, sizeof(float) * (size_t)c.dim) != 0);
	free(a);
	free(b);
	t5_weights_release(&w);
	wt_close(f);
	wt_close(g);
}
END_TEST

START_TEST(t_buckets)
{
	struct t5_config c;
	char err[256];
	struct wt_file *g = open_fix("t5_tiny_golden.safetensors");
	int64_t b[1201], shape[1] = {1201};
	ck_assert_msg(wt_read_i64(g, "buckets", 1, shape, b, err, sizeof(err)) == 0, "%s", err);
	t5_config_umt5_xxl(&c);
	for (int r = -600; r <= 600; r++)
		ck_assert_msg(t5_rel_bucket(r, c.num_buckets, c.max_dist) == b[r + 600], "rel %d: %d vs torch %lld", r,
			      t5_rel_bucket(r, c.num_buckets, c.max_dist), (long long)b[r + 600]);
	/* spot values from the spec: n < 8 exact, 16 added for keys after the query, 15 the last */
	ck_assert_int_eq(t5_rel_bucket(0, 32, 128), 0);
	ck_assert_int_eq(t5_rel_bucket(-7, 32, 128), 7);
	ck_assert_int_eq(t5_rel_bucket(7, 32, 128), 23);
	ck_assert_int_eq(t5_rel_bucket(-500, 32, 128), 15);
	ck_assert_int_eq(t5_rel_bucket(500, 32, 128), 31);
	wt_close(g);
}
END_TEST

START_TEST(t_config)
{
	struct t5_config c, d;
	char err[512];
	struct wt_file *f = open_fix("t5_tiny_bf16.pth");
	tiny_config(&c);
	ck_assert_int_eq(c.vocab_size, 2500);
	ck_assert_int_eq(c.head_dim, 16);
	ck_assert_msg(t5_config_from_file(f, &d, err, sizeof(err)) == 0, "%s", err);
	ck_assert(c.vocab_size == d.vocab_size && c.dim == d.dim && c.dim_attn == d.dim_attn && c.dim_ffn == d.dim_ffn &&
		  c.num_heads == d.num_heads && c.num_layers == d.num_layers && c.num_buckets == d.num_buckets &&
		  c.head_dim == d.head_dim && c.max_dist == d.max_dist && c.eps == d.eps);
	ck_assert_int_eq(t5_config_load("umt5-xxl", &d, err, sizeof(err)), 0);
	ck_assert_int_eq(t5_config_params(&d), 5680910336LL); /* spec §1.2 */
	double tf = t5_config_flops(&d, 512) / 1e12;
	ck_assert_msg(tf > 4.7 && tf < 4.9, "%.3f TFLOP", tf);
	/* bad configs */
	const char *bad[] = {
		"{\"vocab_size\": 10, \"dim\": 8, \"dim_attn\": 9, \"dim_ffn\": 8, \"num_heads\": 2, \"num_layers\": 1, \"num_buckets\": 32}",
		"{\"vocab_size\": 10, \"dim\": 8, \"dim_attn\": 8, \"dim_ffn\": 8, \"num_heads\": 2, \"num_layers\": 1}",
		"{\"vocab_size\": 10, \"dim\": 8, \"dim_attn\": 8, \"dim_ffn\": 8, \"num_heads\": 2, \"num_layers\": 1, \"num_buckets\": 32, \"shared_pos\": true}",
		"[1, 2]", "{", "{\"vocab_size\": -1}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		d.dim = 12345;
		err[0] = 0;
		ck_assert_int_eq(t5_config_parse(bad[i], strlen(bad[i]), "test", &d, err, sizeof(err)), -1);
		ck_assert_int_eq(d.dim, 12345);
		ck_assert_msg(strstr(err, "test") != NULL, "%s", err);
	}
	ck_assert_int_eq(t5_config_load("/nonexistent.json", &d, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "/nonexistent.json") != NULL, "%s", err);
	wt_close(f);
}
END_TEST

START_TEST(t_weights_errors)
{
	struct t5_config c;
	struct t5_weights w;
	char err[512];
	struct wt_file *f = open_fix("t5_tiny.safetensors");
	tiny_config(&c);
	c.dim_ffn = 128; /* shape mismatch names the tensor */
	ck_assert_int_eq(t5_weights_init(&w, f, &c, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "ffn.gate.0.weight") && strstr(err, "[128,64]"), "%s", err);
	tiny_config(&c);
	c.num_layers = 3; /* missing tensor */
	ck_assert_int_eq(t5_weights_init(&w, f, &c, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "blocks.2.norm1.weight") != NULL, "%s", err);
	tiny_config(&c);
	c.num_layers = 1; /* strict: unexpected tensors */
	ck_assert_int_eq(t5_weights_init(&w, f, &c, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "unexpected tensor 'blocks.1.") != NULL, "%s", err);
	/* bad ids are refused */
	tiny_config(&c);
	ck_assert_msg(t5_weights_init(&w, f, &c, err, sizeof(err)) == 0, "%s", err);
	int64_t ids[4] = {1, 2, 2500, 0}, mask[4] = {1, 1, 1, 0};
	float out[4 * 64];
	ck_assert_int_eq(t5_encode_ref(&w, ids, mask, 4, 1, out, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "2500") && strstr(err, "position 2"), "%s", err);
	/* an all-padding mask gives zeros */
	ids[2] = 3;
	mask[0] = mask[1] = mask[2] = 0;
	out[0] = 1;
	ck_assert_int_eq(t5_encode_ref(&w, ids, mask, 4, 1, out, err, sizeof(err)), 0);
	ck_assert(out[0] == 0.0f);
	t5_weights_release(&w);
	wt_close(f);
}
END_TEST


static int run_cli(int (*fn)(int, char **), int argc, const char **argv)
{
	return fn(argc, (char **)argv);
}

static char *tmp_out(void)
{
	char *p = strdup("/tmp/check_t5_XXXXXX");
	int fd = mkstemp(p);
	ck_assert(fd >= 0);
	close(fd);
	return p;
}

START_TEST(t_cli_t5_encode)
{
	char w[4200], in[4200], err[512];
	char *out = tmp_out();
	int64_t shape[3] = {1, T5_TEXT_LEN, 64};
	fpath(w, sizeof(w), "t5_tiny_bf16.pth");
	fpath(in, sizeof(in), "t5_tiny_golden.safetensors");
	const char *argv[] = {"t5-encode", "--weights", w, "--input", in, "--output", out, "--threads", "2", NULL};
	ck_assert_int_eq(run_cli(cli_t5_encode, 9, argv), 0);
	struct wt_file *o = wt_open(out, err, sizeof(err)), *g = open_fix("t5_tiny_golden.safetensors");
	ck_assert_msg(o != NULL, "%s", err);
	float *got = wt_load_f32(o, "context", 3, shape, err, sizeof(err));
	ck_assert_msg(got != NULL, "%s", err);
	float *want = wt_load_f32(g, "context_a_bf16", 3, shape, err, sizeof(err));
	compare(got, want, (size_t)T5_TEXT_LEN * 64, 1e-5, "t5-encode context");
	free(got);
	free(want);
	wt_close(o);
	wt_close(g);
	/* errors: usage 2, missing weights 1, unknown device 2, cuda without the CUDA encoder 1 */
	const char *a1[] = {"t5-encode", "--weights", w, NULL};
	ck_assert_int_eq(run_cli(cli_t5_encode, 3, a1), 2);
	const char *a2[] = {"t5-encode", "--weights", "/nonexistent/t5.pth", "--input", in, "--output", out, NULL};
	ck_assert_int_eq(run_cli(cli_t5_encode, 7, a2), 1);
	const char *a3[] = {"t5-encode", "--weights", w, "--input", in, "--output", out, "--device", "tpu", NULL};
	ck_assert_int_eq(run_cli(cli_t5_encode, 9, a3), 2);
	unlink(out);
	free(out);
}
END_TEST

START_TEST(t_cli_encode_prompt)
{
	char w[4200], tok[4200], err[512];
	char *out = tmp_out();
	const char *text = "  A cat &amp;amp; a dog \xe2\x80\x9cplaying\xe2\x80\x9d in the snow, \xe6\x9d\xb1\xe4\xba\xac  ";
	int64_t shape3[3] = {1, T5_TEXT_LEN, 64}, shape2[2] = {1, T5_TEXT_LEN};
	int64_t ids[T5_TEXT_LEN], mask[T5_TEXT_LEN], gids[T5_TEXT_LEN], gmask[T5_TEXT_LEN];
	int n_real;
	fpath(w, sizeof(w), "t5_tiny.safetensors");
	fpath(tok, sizeof(tok), "bytefb.model");
	const char *argv[] = {"encode-prompt", "--tokenizer", tok, "--weights", w, "--text", text, "--output", out, NULL};
	ck_assert_int_eq(run_cli(cli_encode_prompt, 9, argv), 0);
	/* the same as tokenizer + reference */
	struct tokenizer *t = tokenizer_load(tok, err, sizeof(err));
	ck_assert_msg(t != NULL, "%s", err);
	ck_assert_int_eq(tokenizer_encode_wan(t, text, T5_TEXT_LEN, ids, mask, &n_real, err, sizeof(err)), 0);
	ck_assert_int_gt(n_real, 10);
	tokenizer_free(t);
	struct wt_file *o = wt_open(out, err, sizeof(err)), *f = open_fix("t5_tiny.safetensors");
	ck_assert_msg(o != NULL, "%s", err);
	ck_assert(wt_read_i64(o, "ids", 2, shape2, gids, err, sizeof(err)) == 0);
	ck_assert(wt_read_i64(o, "mask", 2, shape2, gmask, err, sizeof(err)) == 0);
	ck_assert(memcmp(ids, gids, sizeof(ids)) == 0 && memcmp(mask, gmask, sizeof(mask)) == 0);
	float *got = wt_load_f32(o, "context", 3, shape3, err, sizeof(err));
	ck_assert_msg(got != NULL, "%s", err);
	struct t5_config c;
	struct t5_weights wt;
	tiny_config(&c);
	ck_assert(t5_weights_init(&wt, f, &c, err, sizeof(err)) == 0);
	float *want = malloc(sizeof(float) * T5_TEXT_LEN * 64);
	ck_assert(t5_encode_ref(&wt, ids, mask, T5_TEXT_LEN, 1, want, err, sizeof(err)) == 0);
	ck_assert(memcmp(got, want, sizeof(float) * T5_TEXT_LEN * 64) == 0);
	for (int j = 0; j < 64; j++)
		ck_assert(got[(size_t)n_real * 64 + j] == 0.0f && got[(size_t)(n_real - 1) * 64 + j] != 0.0f);
	free(got);
	free(want);
	t5_weights_release(&wt);
	wt_close(o);
	wt_close(f);
	/* a missing tokenizer is an error naming it */
	fpath(w, sizeof(w), "t5_tiny_config.json");
	const char *a2[] = {"encode-prompt", "--tokenizer", "/nonexistent/spiece.model", "--weights", w, "--text", "x",
			    "--output", out, NULL};
	ck_assert_int_eq(run_cli(cli_encode_prompt, 9, a2), 1);
	unlink(out);
	free(out);
}
END_TEST

/* heru-wan tokenize prints the JSON array of tokenizer_encode_wan_alloc */
START_TEST(t_cli_tokenize)
{
	const char *bd = getenv("top_builddir");
	char cmd[9000], tok[4200], line[4096] = "", want[4096], err[256];
	int64_t *ids;
	size_t n, o = 0;
	if (!bd) {
		fprintf(stderr, "top_builddir unset: heru-wan tokenize not run\n");
		return;
	}
	fpath(tok, sizeof(tok), "nfkc.model");
	snprintf(cmd, sizeof(cmd), "'%s/heru-wan' tokenize --tokenizer '%s' --text 'Hello  world &amp; more'", bd, tok);
	FILE *p = popen(cmd, "r");
	ck_assert(p != NULL);
	ck_assert(fgets(line, sizeof(line), p) != NULL);
	ck_assert_int_eq(pclose(p), 0);
	struct tokenizer *t = tokenizer_load(tok, err, sizeof(err));
	ck_assert(t != NULL);
	ck_assert(tokenizer_encode_wan_alloc(t, "Hello  world &amp; more", &ids, &n, err, sizeof(err)) == 0);
	o += (size_t)snprintf(want + o, sizeof(want) - o, "[");
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(want + o, sizeof(want) - o, "%s%lld", i ? ", " : "", (long long)ids[i]);
	snprintf(want + o, sizeof(want) - o, "]\n");
	ck_assert_str_eq(line, want);
	ck_assert(ids[n - 1] == 1);
	free(ids);
	tokenizer_free(t);
}
END_TEST

int main(void)
{
	const char *src = getenv("top_srcdir");
	snprintf(fixdir, sizeof(fixdir), "%s/tests/fixtures/wan/t5", src ? src : "..");
	Suite *s = suite_create("t5");
	TCase *tc = tcase_create("ref");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, t_golden_padded);
	tcase_add_test(tc, t_golden_full);
	tcase_add_test(tc, t_golden_pth_bf16);
	tcase_add_test(tc, t_nonprefix_mask);
	tcase_add_test(tc, t_buckets);
	tcase_add_test(tc, t_config);
	tcase_add_test(tc, t_weights_errors);
	tcase_add_test(tc, t_cli_t5_encode);
	tcase_add_test(tc, t_cli_encode_prompt);
	tcase_add_test(tc, t_cli_tokenize);
	suite_add_tcase(s, tc);
	return check_run_suite(s);
}
