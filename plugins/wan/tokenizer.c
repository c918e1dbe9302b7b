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

#include <errno.h>
#include <float.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

enum piece_type { PT_NORMAL = 1, PT_UNKNOWN = 2, PT_CONTROL = 3, PT_USER = 4, PT_UNUSED = 5, PT_BYTE = 6 };

#define TOK_MAX_FILE (1u << 30)   /* 1 GiB: far above any real tokenizer file */
#define TOK_MAX_PIECES (1 << 22)  /* 4M pieces */
#define TOK_MAX_PIECE_LEN 4096

struct tokenizer {
	int n;              /* pieces */
	char *strs;         /* new: all piece strings, NUL-terminated */
	size_t *off;        /* new: [n] offset of each piece in strs */
	uint32_t *len;      /* new: [n] */
	float *score;       /* new: [n] */
	uint8_t *type;      /* new: [n] */
	int32_t *table;     /* new: hash slots holding piece ids, -1 empty */
	uint32_t mask;      /* table size - 1 */
	uint32_t max_len;   /* longest Viterbi piece, bytes */
	uint32_t max_user_len; /* longest user-defined piece, 0 when none */
	int unk_id, eos_id, pad_id;
	char eos_piece[64];  /* trainer_spec.eos_piece, "</s>" by default */
	float min_score, max_score;
	bool byte_fallback;
	int byte_id[256];
	/* normalizer */
	bool add_dummy_prefix, remove_extra_ws, escape_ws, ws_suffix;
	uint32_t *trie;     /* new: double-array units, NULL without a charsmap */
	size_t trie_units;
	char *repl;         /* new: replacement strings */
	size_t repl_len;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

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
static int finish_model(struct tokenizer *t, char *err, size_t errlen)
{
	uint32_t cap = 16;
	int n_unk = 0;
	while (cap < (uint32_t)t->n * 2u)
		cap <<= 1;
	t->table = malloc(sizeof(*t->table) * cap);
	if (!t->table) {
		set_err(err, errlen, "out of memory for the tokenizer table");
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
			set_err(err, errlen, "piece %d is empty", id);
			return -1;
		}
		for (uint32_t k = 0; k < t->len[id]; k++)
			h = hash_step(h, (unsigned char)s[k]);
		if (table_find(t, cls, h, s, t->len[id]) >= 0) {
			set_err(err, errlen, "piece '%s' is defined twice", s);
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
				set_err(err, errlen, "byte piece '%s' is invalid", s);
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
		set_err(err, errlen, n_unk ? "the model defines more than one unknown piece"
					   : "the model defines no unknown piece");
		return -1;
	}
	if (t->byte_fallback) {
		for (int i = 0; i < 256; i++)
			if (t->byte_id[i] < 0) {
				set_err(err, errlen, "byte_fallback is on but piece <0x%02X> is missing", i);
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

static int set_charsmap(struct tokenizer *t, const unsigned char *blob, size_t len, char *err, size_t errlen)
{
	uint32_t trie_size;
	if (len == 0)
		return 0;
	if (len <= 4) {
		set_err(err, errlen, "the normalization charsmap is broken (%zu bytes)", len);
		return -1;
	}
	trie_size = (uint32_t)blob[0] | (uint32_t)blob[1] << 8 | (uint32_t)blob[2] << 16 | (uint32_t)blob[3] << 24;
	if (trie_size >= len - 4 + 1 || trie_size % 4 || trie_size < 4) {
		set_err(err, errlen, "the normalization charsmap is broken (trie of %u bytes in %zu)", trie_size, len);
		return -1;
	}
	t->trie_units = trie_size / 4;
	t->trie = malloc(trie_size);
	t->repl_len = len - 4 - trie_size;
	t->repl = malloc(t->repl_len + 1);
	if (!t->trie || !t->repl) {
		set_err(err, errlen, "out of memory for the charsmap");
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

struct sbuf {
	char *p;
	size_t n, cap;
};

static int sb_put(struct sbuf *b, const char *s, size_t n)
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

	if (sb_put(&b, "", 0))
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
	if (!t->ws_suffix && t->add_dummy_prefix && sb_put(&b, ws, wslen))
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
					if (sb_put(&b, SPACE_SYM, 3))
						goto oom;
				} else if (sb_put(&b, r + k, 1)) {
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
	if (t->ws_suffix && t->add_dummy_prefix && sb_put(&b, ws, wslen))
		goto oom;
done:
	*out = b.p;
	*outlen = b.n;
	return 0;
oom:
	set_err(err, errlen, "out of memory while normalizing %zu bytes", len);
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
		set_err(err, errlen, "text of %zu bytes is too long to encode", len);
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
			set_err(err, errlen, "internal error: broken Viterbi path at byte %d", end);
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
	set_err(err, errlen, "out of memory while encoding %zu bytes", len);
out:
	free(res.v);
	free(starts);
	free(best);
	free(norm);
	return rc;
}

/* ---- loading: sentencepiece protobuf ---- */

struct pb {
	const unsigned char *p, *end;
};

static int pb_varint(struct pb *r, uint64_t *v)
{
	uint64_t x = 0;
	for (int s = 0; s < 70; s += 7) {
		if (r->p >= r->end)
			return -1;
		unsigned char c = *r->p++;
		x |= (uint64_t)(c & 0x7F) << s;
		if (!(c & 0x80)) {
			*v = x;
			return 0;
		}
	}
	return -1;
}

/* Reads the next key; for length-delimited fields *SUB gets the payload. */
static int pb_field(struct pb *r, uint32_t *field, int *wt, uint64_t *v, struct pb *sub)
{
	uint64_t key;
	if (pb_varint(r, &key))
		return -1;
	*field = (uint32_t)(key >> 3);
	*wt = (int)(key & 7);
	switch (*wt) {
	case 0:
		return pb_varint(r, v);
	case 1:
		if (r->end - r->p < 8)
			return -1;
		memcpy(v, r->p, 8);
		r->p += 8;
		return 0;
	case 5: {
		uint32_t x;
		if (r->end - r->p < 4)
			return -1;
		memcpy(&x, r->p, 4);
		r->p += 4;
		*v = x;
		return 0;
	}
	case 2:
		if (pb_varint(r, v) || *v > (uint64_t)(r->end - r->p))
			return -1;
		sub->p = r->p;
		sub->end = r->p + *v;
		r->p += *v;
		return 0;
	default:
		return -1;
	}
}

struct piece_acc {
	struct sbuf strs;
	size_t cap;
};

static int add_piece(struct tokenizer *t, struct piece_acc *acc, const char *s, size_t len, float score,
		     int type, char *err, size_t errlen)
{
	if (t->n >= TOK_MAX_PIECES || len > TOK_MAX_PIECE_LEN || memchr(s, 0, len)) {
		set_err(err, errlen, t->n >= TOK_MAX_PIECES ? "the model has too many pieces"
							     : "piece %d is too long or holds a NUL byte", t->n);
		return -1;
	}
	if ((size_t)t->n == acc->cap) {
		size_t cap = acc->cap ? acc->cap * 2 : 1024;
		size_t *off = realloc(t->off, cap * sizeof(*off));
		if (off)
			t->off = off;
		uint32_t *ln = realloc(t->len, cap * sizeof(*ln));
		if (ln)
			t->len = ln;
		float *sc = realloc(t->score, cap * sizeof(*sc));
		if (sc)
			t->score = sc;
		uint8_t *ty = realloc(t->type, cap);
		if (ty)
			t->type = ty;
		if (!off || !ln || !sc || !ty)
			goto oom;
		acc->cap = cap;
	}
	t->off[t->n] = acc->strs.n;
	if (sb_put(&acc->strs, s, len) || sb_put(&acc->strs, "", 1))
		goto oom;
	t->len[t->n] = (uint32_t)len;
	t->score[t->n] = score;
	t->type[t->n] = (uint8_t)type;
	t->n++;
	return 0;
oom:
	set_err(err, errlen, "out of memory for %d pieces", t->n);
	return -1;
}

static int parse_piece(struct tokenizer *t, struct piece_acc *acc, struct pb r, char *err, size_t errlen)
{
	const char *s = "";
	size_t len = 0;
	float score = 0;
	int type = PT_NORMAL;
	while (r.p < r.end) {
		uint32_t f;
		int wt;
		uint64_t v;
		struct pb sub;
		if (pb_field(&r, &f, &wt, &v, &sub))
			return -1;
		if (f == 1 && wt == 2) {
			s = (const char *)sub.p;
			len = (size_t)v;
		} else if (f == 2 && wt == 5) {
			uint32_t x = (uint32_t)v;
			memcpy(&score, &x, 4);
		} else if (f == 3 && wt == 0) {
			type = (int)v;
		}
	}
	if (type < PT_NORMAL || type > PT_BYTE) {
		set_err(err, errlen, "piece %d has unknown type %d", t->n, type);
		return -2;
	}
	return add_piece(t, acc, s, len, score, type, err, errlen) ? -2 : 0;
}

static struct tokenizer *tok_new(void)
{
	struct tokenizer *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->unk_id = -1;
	t->eos_id = -2;
	snprintf(t->eos_piece, sizeof(t->eos_piece), "</s>");
	t->pad_id = -1;
	t->add_dummy_prefix = t->remove_extra_ws = t->escape_ws = true;
	return t;
}

struct tokenizer *tokenizer_load_spm_buffer(const void *data, size_t len, char *err, size_t errlen)
{
	struct tokenizer *t = tok_new();
	struct piece_acc acc = {{0}, 0};
	struct pb r = {data, (const unsigned char *)data + len};
	struct pb charsmap = {NULL, NULL};
	int model_type = 1;
	int64_t pad_id = -1;

	if (!t) {
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	while (r.p < r.end) {
		uint32_t f;
		int wt, rc;
		uint64_t v;
		struct pb sub;
		if (pb_field(&r, &f, &wt, &v, &sub))
			goto bad;
		if (f == 1 && wt == 2) {
			if ((rc = parse_piece(t, &acc, sub, err, errlen)) == -1)
				goto bad;
			if (rc)
				goto fail;
		} else if ((f == 2 || f == 3) && wt == 2) {
			while (sub.p < sub.end) {
				uint32_t g;
				int wt2;
				uint64_t x;
				struct pb s2;
				if (pb_field(&sub, &g, &wt2, &x, &s2))
					goto bad;
				if (f == 2) { /* TrainerSpec */
					if (g == 3 && wt2 == 0)
						model_type = (int)x;
					else if (g == 35 && wt2 == 0)
						t->byte_fallback = x != 0;
					else if (g == 24 && wt2 == 0)
						t->ws_suffix = x != 0;
					else if (g == 47 && wt2 == 2 && x > 0 && x < sizeof(t->eos_piece))
						snprintf(t->eos_piece, sizeof(t->eos_piece), "%.*s", (int)x, (const char *)s2.p);
					else if (g == 43 && wt2 == 0)
						pad_id = (int32_t)x;
				} else { /* NormalizerSpec */
					if (g == 2 && wt2 == 2)
						charsmap = s2;
					else if (g == 3 && wt2 == 0)
						t->add_dummy_prefix = x != 0;
					else if (g == 4 && wt2 == 0)
						t->remove_extra_ws = x != 0;
					else if (g == 5 && wt2 == 0)
						t->escape_ws = x != 0;
				}
			}
		}
	}
	if (model_type != 1) {
		set_err(err, errlen, "the sentencepiece model is of type %d, not unigram", model_type);
		goto fail;
	}
	if (t->n == 0) {
		set_err(err, errlen, "the sentencepiece model has no pieces");
		goto fail;
	}
	t->strs = acc.strs.p;
	acc.strs.p = NULL;
	/* the EOS id is that of trainer_spec.eos_piece, as SentencePieceProcessor::eos_id finds it */
	t->pad_id = (int)(pad_id >= 0 && pad_id < t->n ? pad_id : -1);
	if (charsmap.p && set_charsmap(t, charsmap.p, (size_t)(charsmap.end - charsmap.p), err, errlen))
		goto fail;
	if (finish_model(t, err, errlen))
		goto fail;
	return t;
bad:
	set_err(err, errlen, "not a valid sentencepiece model (malformed protobuf)");
fail:
	free(acc.strs.p);
	tokenizer_free(t);
	return NULL;
}

/* ---- loading: Hugging Face tokenizer.json ---- */

static int b64_val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

static unsigned char *b64_decode(const char *s, size_t *outlen)
{
	size_t n = strlen(s), o = 0;
	unsigned char *out = malloc(n / 4 * 3 + 3);
	uint32_t acc = 0;
	int bits = 0;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '=')
			break;
		int v = b64_val((unsigned char)s[i]);
		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	*outlen = o;
	return out;
}

/* Finds the Precompiled normalizer in NORM (itself, or inside a Sequence). borrowed */
static const char *find_precompiled(json_t *norm)
{
	const char *type = json_string_value(json_object_get(norm, "type"));
	if (!type)
		return NULL;
	if (!strcmp(type, "Precompiled"))
		return json_string_value(json_object_get(norm, "precompiled_charsmap"));
	if (!strcmp(type, "Sequence")) {
		json_t *arr = json_object_get(norm, "normalizers"), *it;
		size_t i;
		json_array_foreach(arr, i, it) {
			const char *s = find_precompiled(it);
			if (s)
				return s;
		}
	}
	return NULL;
}

static struct tokenizer *load_hf_json(const char *path, char *err, size_t errlen)
{
	json_error_t je;
	json_t *root = json_load_file(path, 0, &je), *model, *vocab, *added, *it;
	struct tokenizer *t = NULL;
	struct piece_acc acc = {{0}, 0};
	unsigned char *blob = NULL;
	size_t i;

	if (!root) {
		set_err(err, errlen, "cannot parse '%s': %s (line %d)", path, je.text, je.line);
		return NULL;
	}
	model = json_object_get(root, "model");
	vocab = json_object_get(model, "vocab");
	if (!json_is_object(model) || !json_is_string(json_object_get(model, "type")) ||
	    strcmp(json_string_value(json_object_get(model, "type")), "Unigram") || !json_is_array(vocab)) {
		set_err(err, errlen, "'%s' is not a Unigram tokenizer.json (model.type/model.vocab)", path);
		goto fail;
	}
	if (!(t = tok_new()))
		goto oom;
	t->byte_fallback = json_is_true(json_object_get(model, "byte_fallback"));
	json_t *unk = json_object_get(model, "unk_id");
	int unk_id = json_is_integer(unk) ? (int)json_integer_value(unk) : -1;
	json_array_foreach(vocab, i, it) {
		const char *s = json_string_value(json_array_get(it, 0));
		json_t *sc = json_array_get(it, 1);
		if (!s || !json_is_number(sc)) {
			set_err(err, errlen, "'%s': vocab entry %zu is not [piece, score]", path, i);
			goto fail;
		}
		int type = (int)i == unk_id ? PT_UNKNOWN : PT_NORMAL;
		unsigned v;
		char tail;
		if (type == PT_NORMAL && t->byte_fallback && strlen(s) == 6 &&
		    sscanf(s, "<0x%2X%c", &v, &tail) == 2 && tail == '>')
			type = PT_BYTE;
		if (add_piece(t, &acc, s, strlen(s), (float)json_number_value(sc), type, err, errlen))
			goto fail;
	}
	t->strs = acc.strs.p;
	acc.strs.p = NULL;
	added = json_object_get(root, "added_tokens");
	json_array_foreach(added, i, it) {
		json_t *jid = json_object_get(it, "id");
		const char *content = json_string_value(json_object_get(it, "content"));
		int id = json_is_integer(jid) ? (int)json_integer_value(jid) : -1;
		if (id < 0 || id >= t->n || !content)
			continue; /* tokens beyond the vocab (extra ids) are never produced by encoding */
		if (id != unk_id && t->type[id] == PT_NORMAL)
			t->type[id] = json_is_true(json_object_get(it, "special")) ? PT_CONTROL : PT_USER;
		if (!strcmp(content, "<pad>"))
			t->pad_id = id;
	}
	json_t *pre = json_object_get(root, "pre_tokenizer");
	if (json_is_object(pre)) {
		json_t *aps = json_object_get(pre, "add_prefix_space");
		const char *ps = json_string_value(json_object_get(pre, "prepend_scheme"));
		if (json_is_false(aps) || (ps && !strcmp(ps, "never")))
			t->add_dummy_prefix = false;
	}
	const char *cm = find_precompiled(json_object_get(root, "normalizer"));
	if (cm && *cm) {
		size_t blen;
		if (!(blob = b64_decode(cm, &blen))) {
			set_err(err, errlen, "'%s': precompiled_charsmap is not base64", path);
			goto fail;
		}
		if (set_charsmap(t, blob, blen, err, errlen))
			goto fail;
	}
	if (finish_model(t, err, errlen))
		goto fail;
	free(blob);
	json_decref(root);
	return t;
oom:
	set_err(err, errlen, "out of memory loading '%s'", path);
fail:
	free(blob);
	free(acc.strs.p);
	tokenizer_free(t);
	json_decref(root);
	return NULL;
}

static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !strcmp(s + a - b, suf);
}

struct tokenizer *tokenizer_load(const char *path, char *err, size_t errlen)
{
	char buf[4096];
	FILE *f;
	unsigned char *data = NULL;
	struct tokenizer *t = NULL;
	long sz;

	if (is_dir(path)) {
		/* tokenizer.json first: it is what upstream's AutoTokenizer (the fast tokenizer) reads */
		snprintf(buf, sizeof(buf), "%s/tokenizer.json", path);
		if (access(buf, R_OK) != 0) {
			snprintf(buf, sizeof(buf), "%s/spiece.model", path);
			if (access(buf, R_OK) != 0) {
				set_err(err, errlen, "no spiece.model or tokenizer.json in '%s' (the umT5 tokenizer "
					"ships in Wan2.1-T2V-*/google/umt5-xxl/)", path);
				return NULL;
			}
		}
		return tokenizer_load(buf, err, errlen);
	}
	if (ends_with(path, ".json"))
		return load_hf_json(path, err, errlen);
	f = fopen(path, "rb");
	if (!f) {
		set_err(err, errlen, "cannot open tokenizer '%s': %s (get spiece.model from "
			"Wan2.1-T2V-*/google/umt5-xxl/)", path, strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		set_err(err, errlen, "cannot read tokenizer '%s': %s", path, strerror(errno));
		goto out;
	}
	if ((unsigned long)sz > TOK_MAX_FILE || sz == 0) {
		set_err(err, errlen, "tokenizer '%s' has an implausible size (%ld bytes)", path, sz);
		goto out;
	}
	data = malloc((size_t)sz);
	if (!data || fread(data, 1, (size_t)sz, f) != (size_t)sz) {
		set_err(err, errlen, "cannot read tokenizer '%s'", path);
		goto out;
	}
	t = tokenizer_load_spm_buffer(data, (size_t)sz, err, errlen);
	if (!t && err && errlen) {
		snprintf(buf, sizeof(buf), "%s", err);
		set_err(err, errlen, "'%s': %s", path, buf);
	}
out:
	free(data);
	fclose(f);
	return t;
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
		set_err(err, errlen, "out of memory while cleaning the text");
		return -1;
	}
	rc = tokenizer_encode(t, clean, strlen(clean), ids, n, err, errlen);
	free(clean);
	if (!rc && t->eos_id < 0) {
		set_err(err, errlen, "the tokenizer has no EOS piece '</s>'");
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
		set_err(err, errlen, "max_len must be at least 1 (got %d)", max_len);
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
		set_err(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < m; i++)
		(*ids)[i] = v[i];
	(*ids)[m] = t->eos_id;
	*n = m + 1;
	free(v);
	return 0;
}
