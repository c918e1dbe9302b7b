/* tokenizer.c: sentencepiece unigram encoding, bit-exact with sentencepiece 0.1.97.
 *
 * DESIGN
 * The model is a list of pieces (string, float score, type). Encoding is two steps, each a
 * faithful re-implementation of the library's behaviour (not of its code):
 *  1. Normalization (normalizer.cc): at each position take the longest match of the
 *     precompiled charsmap (a darts-clone double-array trie whose values point at NUL-terminated
 *     replacement strings), else one UTF-8 character (an invalid byte becomes U+FFFD and consumes
 *     one byte). User-defined pieces are matched first and copied verbatim. With
 *     remove_extra_whitespaces, leading spaces are skipped, a space run collapses to one and
 *     trailing spaces are dropped; spaces become U+2581 and a U+2581 dummy prefix is added.
 *  2. The "optimized" unigram Viterbi (unigram_model.cc, EncodeOptimized): for every character
 *     start, in increasing order, every NORMAL/USER_DEFINED piece that matches there (shortest
 *     first) relaxes the best path ending at its end; a character that no single-character piece
 *     covers gets an unknown node scored min_score - 10. Ties keep the earlier candidate. Scores
 *     are float sums, except that user-defined pieces are scored in double as the library does.
 *     Afterwards (sentencepiece_processor.cc) an unknown piece becomes its UTF-8 bytes as
 *     <0xHH> pieces under byte fallback, else runs of unknown pieces merge into one unk id.
 * Piece lookup uses one open-addressing hash table keyed by (class, bytes) with FNV-1a, which
 * can be extended one byte at a time, so the Viterbi tries all prefix lengths in O(max piece
 * length) per position. Everything read from a file is bounds-checked: a malformed model gives
 * an error, never a crash. */
#include "tokenizer.h"
#include "tokenizer_internal.h"

#include <float.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 as sentencepiece decodes it ---- */

static size_t one_char_len(unsigned char c)
{
	static const unsigned char tbl[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
	return tbl[c >> 4];
}

static bool valid_cp(uint32_t c)
{
	return c < 0xD800 || (c >= 0xE000 && c <= 0x10FFFF);
}

static bool trail(unsigned char c)
{
	return (c & 0xC0) == 0x80;
}

/* Returns the code point, or 0xFFFD with *mblen 1 for invalid input (sentencepiece DecodeUTF8). */
static uint32_t decode_utf8(const unsigned char *s, size_t len, size_t *mblen)
{
	if (s[0] < 0x80) {
		*mblen = 1;
		return s[0];
	} else if (len >= 2 && (s[0] & 0xE0) == 0xC0) {
		uint32_t c = ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
		if (trail(s[1]) && c >= 0x80 && valid_cp(c)) {
			*mblen = 2;
			return c;
		}
	} else if (len >= 3 && (s[0] & 0xF0) == 0xE0) {
		uint32_t c = ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
		if (trail(s[1]) && trail(s[2]) && c >= 0x800 && valid_cp(c)) {
			*mblen = 3;
			return c;
		}
	} else if (len >= 4 && (s[0] & 0xF8) == 0xF0) {
		uint32_t c = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
			     ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
		if (trail(s[1]) && trail(s[2]) && trail(s[3]) && c >= 0x10000 && valid_cp(c)) {
			*mblen = 4;
			return c;
		}
	}
	*mblen = 1;
	return 0xFFFD;
}

/* ---- piece hash table ---- */

#define FNV_PRIME 16777619u
static uint32_t hash_seed(int cls)
{
	return cls ? 0x9747b28cu : 2166136261u;
}
static uint32_t hash_step(uint32_t h, unsigned char c)
{
	return (h ^ c) * FNV_PRIME;
}
/* class 0: pieces the Viterbi sees (normal, user-defined, unused); class 1: the others. */
static int piece_class(int type)
{
	return (type == PT_NORMAL || type == PT_USER || type == PT_UNUSED) ? 0 : 1;
}

static int table_find(const struct tokenizer *t, int cls, uint32_t h, const char *s, size_t len)
{
	for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
		int32_t id = t->table[i];
		if (id < 0)
			return -1;
		if (t->len[id] == len && piece_class(t->type[id]) == cls &&
		    memcmp(t->strs + t->off[id], s, len) == 0)
			return id;
	}
}

static int lookup(const struct tokenizer *t, int cls, const char *s, size_t len)
{
	uint32_t h = hash_seed(cls);
	for (size_t i = 0; i < len; i++)
		h = hash_step(h, (unsigned char)s[i]);
	return table_find(t, cls, h, s, len);
}

int tokenizer_piece_to_id(const struct tokenizer *t, const char *piece, size_t len)
{
	int id = lookup(t, 1, piece, len);
	if (id < 0)
		id = lookup(t, 0, piece, len);
	return id < 0 ? t->unk_id : id;
}

/* Builds the table and every derived field once pieces and trainer fields are in place. */
int tok_finish_model(struct tokenizer *t, char *err, size_t errlen)
{
	uint32_t cap = 16;
	int n_unk = 0;
	while (cap < (uint32_t)t->n * 2u)
		cap <<= 1;
	t->table = malloc(sizeof(*t->table) * cap);
	if (!t->table) {
		wt_seterr(err, errlen, "out of memory for the tokenizer table");
		return -1;
	}
	memset(t->table, 0xff, sizeof(*t->table) * cap);
	t->mask = cap - 1;
	t->min_score = FLT_MAX;
	t->max_score = FLT_MIN; /* sic: sentencepiece starts from FLT_MIN too */
	for (int i = 0; i < 256; i++)
		t->byte_id[i] = -1;
	for (int id = 0; id < t->n; id++) {
		const char *s = t->strs + t->off[id];
		int cls = piece_class(t->type[id]);
		uint32_t h = hash_seed(cls);
		if (t->len[id] == 0) {
			wt_seterr(err, errlen, "piece %d is empty", id);
			return -1;
		}
		for (uint32_t k = 0; k < t->len[id]; k++)
			h = hash_step(h, (unsigned char)s[k]);
		if (table_find(t, cls, h, s, t->len[id]) >= 0) {
			wt_seterr(err, errlen, "piece '%s' is defined twice", s);
			return -1;
		}
		uint32_t i = h & t->mask;
		while (t->table[i] >= 0)
			i = (i + 1) & t->mask;
		t->table[i] = id;
		switch (t->type[id]) {
		case PT_NORMAL:
			if (t->score[id] < t->min_score)
				t->min_score = t->score[id];
			if (t->score[id] > t->max_score)
				t->max_score = t->score[id];
			break;
		case PT_UNKNOWN:
			t->unk_id = id;
			n_unk++;
			break;
		case PT_USER:
			if (t->len[id] > t->max_user_len)
				t->max_user_len = t->len[id];
			break;
		case PT_BYTE: {
			unsigned v;
			char tail;
			if (t->len[id] != 6 || sscanf(s, "<0x%2X%c", &v, &tail) != 2 || tail != '>' || v > 255) {
				wt_seterr(err, errlen, "byte piece '%s' is invalid", s);
				return -1;
			}
			t->byte_id[v] = id;
			break;
		}
		default:
			break;
		}
		if (piece_class(t->type[id]) == 0 && t->len[id] > t->max_len)
			t->max_len = t->len[id];
	}
	if (n_unk != 1) {
		wt_seterr(err, errlen, n_unk ? "the model defines more than one unknown piece"
					   : "the model defines no unknown piece");
		return -1;
	}
	if (t->byte_fallback) {
		for (int i = 0; i < 256; i++)
			if (t->byte_id[i] < 0) {
				wt_seterr(err, errlen, "byte_fallback is on but piece <0x%02X> is missing", i);
				return -1;
			}
	}
	if (t->eos_id == -2) { /* by piece, as SentencePieceProcessor::eos_id does */
		int id = tokenizer_piece_to_id(t, t->eos_piece, strlen(t->eos_piece));
		t->eos_id = id == t->unk_id ? -1 : id;
	}
	if (t->pad_id < 0 || t->pad_id >= t->n)
		t->pad_id = 0;
	return 0;
}

/* ---- the precompiled charsmap ---- */

int tok_set_charsmap(struct tokenizer *t, const unsigned char *blob, size_t len, char *err, size_t errlen)
{
	uint32_t trie_size;
	if (len == 0)
		return 0;
	if (len <= 4) {
		wt_seterr(err, errlen, "the normalization charsmap is broken (%zu bytes)", len);
		return -1;
	}
	trie_size = (uint32_t)blob[0] | (uint32_t)blob[1] << 8 | (uint32_t)blob[2] << 16 | (uint32_t)blob[3] << 24;
	if (trie_size >= len - 4 + 1 || trie_size % 4 || trie_size < 4) {
		wt_seterr(err, errlen, "the normalization charsmap is broken (trie of %u bytes in %zu)", trie_size, len);
		return -1;
	}
	t->trie_units = trie_size / 4;
	t->trie = malloc(trie_size);
	t->repl_len = len - 4 - trie_size;
	t->repl = malloc(t->repl_len + 1);
	if (!t->trie || !t->repl) {
		wt_seterr(err, errlen, "out of memory for the charsmap");
		return -1;
	}
	for (size_t i = 0; i < t->trie_units; i++) {
		const unsigned char *p = blob + 4 + 4 * i;
		t->trie[i] = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
	}
	memcpy(t->repl, blob + 4 + trie_size, t->repl_len);
	t->repl[t->repl_len] = '\0';
	return 0;
}

/* darts-clone unit accessors */
static bool du_has_leaf(uint32_t u) { return (u >> 8) & 1; }
static uint32_t du_value(uint32_t u) { return u & 0x7FFFFFFFu; }
static uint32_t du_label(uint32_t u) { return u & (0x80000000u | 0xFFu); }
static uint32_t du_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }

/* Longest charsmap match at S: returns its length (0 for none) and the replacement offset. */
static size_t charsmap_longest(const struct tokenizer *t, const unsigned char *s, size_t len, uint32_t *value)
{
	size_t best = 0;
	uint32_t id = du_offset(t->trie[0]);
	for (size_t i = 0; i < len; i++) {
		id ^= s[i];
		if (id >= t->trie_units)
			break;
		uint32_t u = t->trie[id];
		if (du_label(u) != s[i])
			break;
		id ^= du_offset(u);
		if (du_has_leaf(u)) {
			if (id >= t->trie_units)
				break;
			best = i + 1;
			*value = du_value(t->trie[id]);
		}
	}
	return best;
}

/* One normalization step: the replacement for the prefix of S in *OUT and *OUTLEN; returns the
 * number of input bytes consumed (>= 1). */
static size_t normalize_prefix(const struct tokenizer *t, const unsigned char *s, size_t len,
			       const char **out, size_t *outlen)
{
	size_t mblen;
	if (t->max_user_len) {
		size_t best = 0;
		uint32_t h = hash_seed(0);
		for (size_t k = 0; k < len && k < t->max_user_len; k++) {
			h = hash_step(h, s[k]);
			int id = table_find(t, 0, h, (const char *)s, k + 1);
			if (id >= 0 && t->type[id] == PT_USER)
				best = k + 1;
		}
		if (best) {
			*out = (const char *)s;
			*outlen = best;
			return best;
		}
	}
	if (t->trie) {
		uint32_t v = 0;
		size_t m = charsmap_longest(t, s, len, &v);
		if (m && v < t->repl_len) {
			*out = t->repl + v;
			*outlen = strlen(t->repl + v);
			return m;
		}
	}
	uint32_t c = decode_utf8(s, len, &mblen);
	if (c == 0xFFFD && mblen != 3) {
		*out = "\xEF\xBF\xBD";
		*outlen = 3;
		return 1;
	}
	*out = (const char *)s;
	*outlen = mblen;
	return mblen;
}

int tok_sb_put(struct sbuf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->n + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
	return 0;
}

#define SPACE_SYM "\xE2\x96\x81"

int tokenizer_normalize(const struct tokenizer *t, const char *text, size_t len, char **out,
			size_t *outlen, char *err, size_t errlen)
{
	const unsigned char *in = (const unsigned char *)text;
	struct sbuf b = {0};
	const char *ws = t->escape_ws ? SPACE_SYM : " ";
	size_t wslen = t->escape_ws ? 3 : 1;
	bool prev_space;
	int rc = -1;

	if (tok_sb_put(&b, "", 0))
		goto oom;
	if (t->remove_extra_ws) {
		while (len) {
			const char *r;
			size_t rl, m = normalize_prefix(t, in, len, &r, &rl);
			if (!(rl == 1 && r[0] == ' '))
				break;
			in += m;
			len -= m;
		}
	}
	if (!len)
		goto done;
	if (!t->ws_suffix && t->add_dummy_prefix && tok_sb_put(&b, ws, wslen))
		goto oom;
	prev_space = t->remove_extra_ws;
	while (len) {
		const char *r;
		size_t rl, m = normalize_prefix(t, in, len, &r, &rl);
		while (prev_space && rl && r[0] == ' ') {
			r++;
			rl--;
		}
		if (rl) {
			for (size_t k = 0; k < rl; k++) {
				if (t->escape_ws && r[k] == ' ') {
					if (tok_sb_put(&b, SPACE_SYM, 3))
						goto oom;
				} else if (tok_sb_put(&b, r + k, 1)) {
					goto oom;
				}
			}
			prev_space = r[rl - 1] == ' ';
		}
		in += m;
		len -= m;
		if (!t->remove_extra_ws)
			prev_space = false;
	}
	if (t->remove_extra_ws) {
		while (b.n >= wslen && memcmp(b.p + b.n - wslen, ws, wslen) == 0)
			b.n -= wslen;
		b.p[b.n] = '\0';
	}
	if (t->ws_suffix && t->add_dummy_prefix && tok_sb_put(&b, ws, wslen))
		goto oom;
done:
	*out = b.p;
	*outlen = b.n;
	return 0;
oom:
	wt_seterr(err, errlen, "out of memory while normalizing %zu bytes", len);
	free(b.p);
	return rc;
}

/* ---- Viterbi ---- */

struct best_node {
	int id;
	float score;
	int start;
};

struct ids {
	int32_t *v;
	size_t n, cap;
};

static int ids_push(struct ids *a, int32_t id)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		int32_t *v = realloc(a->v, cap * sizeof(*v));
		if (!v)
			return -1;
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = id;
	return 0;
}

int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, int32_t **out_ids,
		     size_t *out_n, char *err, size_t errlen)
{
	char *norm = NULL;
	size_t size = 0;
	struct best_node *best = NULL;
	int *starts = NULL;
	struct ids res = {0};
	int rc = -1;

	*out_ids = NULL;
	*out_n = 0;
	if (len > (size_t)(INT32_MAX / 4)) {
		wt_seterr(err, errlen, "text of %zu bytes is too long to encode", len);
		return -1;
	}
	if (tokenizer_normalize(t, text, len, &norm, &size, err, errlen))
		return -1;
	if (size == 0) {
		free(norm);
		return 0;
	}
	best = calloc(size + 1, sizeof(*best));
	if (!best)
		goto oom;
	for (size_t i = 0; i <= size; i++)
		best[i].start = -1;
	const float unk_score = t->min_score - 10.0f;
	for (size_t start = 0; start < size;) {
		const float here = best[start].score;
		const size_t mblen = one_char_len((unsigned char)norm[start]) < size - start
					     ? one_char_len((unsigned char)norm[start]) : size - start;
		bool has_single = false;
		uint32_t h = hash_seed(0);
		for (size_t k = start; k < size && k - start < t->max_len; k++) {
			h = hash_step(h, (unsigned char)norm[k]);
			size_t length = k + 1 - start;
			int id = table_find(t, 0, h, norm + start, length);
			if (id < 0 || t->type[id] == PT_UNUSED)
				continue;
			struct best_node *tg = &best[k + 1];
			/* the library's ternary makes this double for every piece */
			double sc = t->type[id] == PT_USER ? (double)((float)length * t->max_score) - 0.1
							   : (double)t->score[id];
			double cand = sc + (double)here;
			if (tg->start == -1 || cand > (double)tg->score) {
				tg->score = (float)cand;
				tg->start = (int)start;
				tg->id = id;
			}
			if (length == mblen)
				has_single = true;
		}
		if (!has_single) {
			struct best_node *tg = &best[start + mblen];
			float cand = unk_score + here;
			if (tg->start == -1 || cand > tg->score) {
				tg->score = cand;
				tg->start = (int)start;
				tg->id = t->unk_id;
			}
		}
		start += mblen;
	}
	/* backtrack into STARTS (reversed), then emit forwards */
	size_t npieces = 0;
	starts = malloc(sizeof(*starts) * (size + 1));
	if (!starts)
		goto oom;
	for (int end = (int)size; end > 0; end = best[end].start) {
		if (best[end].start < 0 || best[end].start >= end) {
			wt_seterr(err, errlen, "internal error: broken Viterbi path at byte %d", end);
			goto out;
		}
		starts[npieces++] = end;
	}
	bool prev_unk = false;
	for (size_t k = npieces; k-- > 0;) {
		int end = starts[k];
		int s = best[end].start, id = best[end].id;
		bool is_unk = id == t->unk_id;
		if (is_unk && t->byte_fallback) {
			for (int i = s; i < end; i++)
				if (ids_push(&res, t->byte_id[(unsigned char)norm[i]]))
					goto oom;
		} else if (!(is_unk && prev_unk)) {
			if (ids_push(&res, id))
				goto oom;
		}
		prev_unk = is_unk;
	}
	*out_ids = res.v;
	*out_n = res.n;
	res.v = NULL;
	rc = 0;
	goto out;
oom:
	wt_seterr(err, errlen, "out of memory while encoding %zu bytes", len);
out:
	free(res.v);
	free(starts);
	free(best);
	free(norm);
	return rc;
}

void tokenizer_free(struct tokenizer *t)
{
	if (!t)
		return;
	free(t->strs);
	free(t->off);
	free(t->len);
	free(t->score);
	free(t->type);
	free(t->table);
	free(t->trie);
	free(t->repl);
	free(t);
}

int tokenizer_vocab_size(const struct tokenizer *t) { return t->n; }
int tokenizer_eos_id(const struct tokenizer *t) { return t->eos_id; }
int tokenizer_pad_id(const struct tokenizer *t) { return t->pad_id; }
int tokenizer_unk_id(const struct tokenizer *t) { return t->unk_id; }

const char *tokenizer_piece(const struct tokenizer *t, int id)
{
	return id >= 0 && id < t->n ? t->strs + t->off[id] : NULL;
}

/* ---- the Wan call ---- */

static int encode_wan(const struct tokenizer *t, const char *text, int32_t **ids, size_t *n, char *err,
		      size_t errlen)
{
	char *clean = tokenizer_clean_text(text, strlen(text));
	int rc;
	if (!clean) {
		wt_seterr(err, errlen, "out of memory while cleaning the text");
		return -1;
	}
	rc = tokenizer_encode(t, clean, strlen(clean), ids, n, err, errlen);
	free(clean);
	if (!rc && t->eos_id < 0) {
		wt_seterr(err, errlen, "the tokenizer has no EOS piece '</s>'");
		free(*ids);
		*ids = NULL;
		rc = -1;
	}
	return rc;
}

int tokenizer_encode_wan(const struct tokenizer *t, const char *text, int max_len, int64_t *ids,
			 int64_t *mask, int *n_real, char *err, size_t errlen)
{
	int32_t *v = NULL;
	size_t n = 0;
	if (max_len < 1) {
		wt_seterr(err, errlen, "max_len must be at least 1 (got %d)", max_len);
		return -1;
	}
	if (encode_wan(t, text, &v, &n, err, errlen))
		return -1;
	if (n > (size_t)max_len - 1)
		n = (size_t)max_len - 1;
	for (int i = 0; i < max_len; i++) {
		int64_t id = (size_t)i < n ? v[i] : (size_t)i == n ? t->eos_id : t->pad_id;
		if (ids)
			ids[i] = id;
		if (mask)
			mask[i] = (size_t)i <= n;
	}
	if (n_real)
		*n_real = (int)n + 1;
	free(v);
	return 0;
}

int tokenizer_encode_wan_alloc(const struct tokenizer *t, const char *text, int64_t **ids, size_t *n,
			       char *err, size_t errlen)
{
	int32_t *v = NULL;
	size_t m = 0;
	*ids = NULL;
	*n = 0;
	if (encode_wan(t, text, &v, &m, err, errlen))
		return -1;
	*ids = malloc((m + 1) * sizeof(**ids));
	if (!*ids) {
		free(v);
		wt_seterr(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < m; i++)
		(*ids)[i] = v[i];
	(*ids)[m] = t->eos_id;
	*n = m + 1;
	free(v);
	return 0;
}
