/* check_tokenizer.c: the umT5 tokenizer against sentencepiece.
 *
 * The fixtures in tests/fixtures/wan/t5/ (tests/reference/gen_tokenizer_fixtures.py) hold three
 * unigram models trained by Debian's spm_train, >1,000 varied test lines and spm_encode's ids
 * for each; every line must give identical ids. When spm_encode is installed the same lines are
 * also encoded live and compared. Then Wan's call (cleaning, EOS, padding, truncation) and the
 * error paths. */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_util.h"
#include "tokenizer.h"

static char fixdir[4096];

static void fixture_path(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", fixdir, name);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long sz;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (sz = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)sz + 1);
		if (buf && fread(buf, 1, (size_t)sz, f) == (size_t)sz) {
			buf[sz] = '\0';
			*len = (size_t)sz;
		} else {
			free(buf);
			buf = NULL;
		}
	}
	fclose(f);
	return buf;
}

/* Splits BUF in place at '\n'; returns the line starts (new) and their count. */
static char **split_lines(char *buf, size_t len, size_t **lens, size_t *count)
{
	size_t n = 0, cap = 1024;
	char **v = malloc(cap * sizeof(*v));
	*lens = malloc(cap * sizeof(**lens));
	char *p = buf, *end = buf + len;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		if (n == cap) {
			cap *= 2;
			v = realloc(v, cap * sizeof(*v));
			*lens = realloc(*lens, cap * sizeof(**lens));
		}
		v[n] = p;
		(*lens)[n] = (size_t)(nl - p);
		*nl = '\0';
		n++;
		p = nl + 1;
	}
	*count = n;
	return v;
}

/* Encodes every test line with MODEL and compares with the ids in IDS_PATH. Returns mismatches. */
static int compare_ids(const char *model, const char *ids_path, size_t *nlines)
{
	char path[4200], err[512];
	size_t tlen, ilen, nt, ni, *tl, *il;
	struct tokenizer *t;
	int bad = 0;

	fixture_path(path, sizeof(path), model);
	t = tokenizer_load(path, err, sizeof(err));
	ck_assert_msg(t != NULL, "%s", err);
	fixture_path(path, sizeof(path), "tok_lines.txt");
	char *text = slurp(path, &tlen);
	ck_assert_msg(text != NULL, "cannot read %s", path);
	char *ids = slurp(ids_path, &ilen);
	ck_assert_msg(ids != NULL, "cannot read %s", ids_path);
	char **lines = split_lines(text, tlen, &tl, &nt);
	char **exp = split_lines(ids, ilen, &il, &ni);
	ck_assert_msg(nt == ni, "%zu test lines but %zu id lines in %s", nt, ni, ids_path);
	for (size_t i = 0; i < nt; i++) {
		int32_t *got = NULL;
		size_t n = 0, k = 0;
		ck_assert_msg(tokenizer_encode(t, lines[i], tl[i], &got, &n, err, sizeof(err)) == 0, "%s", err);
		char *p = exp[i];
		bool ok = true;
		while (*p) {
			char *e;
			long v = strtol(p, &e, 10);
			if (e == p)
				break;
			if (k >= n || got[k] != v)
				ok = false;
			k++;
			p = e;
		}
		if (k != n)
			ok = false;
		if (!ok && bad++ < 5) {
			fprintf(stderr, "%s line %zu: expected [%s] got [", model, i + 1, exp[i]);
			for (size_t q = 0; q < n; q++)
				fprintf(stderr, "%s%d", q ? " " : "", got[q]);
			fprintf(stderr, "]\n");
		}
		free(got);
	}
	*nlines = nt;
	free(lines);
	free(exp);
	free(tl);
	free(il);
	free(text);
	free(ids);
	tokenizer_free(t);
	return bad;
}

static void check_fixture(const char *model, const char *ids)
{
	char path[4200];
	size_t n = 0;
	fixture_path(path, sizeof(path), ids);
	int bad = compare_ids(model, path, &n);
	ck_assert_msg(n >= 1000, "only %zu test lines", n);
	ck_assert_msg(bad == 0, "%s: %d of %zu lines differ from spm_encode", model, bad, n);
}

START_TEST(t_nfkc) { check_fixture("nfkc.model", "nfkc.ids"); }
END_TEST
START_TEST(t_bytefb) { check_fixture("bytefb.model", "bytefb.ids"); }
END_TEST
START_TEST(t_ident) { check_fixture("ident.model", "ident.ids"); }
END_TEST
START_TEST(t_hf_json) { check_fixture("bytefb.tokenizer.json", "bytefb.ids"); }
END_TEST

static bool have_spm(void)
{
	return system("spm_encode --version >/dev/null 2>&1") == 0;
}

/* Runs spm_encode now on the test lines and compares. */
START_TEST(t_live_spm)
{
	static const char *models[] = {"nfkc.model", "bytefb.model", "ident.model"};
	char tmpl[] = "/tmp/check_tokenizer_XXXXXX", cmd[9000], model[4200], lines[4200];
	if (!have_spm()) {
		fprintf(stderr, "spm_encode not installed: live comparison skipped\n");
		return;
	}
	int fd = mkstemp(tmpl);
	ck_assert(fd >= 0);
	close(fd);
	fixture_path(lines, sizeof(lines), "tok_lines.txt");
	for (int m = 0; m < 3; m++) {
		size_t n = 0;
		fixture_path(model, sizeof(model), models[m]);
		snprintf(cmd, sizeof(cmd), "spm_encode --model='%s' --output_format=id < '%s' > '%s'", model, lines, tmpl);
		ck_assert_msg(system(cmd) == 0, "%s failed", cmd);
		int bad = compare_ids(models[m], tmpl, &n);
		ck_assert_msg(bad == 0, "%s: %d of %zu lines differ from live spm_encode", models[m], bad, n);
	}
	unlink(tmpl);
}
END_TEST

static struct tokenizer *load(const char *name)
{
	char path[4200], err[512];
	fixture_path(path, sizeof(path), name);
	struct tokenizer *t = tokenizer_load(path, err, sizeof(err));
	ck_assert_msg(t != NULL, "%s", err);
	return t;
}

START_TEST(t_wan_call)
{
	struct tokenizer *t = load("bytefb.model");
	int64_t ids[TOKENIZER_WAN_LEN], mask[TOKENIZER_WAN_LEN], *raw;
	int32_t *plain;
	size_t n, m;
	int n_real;
	char err[256];

	ck_assert_int_eq(tokenizer_eos_id(t), 1);
	ck_assert_int_eq(tokenizer_pad_id(t), 0);
	ck_assert_int_eq(tokenizer_encode_wan(t, "  A cat &amp;amp; a dog,\n\tsitting  ", TOKENIZER_WAN_LEN, ids, mask,
					      &n_real, err, sizeof(err)), 0);
	/* the same as encoding the cleaned text and appending EOS */
	ck_assert_int_eq(tokenizer_encode(t, "A cat & a dog, sitting", 22, &plain, &n, err, sizeof(err)), 0);
	ck_assert_int_eq(n_real, (int)n + 1);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(ids[i], plain[i]);
	ck_assert_int_eq(ids[n], 1);
	ck_assert_int_eq(mask[n], 1);
	for (int i = n_real; i < TOKENIZER_WAN_LEN; i++) {
		ck_assert_int_eq(ids[i], 0);
		ck_assert_int_eq(mask[i], 0);
	}
	ck_assert_int_eq(tokenizer_encode_wan_alloc(t, "  A cat &amp;amp; a dog,\n\tsitting  ", &raw, &m, err,
						    sizeof(err)), 0);
	ck_assert_int_eq(m, n + 1);
	ck_assert_int_eq(raw[m - 1], 1);
	free(raw);
	free(plain);

	/* empty text: just EOS */
	ck_assert_int_eq(tokenizer_encode_wan(t, " \t ", TOKENIZER_WAN_LEN, ids, mask, &n_real, err, sizeof(err)), 0);
	ck_assert_int_eq(n_real, 1);
	ck_assert_int_eq(ids[0], 1);
	ck_assert_int_eq(ids[1], 0);

	/* truncation keeps 511 tokens and the EOS last */
	char *longtext = malloc(20001);
	for (int i = 0; i < 20000; i++)
		longtext[i] = "ab cd\xe6\x9d\xb1 "[i % 9];
	longtext[20000] = '\0';
	ck_assert_int_eq(tokenizer_encode_wan(t, longtext, TOKENIZER_WAN_LEN, ids, mask, &n_real, err, sizeof(err)), 0);
	ck_assert_int_eq(n_real, TOKENIZER_WAN_LEN);
	ck_assert_int_eq(ids[TOKENIZER_WAN_LEN - 1], 1);
	ck_assert_int_eq(mask[TOKENIZER_WAN_LEN - 1], 1);
	ck_assert_int_ne(ids[TOKENIZER_WAN_LEN - 2], 1);
	free(longtext);
	tokenizer_free(t);
}
END_TEST

static void check_clean(const char *in, const char *want)
{
	char *got = tokenizer_clean_text(in, strlen(in));
	ck_assert_msg(got != NULL, "out of memory");
	ck_assert_msg(!strcmp(got, want), "clean(\"%s\") = \"%s\", want \"%s\"", in, got, want);
	free(got);
}

/* Expected values: Python's html.unescape and re.sub(r'\s+'), and ftfy 6's documented fixes. */
START_TEST(t_clean)
{
	check_clean("  a \t\n b  ", "a b");
	check_clean("a\xc2\xa0\xe3\x80\x80" "b\xe2\x80\xa8" "c\x1c" "d", "a b cd"); /* 0x1c is an ftfy control */
	check_clean("&amp;lt;b&amp;gt;", "<b>");          /* ftfy until fixpoint, then twice */
	check_clean("x<y &amp;amp;amp; z", "x<y &amp; z");  /* '<': ftfy leaves entities alone */
	check_clean("&notit; &amp &ampx &#128512; &#x80; &#0; &#xD800; &#1;", "\xc2\xacit; & &x \xf0\x9f\x98\x80 \xe2\x82\xac \xef\xbf\xbd \xef\xbf\xbd");
	check_clean("&#99999999999999999999; &#;", "\xef\xbf\xbd &#;");
	check_clean("\xe2\x80\x9cquoted\xe2\x80\x9d \xe2\x80\x98x\xe2\x80\x99", "\"quoted\" 'x'");
	check_clean("\xc2\x93hi\xc2\x94", "\"hi\"");            /* C1 controls as Windows-1252 */
	check_clean("\xef\xac\x81ne \xef\xac\x86", "fine st");  /* ligatures */
	check_clean("\x1b[31mred\x1b[0m\x07!", "red!");        /* terminal escapes, controls */
	check_clean("&EACUTE; &eacute;", "\xc3\x89 \xc3\xa9");  /* ftfy's upper-case entity */
	check_clean("bad \xff byte", "bad \xef\xbf\xbd byte");
	check_clean("\xef\xbc\x86" "amp; \xef\xbc\xa1\xef\xbc\xa2", "& AB"); /* full-width forms first */
	/* ftfy works per line and stops unescaping at the first line holding '<' */
	check_clean("a &amp;amp;amp; b\n<x> &amp;amp;amp;", "a & b <x> &amp;");
	check_clean("<x>\n&amp;amp;amp;", "<x> &amp;");
	check_clean("", "");
}
END_TEST

START_TEST(t_errors)
{
	char err[512], path[4200];
	struct tokenizer *t = tokenizer_load("/nonexistent/spiece.model", err, sizeof(err));
	ck_assert(t == NULL);
	ck_assert_msg(strstr(err, "/nonexistent/spiece.model") != NULL, "%s", err);
	t = tokenizer_load("/nonexistent-dir-xyz/", err, sizeof(err));
	ck_assert(t == NULL);
	/* garbage and truncated models are refused, never crash */
	fixture_path(path, sizeof(path), "tok_lines.txt");
	ck_assert(tokenizer_load(path, err, sizeof(err)) == NULL);
	size_t len;
	fixture_path(path, sizeof(path), "nfkc.model");
	char *data = slurp(path, &len);
	ck_assert(data != NULL);
	for (size_t cut = 1; cut < len; cut += len / 37 + 1) {
		t = tokenizer_load_spm_buffer(data, cut, err, sizeof(err));
		tokenizer_free(t); /* a prefix may parse; it must not crash */
	}
	for (size_t i = 0; i < len; i += 97)
		data[i] ^= 0x5a;
	t = tokenizer_load_spm_buffer(data, len, err, sizeof(err));
	if (t) {
		int32_t *ids;
		size_t n;
		ck_assert_int_eq(tokenizer_encode(t, "hello world", 11, &ids, &n, err, sizeof(err)), 0);
		free(ids);
		tokenizer_free(t);
	}
	free(data);
	ck_assert(tokenizer_load_spm_buffer("\x0a\x05\x0a\x03" "abc", 7, err, sizeof(err)) == NULL);
	ck_assert_msg(strstr(err, "unknown") != NULL, "%s", err);
	/* a directory finds spiece.model or tokenizer.json; this one has neither */
	t = tokenizer_load(fixdir, err, sizeof(err));
	ck_assert(t == NULL);
	ck_assert_msg(strstr(err, "spiece.model") != NULL, "%s", err);
}
END_TEST

static void encode_cmp(const char *dir_or_file, const char *want_model, const char *text)
{
	char path[4200], err[512];
	int32_t *a, *b;
	size_t na, nb;
	struct tokenizer *t = tokenizer_load(dir_or_file, err, sizeof(err)), *u;
	ck_assert_msg(t != NULL, "%s", err);
	fixture_path(path, sizeof(path), want_model);
	u = tokenizer_load(path, err, sizeof(err));
	ck_assert_msg(u != NULL, "%s", err);
	ck_assert(tokenizer_encode(t, text, strlen(text), &a, &na, err, sizeof(err)) == 0);
	ck_assert(tokenizer_encode(u, text, strlen(text), &b, &nb, err, sizeof(err)) == 0);
	ck_assert_msg(na == nb && !memcmp(a, b, na * sizeof(*a)), "'%s' does not encode like %s", dir_or_file, want_model);
	free(a);
	free(b);
	tokenizer_free(t);
	tokenizer_free(u);
}

/* A model folder: tokenizer.json is preferred (upstream's AutoTokenizer reads it), else spiece.model. */
START_TEST(t_folder)
{
	char dir[] = "/tmp/check_tok_dirXXXXXX", a[4200], b[4200], src[4200];
	const char *text = "unseen \xf0\x9f\xa7\xbf\xf0\x90\x8d\x88 and seen words";
	ck_assert(mkdtemp(dir) != NULL);
	snprintf(a, sizeof(a), "%s/tokenizer.json", dir);
	snprintf(b, sizeof(b), "%s/spiece.model", dir);
	fixture_path(src, sizeof(src), "bytefb.tokenizer.json");
	ck_assert(symlink(src, a) == 0);
	fixture_path(src, sizeof(src), "nfkc.model");
	ck_assert(symlink(src, b) == 0);
	encode_cmp(dir, "bytefb.tokenizer.json", text);
	unlink(a);
	encode_cmp(dir, "nfkc.model", text);
	unlink(b);
	rmdir(dir);
}
END_TEST

START_TEST(t_pieces)
{
	struct tokenizer *t = load("nfkc.model");
	ck_assert_int_eq(tokenizer_vocab_size(t), 2500);
	ck_assert_str_eq(tokenizer_piece(t, 0), "<pad>");
	ck_assert_str_eq(tokenizer_piece(t, 1), "</s>");
	ck_assert_str_eq(tokenizer_piece(t, 2), "<unk>");
	ck_assert(tokenizer_piece(t, 2500) == NULL);
	ck_assert_int_eq(tokenizer_piece_to_id(t, "</s>", 4), 1);
	ck_assert_int_eq(tokenizer_piece_to_id(t, "no-such-piece", 13), 2);
	char *norm;
	size_t nl;
	char err[128];
	ck_assert_int_eq(tokenizer_normalize(t, "  \xef\xbc\xa1  b\xef\xac\x81 ", 12, &norm, &nl, err, sizeof(err)), 0);
	ck_assert_str_eq(norm, "\xe2\x96\x81" "A\xe2\x96\x81" "bfi");
	free(norm);
	tokenizer_free(t);
}
END_TEST

int main(void)
{
	const char *src = getenv("top_srcdir");
	snprintf(fixdir, sizeof(fixdir), "%s/tests/fixtures/wan/t5", src ? src : "..");
	Suite *s = suite_create("tokenizer");
	TCase *tc = tcase_create("spm");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, t_nfkc);
	tcase_add_test(tc, t_bytefb);
	tcase_add_test(tc, t_ident);
	tcase_add_test(tc, t_hf_json);
	tcase_add_test(tc, t_live_spm);
	tcase_add_test(tc, t_wan_call);
	tcase_add_test(tc, t_clean);
	tcase_add_test(tc, t_errors);
	tcase_add_test(tc, t_pieces);
	tcase_add_test(tc, t_folder);
	suite_add_tcase(s, tc);
	return check_run_suite(s);
}
