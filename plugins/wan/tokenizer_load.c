/* tokenizer_load.c: reading sentencepiece models (protobuf, parsed by hand) and Hugging Face
 * tokenizer.json files (jansson) into a struct tokenizer. Every length read from a file is
 * bounds-checked; a malformed file gives an error, never a crash. */
#include "tokenizer.h"
#include "tokenizer_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

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
		wt_seterr(err, errlen, t->n >= TOK_MAX_PIECES ? "the model has too many pieces"
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
	if (tok_sb_put(&acc->strs, s, len) || tok_sb_put(&acc->strs, "", 1))
		goto oom;
	t->len[t->n] = (uint32_t)len;
	t->score[t->n] = score;
	t->type[t->n] = (uint8_t)type;
	t->n++;
	return 0;
oom:
	wt_seterr(err, errlen, "out of memory for %d pieces", t->n);
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
		wt_seterr(err, errlen, "piece %d has unknown type %d", t->n, type);
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
		wt_seterr(err, errlen, "out of memory");
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
		wt_seterr(err, errlen, "the sentencepiece model is of type %d, not unigram", model_type);
		goto fail;
	}
	if (t->n == 0) {
		wt_seterr(err, errlen, "the sentencepiece model has no pieces");
		goto fail;
	}
	t->strs = acc.strs.p;
	acc.strs.p = NULL;
	/* the EOS id is that of trainer_spec.eos_piece, as SentencePieceProcessor::eos_id finds it */
	t->pad_id = (int)(pad_id >= 0 && pad_id < t->n ? pad_id : -1);
	if (charsmap.p && tok_set_charsmap(t, charsmap.p, (size_t)(charsmap.end - charsmap.p), err, errlen))
		goto fail;
	if (tok_finish_model(t, err, errlen))
		goto fail;
	return t;
bad:
	wt_seterr(err, errlen, "not a valid sentencepiece model (malformed protobuf)");
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
		wt_seterr(err, errlen, "cannot parse '%s': %s (line %d)", path, je.text, je.line);
		return NULL;
	}
	model = json_object_get(root, "model");
	vocab = json_object_get(model, "vocab");
	if (!json_is_object(model) || !json_is_string(json_object_get(model, "type")) ||
	    strcmp(json_string_value(json_object_get(model, "type")), "Unigram") || !json_is_array(vocab)) {
		wt_seterr(err, errlen, "'%s' is not a Unigram tokenizer.json (model.type/model.vocab)", path);
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
			wt_seterr(err, errlen, "'%s': vocab entry %zu is not [piece, score]", path, i);
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
			wt_seterr(err, errlen, "'%s': precompiled_charsmap is not base64", path);
			goto fail;
		}
		if (tok_set_charsmap(t, blob, blen, err, errlen))
			goto fail;
	}
	if (tok_finish_model(t, err, errlen))
		goto fail;
	free(blob);
	json_decref(root);
	return t;
oom:
	wt_seterr(err, errlen, "out of memory loading '%s'", path);
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
				wt_seterr(err, errlen, "no spiece.model or tokenizer.json in '%s' (the umT5 tokenizer "
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
		wt_seterr(err, errlen, "cannot open tokenizer '%s': %s (get spiece.model from "
			"Wan2.1-T2V-*/google/umt5-xxl/)", path, strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		wt_seterr(err, errlen, "cannot read tokenizer '%s': %s", path, strerror(errno));
		goto out;
	}
	if ((unsigned long)sz > TOK_MAX_FILE || sz == 0) {
		wt_seterr(err, errlen, "tokenizer '%s' has an implausible size (%ld bytes)", path, sz);
		goto out;
	}
	data = malloc((size_t)sz);
	if (!data || fread(data, 1, (size_t)sz, f) != (size_t)sz) {
		wt_seterr(err, errlen, "cannot read tokenizer '%s'", path);
		goto out;
	}
	t = tokenizer_load_spm_buffer(data, (size_t)sz, err, errlen);
	if (!t && err && errlen) {
		snprintf(buf, sizeof(buf), "%s", err);
		wt_seterr(err, errlen, "'%s': %s", path, buf);
	}
out:
	free(data);
	fclose(f);
	return t;
}

