/* tokenizer_clean.c: Wan's prompt cleaning before tokenization.
 *
 * Upstream (`wan/modules/tokenizers.py`, clean='whitespace') runs
 *     text = ftfy.fix_text(text); text = html.unescape(html.unescape(text)); text = text.strip()
 *     text = re.sub(r'\s+', ' ', text).strip()
 * This file reproduces, on code points:
 *  - the ftfy 6 fixes that change what the tokenizer sees, per line segment and repeated until
 *    nothing changes, as ftfy does: its HTML unescaping (until the first segment holding '<';
 *    `&name;` with the semicolon, ftfy's upper-case variants, `&#...;`), terminal escape removal,
 *    C1 controls read as Windows-1252, Latin ligatures, half/full-width forms, curly quotes
 *    made straight, line breaks, and the removal of the control characters ftfy drops;
 *  - Python's html.unescape (HTML5 names, the longest-prefix rule for names without ';',
 *    numeric references with the HTML5 fix-ups), twice;
 *  - strip and the collapse of `\s+` with Python's definition of whitespace (str.isspace).
 * Not reproduced (README lists them): ftfy's mojibake repair (fix_encoding and its helpers) and
 * its NFC normalization (the tokenizer's NFKC charsmap subsumes it).
 * Invalid UTF-8 input bytes become U+FFFD. */
#include "tokenizer.h"
#include "tokenizer_html.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct cps {
	uint32_t *v;
	size_t n, cap;
};

static int cp_push(struct cps *b, uint32_t c)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		uint32_t *v = realloc(b->v, cap * sizeof(*v));
		if (!v)
			return -1;
		b->v = v;
		b->cap = cap;
	}
	b->v[b->n++] = c;
	return 0;
}

/* Strict UTF-8 decoding; each invalid byte becomes U+FFFD. */
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *out)
{
	unsigned char c = s[0];
	size_t need;
	uint32_t cp, min;
	if (c < 0x80) {
		*out = c;
		return 1;
	} else if ((c & 0xE0) == 0xC0) {
		need = 2, cp = c & 0x1F, min = 0x80;
	} else if ((c & 0xF0) == 0xE0) {
		need = 3, cp = c & 0x0F, min = 0x800;
	} else if ((c & 0xF8) == 0xF0) {
		need = 4, cp = c & 0x07, min = 0x10000;
	} else {
		goto bad;
	}
	if (len < need)
		goto bad;
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xC0) != 0x80)
			goto bad;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		goto bad;
	*out = cp;
	return need;
bad:
	*out = 0xFFFD;
	return 1;
}

static int decode_str(const char *s, size_t len, struct cps *out)
{
	const unsigned char *p = (const unsigned char *)s;
	while (len) {
		uint32_t c;
		size_t m = utf8_decode(p, len, &c);
		if (cp_push(out, c))
			return -1;
		p += m;
		len -= m;
	}
	return 0;
}

static size_t utf8_encode(uint32_t c, char *o)
{
	if (c < 0x80) {
		o[0] = (char)c;
		return 1;
	} else if (c < 0x800) {
		o[0] = (char)(0xC0 | (c >> 6));
		o[1] = (char)(0x80 | (c & 0x3F));
		return 2;
	} else if (c < 0x10000) {
		o[0] = (char)(0xE0 | (c >> 12));
		o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
		o[2] = (char)(0x80 | (c & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | (c >> 18));
	o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
	o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
	o[3] = (char)(0x80 | (c & 0x3F));
	return 4;
}

/* UTF-8 of V[0..N) into a new NUL-terminated string. */
static char *encode_str(const uint32_t *v, size_t n)
{
	char *s = malloc(n * 4 + 1), *o = s;
	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++)
		o += utf8_encode(v[i], o);
	*o = '\0';
	return s;
}

static int push_utf8(struct cps *b, const char *s)
{
	return decode_str(s, strlen(s), b);
}

static const char *entity_find(const struct tok_html_entity *tab, size_t count, const char *name)
{
	size_t lo = 0, hi = count;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(tab[mid].name, name);
		if (c == 0)
			return tab[mid].value;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static bool u32_in(const uint32_t *tab, size_t count, uint32_t c)
{
	size_t lo = 0, hi = count;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (tab[mid] == c)
			return true;
		if (tab[mid] < c)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static bool py_isspace(uint32_t c)
{
	return u32_in(tok_py_spaces, tok_py_spaces_count, c);
}

static bool is_digit(uint32_t c) { return c >= '0' && c <= '9'; }
static bool is_hex(uint32_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static bool is_alnum(uint32_t c) { return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* Python html._replace_charref for a numeric reference. */
static int push_charref(struct cps *o, uint64_t num)
{
	for (size_t i = 0; i < tok_html_invalid_charrefs_count; i++)
		if (tok_html_invalid_charrefs[i].num == num)
			return push_utf8(o, tok_html_invalid_charrefs[i].value);
	if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF)
		return cp_push(o, 0xFFFD);
	if (u32_in(tok_html_invalid_codepoints, tok_html_invalid_codepoints_count, (uint32_t)num))
		return 0;
	return cp_push(o, (uint32_t)num);
}

/* Parses digits at V[i..n) in BASE, saturating; returns the index after them. */
static size_t parse_num(const uint32_t *v, size_t i, size_t n, int base, uint64_t *num)
{
	uint64_t x = 0;
	for (; i < n && (base == 16 ? is_hex(v[i]) : is_digit(v[i])); i++) {
		uint32_t c = v[i];
		uint32_t d = is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
		x = x > 0xFFFFFFFFull ? x : x * (uint64_t)base + d;
	}
	*num = x;
	return i;
}

/* Python's html.unescape. Returns 0, or -1 when out of memory. */
static int html_unescape(const struct cps *in, struct cps *o)
{
	const uint32_t *v = in->v;
	size_t n = in->n;
	char name[32 * 4 + 2];
	for (size_t i = 0; i < n;) {
		if (v[i] != '&') {
			if (cp_push(o, v[i++]))
				return -1;
			continue;
		}
		size_t j = i + 1;
		if (j < n && v[j] == '#') {
			uint64_t num;
			size_t k;
			if (j + 2 < n && (v[j + 1] == 'x' || v[j + 1] == 'X') && is_hex(v[j + 2]))
				k = parse_num(v, j + 2, n, 16, &num);
			else if (j + 1 < n && is_digit(v[j + 1]))
				k = parse_num(v, j + 1, n, 10, &num);
			else {
				if (cp_push(o, v[i++]))
					return -1;
				continue;
			}
			if (k < n && v[k] == ';')
				k++;
			if (push_charref(o, num))
				return -1;
			i = k;
			continue;
		}
		/* [^\t\n\f <&#;]{1,32};? */
		size_t k = j, nl = 0;
		while (k < n && k - j < 32 && v[k] != '\t' && v[k] != '\n' && v[k] != '\f' && v[k] != ' ' &&
		       v[k] != '<' && v[k] != '&' && v[k] != '#' && v[k] != ';')
			nl += utf8_encode(v[k++], name + nl);
		if (k == j) {
			if (cp_push(o, v[i++]))
				return -1;
			continue;
		}
		bool semi = k < n && v[k] == ';';
		size_t ncp = k - j + semi; /* code points in s */
		if (semi)
			name[nl++] = ';';
		name[nl] = '\0';
		const char *val = entity_find(tok_html_entities, tok_html_entities_count, name);
		if (val) {
			if (push_utf8(o, val))
				return -1;
			i = k + semi;
			continue;
		}
		/* longest prefix s[:x], x from len(s)-1 down to 2 code points */
		bool done = false;
		for (size_t x = ncp - 1; x >= 2 && !done; x--) {
			size_t bl = 0;
			for (size_t q = 0; q < x; q++)
				bl += utf8_encode(v[j + q], name + bl);
			name[bl] = '\0';
			val = entity_find(tok_html_entities, tok_html_entities_count, name);
			if (val) {
				if (push_utf8(o, val))
					return -1;
				for (size_t q = x; q < ncp; q++)
					if (cp_push(o, v[j + q]))
						return -1;
				done = true;
			}
		}
		if (!done)
			for (size_t q = i; q < k + semi; q++)
				if (cp_push(o, v[q]))
					return -1;
		i = k + semi;
	}
	return 0;
}

/* ftfy.fixes.unescape_html: `&#?[0-9A-Za-z]{1,24};` through ftfy's table. */
static int ftfy_unescape(const struct cps *in, struct cps *o)
{
	const uint32_t *v = in->v;
	size_t n = in->n;
	for (size_t i = 0; i < n;) {
		size_t j = i + 1, k;
		if (v[i] != '&')
			goto literal;
		if (j < n && v[j] == '#')
			j++;
		for (k = j; k < n && k - j < 24 && is_alnum(v[k]); k++)
			;
		if (k == j || k >= n || v[k] != ';')
			goto literal;
		char name[32];
		size_t nl = 0;
		for (size_t q = i + 1; q <= k; q++)
			name[nl++] = (char)v[q];
		name[nl] = '\0';
		const char *val = name[0] == '#' ? NULL
						 : entity_find(tok_ftfy_entities, tok_ftfy_entities_count, name);
		if (val) {
			if (push_utf8(o, val))
				return -1;
		} else if (name[0] == '#') {
			struct cps ref = {(uint32_t *)v + i, k + 1 - i, 0}, un = {0};
			bool has_semi = false;
			if (html_unescape(&ref, &un)) {
				free(un.v);
				return -1;
			}
			for (size_t q = 0; q < un.n; q++)
				has_semi |= un.v[q] == ';';
			const struct cps *src = has_semi ? &ref : &un;
			for (size_t q = 0; q < src->n; q++)
				if (cp_push(o, src->v[q])) {
					free(un.v);
					return -1;
				}
			free(un.v);
		} else {
			for (size_t q = i; q <= k; q++)
				if (cp_push(o, v[q]))
					return -1;
		}
		i = k + 1;
		continue;
literal:
		if (cp_push(o, v[i++]))
			return -1;
	}
	return 0;
}

static const char *ligature(uint32_t c)
{
	switch (c) {
	case 0x0132: return "IJ";
	case 0x0133: return "ij";
	case 0x0149: return "\xCA\xBCn";
	case 0x01C4: return "D\xC5\xBD";
	case 0x01C5: return "D\xC5\xBE";
	case 0x01C6: return "d\xC5\xBE";
	case 0x01C7: return "LJ";
	case 0x01C8: return "Lj";
	case 0x01C9: return "lj";
	case 0x01CA: return "NJ";
	case 0x01CB: return "Nj";
	case 0x01CC: return "nj";
	case 0x01F1: return "DZ";
	case 0x01F2: return "Dz";
	case 0x01F3: return "dz";
	case 0xFB00: return "ff";
	case 0xFB01: return "fi";
	case 0xFB02: return "fl";
	case 0xFB03: return "ffi";
	case 0xFB04: return "ffl";
	case 0xFB05: return "\xC5\xBFt";
	case 0xFB06: return "st";
	default: return NULL;
	}
}

/* ftfy.fixes.fix_character_width: U+3000 and the half/full-width forms, as NFKC maps them. */
static const char *width_form(uint32_t c)
{
	size_t lo = 0, hi = tok_ftfy_width_count;
	if (c != 0x3000 && (c < 0xFF01 || c > 0xFFEF))
		return NULL;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (tok_ftfy_width[mid].num == c)
			return tok_ftfy_width[mid].value;
		if (tok_ftfy_width[mid].num < c)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static bool ftfy_control(uint32_t c)
{
	return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
	       (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

/* The character-level ftfy fixes, in ftfy's order. */
static int ftfy_chars(const struct cps *in, struct cps *o)
{
	const uint32_t *v = in->v;
	size_t n = in->n;
	for (size_t i = 0; i < n; i++) {
		uint32_t c = v[i];
		/* remove_terminal_escapes: \033\[[0-9;]*[a-zA-Z] */
		if (c == 0x1B && i + 1 < n && v[i + 1] == '[') {
			size_t k = i + 2;
			while (k < n && (is_digit(v[k]) || v[k] == ';'))
				k++;
			if (k < n && ((v[k] | 0x20) >= 'a' && (v[k] | 0x20) <= 'z')) {
				i = k;
				continue;
			}
		}
		if (c >= 0x80 && c <= 0x9F) { /* fix_c1_controls: sloppy windows-1252 */
			for (size_t q = 0; q < tok_html_invalid_charrefs_count; q++)
				if (tok_html_invalid_charrefs[q].num == c) {
					if (push_utf8(o, tok_html_invalid_charrefs[q].value))
						return -1;
					goto next;
				}
		}
		const char *lig = ligature(c);
		if (!lig)
			lig = width_form(c);
		if (lig) {
			if (push_utf8(o, lig))
				return -1;
			continue;
		}
		if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B))
			c = '\'';
		else if (c >= 0x201C && c <= 0x201F)
			c = '"';
		if (c == '\r' && i + 1 < n && v[i + 1] == '\n')
			continue; /* fix_line_breaks: \r\n -> \n */
		if (c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85)
			c = '\n';
		if (ftfy_control(c))
			continue;
		if (cp_push(o, c))
			return -1;
next:;
	}
	return 0;
}

static bool same(const struct cps *a, const struct cps *b)
{
	return a->n == b->n && (a->n == 0 || !memcmp(a->v, b->v, a->n * sizeof(*a->v)));
}

/* Replaces *A by the output of F on it. */
static int apply(int (*f)(const struct cps *, struct cps *), struct cps *a)
{
	struct cps o = {0};
	if (cp_push(&o, 0))
		return -1;
	o.n = 0;
	if (f(a, &o)) {
		free(o.v);
		return -1;
	}
	free(a->v);
	*a = o;
	return 0;
}

/* ftfy.fix_and_explain on one segment: the fixes, repeated until the text stops changing
 * (every round that changes something rewrites it toward a fixpoint; 16 rounds is far past any
 * real input's). */
static int ftfy_segment(struct cps *a, bool unescape)
{
	struct cps prev = {0};
	int rc = -1;
	for (int round = 0; round < 16; round++) {
		free(prev.v);
		prev.v = malloc((a->n + 1) * sizeof(*a->v));
		if (!prev.v)
			goto out;
		memcpy(prev.v, a->v, a->n * sizeof(*a->v));
		prev.n = prev.cap = a->n;
		if (unescape && apply(ftfy_unescape, a))
			goto out;
		if (apply(ftfy_chars, a))
			goto out;
		if (same(a, &prev))
			break;
	}
	rc = 0;
out:
	free(prev.v);
	return rc;
}

char *tokenizer_clean_text(const char *text, size_t len)
{
	struct cps a = {0}, all = {0}, seg = {0};
	char *out = NULL;
	bool lt = false;
	size_t lo, hi, w = 0;

	if (decode_str(text, len, &a) || cp_push(&all, 0))
		goto out;
	all.n = 0;
	/* ftfy.fix_text: segments end after each '\n'; HTML unescaping stops for good at the first
	 * segment that contains '<' (checked before fixing, as ftfy does). */
	for (size_t pos = 0; pos < a.n;) {
		size_t brk = pos;
		while (brk < a.n && a.v[brk] != '\n')
			brk++;
		if (brk < a.n)
			brk++;
		seg.n = 0;
		for (size_t i = pos; i < brk; i++) {
			lt |= a.v[i] == '<';
			if (cp_push(&seg, a.v[i]))
				goto out;
		}
		if (ftfy_segment(&seg, !lt))
			goto out;
		for (size_t i = 0; i < seg.n; i++)
			if (cp_push(&all, seg.v[i]))
				goto out;
		pos = brk;
	}
	if (apply(html_unescape, &all) || apply(html_unescape, &all))
		goto out;
	/* strip, collapse \s+ to ' ', strip */
	for (lo = 0; lo < all.n && py_isspace(all.v[lo]); lo++)
		;
	for (hi = all.n; hi > lo && py_isspace(all.v[hi - 1]); hi--)
		;
	for (size_t i = lo; i < hi; i++) {
		if (!py_isspace(all.v[i]))
			all.v[w++] = all.v[i];
		else if (all.v[w - 1] != ' ' || !py_isspace(all.v[i - 1]))
			all.v[w++] = ' ';
	}
	out = encode_str(all.v, w);
out:
	free(seg.v);
	free(all.v);
	free(a.v);
	return out;
}
