/* check_wan_config.c: DiT configs (presets, config.json parsing and validation) and the DiT
 * weight table (names, shapes, parameter counts of spec §3.1). */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_util.h"
#include "wan_config.h"
#include "wan_dit_weights.h"
#include "wt_file.h"

static const char tiny_json[] =
	"{\"dim\": 64, \"ffn_dim\": 128, \"num_heads\": 2, \"num_layers\": 2, \"in_dim\": 16,"
	" \"out_dim\": 16, \"text_len\": 512, \"freq_dim\": 256, \"eps\": 1e-06}";

START_TEST(presets)
{
	struct wan_dit_config c;
	char err[256];

	ck_assert_int_eq(wan_dit_config_load("1.3b", &c, err, sizeof err), 0);
	ck_assert_int_eq(c.dim, 1536);
	ck_assert_int_eq(c.ffn_dim, 8960);
	ck_assert_int_eq(c.num_heads, 12);
	ck_assert_int_eq(c.head_dim, 128);
	ck_assert_int_eq(c.num_layers, 30);
	ck_assert_int_eq(c.text_dim, 4096);
	ck_assert_int_eq(c.text_len, 512);
	ck_assert_int_eq(c.freq_dim, 256);
	ck_assert(c.eps == 1e-6);
	ck_assert_int_eq(wan_dit_config_load("14B", &c, err, sizeof err), 0);
	ck_assert_int_eq(c.dim, 5120);
	ck_assert_int_eq(c.ffn_dim, 13824);
	ck_assert_int_eq(c.num_heads, 40);
	ck_assert_int_eq(c.num_layers, 40);
	ck_assert_int_eq(c.head_dim, 128);
}
END_TEST

START_TEST(param_counts)
{
	struct wan_dit_config c;
	struct wan_dit_weight *w;
	size_t n;
	int64_t sum = 0;

	ck_assert_int_eq(wan_dit_config_preset("1.3b", &c), 0);
	ck_assert_int_eq(wan_dit_param_count(&c), 1418996800LL);
	w = wan_dit_weights_new(&c, &n);
	ck_assert_ptr_nonnull(w);
	ck_assert_uint_eq(n, 15 + 27 * 30);
	for (size_t i = 0; i < n; i++)
		sum += wan_dit_weight_numel(&w[i]);
	ck_assert_int_eq(sum, 1418996800LL);
	free(w);
	ck_assert_int_eq(wan_dit_config_preset("14b", &c), 0);
	ck_assert_int_eq(wan_dit_param_count(&c), 14288491584LL);
	w = wan_dit_weights_new(&c, &n);
	ck_assert_ptr_nonnull(w);
	ck_assert_uint_eq(n, 15 + 27 * 40);
	sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += wan_dit_weight_numel(&w[i]);
	ck_assert_int_eq(sum, 14288491584LL);
	free(w);
}
END_TEST

static const struct wan_dit_weight *find(const struct wan_dit_weight *w, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(w[i].name, name))
			return &w[i];
	return NULL;
}

START_TEST(table_names_and_shapes)
{
	struct wan_dit_config c;
	struct wan_dit_weight *w;
	const struct wan_dit_weight *e;
	size_t n;

	ck_assert_int_eq(wan_dit_config_preset("1.3b", &c), 0);
	w = wan_dit_weights_new(&c, &n);
	ck_assert_ptr_nonnull(w);
	e = find(w, n, "patch_embedding.weight");
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(e->ndim, 5);
	ck_assert_int_eq(e->shape[0], 1536);
	ck_assert_int_eq(e->shape[1], 16);
	ck_assert_int_eq(e->shape[2], 1);
	ck_assert_int_eq(e->shape[3], 2);
	ck_assert_int_eq(e->shape[4], 2);
	e = find(w, n, "time_projection.1.weight");
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(e->shape[0], 9216);
	ck_assert_int_eq(e->shape[1], 1536);
	e = find(w, n, "head.modulation");
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(e->ndim, 3);
	ck_assert_int_eq(e->shape[1], 2);
	e = find(w, n, "head.head.weight");
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(e->shape[0], 64);
	e = find(w, n, "blocks.29.ffn.2.weight");
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(e->block, 29);
	ck_assert_int_eq(e->shape[0], 1536);
	ck_assert_int_eq(e->shape[1], 8960);
	e = find(w, n, "blocks.0.cross_attn.norm_k.weight");
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(e->init, WAN_INIT_ONES);
	e = find(w, n, "blocks.3.norm3.bias");
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(e->init, WAN_INIT_ZEROS);
	e = find(w, n, "blocks.7.modulation");
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(e->shape[1], 6);
	ck_assert_ptr_null(find(w, n, "blocks.30.modulation"));
	ck_assert_ptr_null(find(w, n, "norm1.weight"));
	/* names are unique */
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			ck_assert_str_ne(w[i].name, w[j].name);
	free(w);
}
END_TEST

START_TEST(json_tiny)
{
	struct wan_dit_config c;
	char err[256];

	ck_assert_int_eq(wan_dit_config_parse(tiny_json, strlen(tiny_json), "tiny", &c, err,
					      sizeof err), 0);
	ck_assert_int_eq(c.dim, 64);
	ck_assert_int_eq(c.head_dim, 32);
	ck_assert_int_eq(c.text_dim, 4096);  /* default */
	ck_assert_int_eq(c.num_layers, 2);
	/* 15 global + 27 per block tensors, counted by hand for this config */
	ck_assert_int_eq(wan_dit_param_count(&c),
			 (64 * 64 + 64) + (64 * 4096 + 64) + (64 * 64 + 64) + (64 * 256 + 64) +
			 (64 * 64 + 64) + (384 * 64 + 384) + 128 + (64 * 64 + 64) +
			 2 * (384 + 8 * (64 * 64 + 64) + 6 * 64 + (128 * 64 + 128) + (64 * 128 + 64)));
}
END_TEST

START_TEST(json_file_and_folder)
{
	char dir[] = "/tmp/check_wan_config.XXXXXX", path[256], err[256];
	struct wan_dit_config c;
	FILE *fp;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/config.json", dir);
	fp = fopen(path, "w");
	ck_assert_ptr_nonnull(fp);
	/* a real Wan2.1 config.json carries extra keys, which are ignored */
	fprintf(fp, "{\"_class_name\": \"WanModel\", \"model_type\": \"t2v\", \"patch_size\": [1, 2, 2],"
		" \"dim\": 96, \"ffn_dim\": 256, \"num_heads\": 4, \"num_layers\": 3, \"in_dim\": 16,"
		" \"out_dim\": 16, \"text_len\": 512, \"freq_dim\": 256, \"eps\": 1e-06,"
		" \"text_dim\": 48, \"window_size\": [-1, -1], \"qk_norm\": true}");
	fclose(fp);
	ck_assert_int_eq(wan_dit_config_load(path, &c, err, sizeof err), 0);
	ck_assert_int_eq(c.dim, 96);
	ck_assert_int_eq(c.head_dim, 24);
	ck_assert_int_eq(c.text_dim, 48);
	memset(&c, 0, sizeof c);
	ck_assert_int_eq(wan_dit_config_load(dir, &c, err, sizeof err), 0);
	ck_assert_int_eq(c.num_layers, 3);
	unlink(path);
	rmdir(dir);
}
END_TEST

static void expect_bad(const char *json, const char *needle)
{
	struct wan_dit_config c = { .dim = 12345 };
	char err[256] = "";

	ck_assert_int_eq(wan_dit_config_parse(json, strlen(json), "cfg.json", &c, err, sizeof err), -1);
	ck_assert_msg(strstr(err, needle), "error '%s' lacks '%s'", err, needle);
	ck_assert_msg(!strncmp(err, "cfg.json: ", 10), "error '%s' does not name the file", err);
	ck_assert_int_eq(c.dim, 12345);  /* untouched */
}

START_TEST(json_invalid)
{
	expect_bad("{\"dim\": 64}", "ffn_dim");
	expect_bad("[1, 2]", "not a JSON object");
	expect_bad("{\"dim\": 64,", "not a JSON object");
	expect_bad("{\"dim\": 65, \"ffn_dim\": 128, \"num_heads\": 2, \"num_layers\": 2, \"in_dim\": 16,"
		   " \"out_dim\": 16, \"text_len\": 512, \"freq_dim\": 256, \"eps\": 1e-06}",
		   "not a multiple of num_heads");
	expect_bad("{\"dim\": 66, \"ffn_dim\": 128, \"num_heads\": 2, \"num_layers\": 2, \"in_dim\": 16,"
		   " \"out_dim\": 16, \"text_len\": 512, \"freq_dim\": 256, \"eps\": 1e-06}",
		   "must be even");
	expect_bad("{\"dim\": 64, \"ffn_dim\": 128, \"num_heads\": 2, \"num_layers\": 0, \"in_dim\": 16,"
		   " \"out_dim\": 16, \"text_len\": 512, \"freq_dim\": 256, \"eps\": 1e-06}",
		   "num_layers");
	expect_bad("{\"dim\": 64, \"ffn_dim\": 128, \"num_heads\": 2, \"num_layers\": 2, \"in_dim\": 16,"
		   " \"out_dim\": 16, \"text_len\": 512, \"freq_dim\": 256, \"eps\": -1}",
		   "eps");
	expect_bad("{\"dim\": \"64\", \"ffn_dim\": 128, \"num_heads\": 2, \"num_layers\": 2,"
		   " \"in_dim\": 16,"
		   " \"out_dim\": 16, \"text_len\": 512, \"freq_dim\": 256, \"eps\": 1e-06}",
		   "\"dim\" must be an integer");
	expect_bad("{\"dim\": 99999999999, \"ffn_dim\": 128, \"num_heads\": 2, \"num_layers\": 2,"
		   " \"in_dim\": 16, \"out_dim\": 16, \"text_len\": 512, \"freq_dim\": 256, \"eps\": 1e-06}",
		   "\"dim\" must be an integer");
	expect_bad("{\"dim\": 64, \"ffn_dim\": 128, \"num_heads\": 2, \"num_layers\": 2, \"in_dim\": 16,"
		   " \"out_dim\": 16, \"text_len\": 512, \"freq_dim\": 256, \"eps\": 1e-06,"
		   " \"patch_size\": [1, 4, 4]}", "patch_size");
}
END_TEST

START_TEST(unknown_model)
{
	struct wan_dit_config c;
	char err[256];

	ck_assert_int_eq(wan_dit_config_load("7b", &c, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "'7b'") && strstr(err, "1.3b"), "%s", err);
	ck_assert_int_eq(wan_dit_config_load("", &c, err, sizeof err), -1);
}
END_TEST


static int same_bytes(const char *a, const char *b)
{
	FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
	int ca, cb, same = 1;

	ck_assert(fa && fb);
	do {
		ca = fgetc(fa);
		cb = fgetc(fb);
		if (ca != cb)
			same = 0;
	} while (same && ca != EOF);
	fclose(fa);
	fclose(fb);
	return same;
}

/* random-weights: every tensor of the table with its shape, deterministic for a seed
 * whatever the thread count, N(0, 0.02) / ones / zeros as documented. */
START_TEST(random_weights)
{
	char dir[] = "/tmp/check_wan_rw.XXXXXX", a[256], b[256], c3[256], err[512], cmd[300];
	struct wan_dit_config c;
	struct wan_dit_weight *tab;
	struct wt_file *f;
	size_t n;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(a, sizeof a, "%s/a.safetensors", dir);
	snprintf(b, sizeof b, "%s/b.safetensors", dir);
	snprintf(c3, sizeof c3, "%s/c.safetensors", dir);
	ck_assert_int_eq(wan_dit_config_parse(tiny_json, strlen(tiny_json), "tiny", &c, err,
					      sizeof err), 0);
	c.ffn_dim = 20000;  /* ffn weights (1.28M elements) span several 1M-element writer pieces */
	ck_assert_int_eq(wan_dit_random_weights_save(&c, "tiny", a, 7, WT_BF16, "model.", 1, err,
						     sizeof err), 0);
	ck_assert_int_eq(wan_dit_random_weights_save(&c, "tiny", b, 7, WT_BF16, "model.", 3, err,
						     sizeof err), 0);
	ck_assert_msg(same_bytes(a, b), "thread count changed the file");
	ck_assert_int_eq(wan_dit_random_weights_save(&c, "tiny", c3, 8, WT_BF16, "model.", 3, err,
						     sizeof err), 0);
	ck_assert_msg(!same_bytes(a, c3), "seed did not change the file");
	ck_assert_int_eq(wan_dit_random_weights_save(&c, NULL, c3, 7, WT_F32, NULL, 2, err,
						     sizeof err), 0);
	tab = wan_dit_weights_new(&c, &n);
	f = wt_open(a, err, sizeof err);
	ck_assert_msg(f != NULL, "%s", err);
	ck_assert_uint_eq(wt_count(f), n);
	for (size_t i = 0; i < n; i++) {
		int64_t k = wan_dit_weight_numel(&tab[i]);
		float *v = wt_load_f32(f, tab[i].name, tab[i].ndim, tab[i].shape, err, sizeof err);
		double s = 0, sq = 0;

		ck_assert_msg(v != NULL, "%s", err);
		ck_assert_int_eq(wt_find(f, tab[i].name)->dtype, WT_BF16);
		for (int64_t j = 0; j < k; j++) {
			s += v[j];
			sq += (double)v[j] * v[j];
			if (tab[i].init == WAN_INIT_ONES)
				ck_assert(v[j] == 1.0f);
			if (tab[i].init == WAN_INIT_ZEROS)
				ck_assert(v[j] == 0.0f);
		}
		if (tab[i].init == WAN_INIT_NORMAL && k >= 4096) {
			double mean = s / (double)k, sd = sqrt(sq / (double)k - mean * mean);

			ck_assert_msg(fabs(mean) < 0.002 && fabs(sd - 0.02) < 0.001,
				      "%s: mean %g std %g", tab[i].name, mean, sd);
		}
		free(v);
	}
	wt_close(f);
	/* the f32 file holds the same values before bf16 rounding */
	f = wt_open(c3, err, sizeof err);
	ck_assert_msg(f != NULL, "%s", err);
	ck_assert_str_eq(wt_at(f, 0)->name, "patch_embedding.weight");
	{
		struct wt_file *g = wt_open(a, err, sizeof err);
		float x[64 * 16 * 4], y[64 * 16 * 4];

		ck_assert_int_eq(wt_read_f32(f, "patch_embedding.weight", 5, tab[0].shape, x, err,
					     sizeof err), 0);
		ck_assert_int_eq(wt_read_f32(g, "patch_embedding.weight", 5, tab[0].shape, y, err,
					     sizeof err), 0);
		for (int j = 0; j < 64 * 16 * 4; j++)
			ck_assert(wt_bf16_to_f32(wt_f32_to_bf16(x[j])) == y[j]);
		wt_close(g);
	}
	wt_close(f);
	free(tab);
	ck_assert_int_eq(wan_dit_random_weights_save(&c, NULL, c3, 7, WT_I64, NULL, 2, err,
						     sizeof err), -1);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wan_config");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, presets);
	tcase_add_test(tc, param_counts);
	tcase_add_test(tc, table_names_and_shapes);
	tcase_add_test(tc, json_tiny);
	tcase_add_test(tc, json_file_and_folder);
	tcase_add_test(tc, json_invalid);
	tcase_add_test(tc, unknown_model);
	tcase_add_test(tc, random_weights);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return check_run_suite(s);
}
