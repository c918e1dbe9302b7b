/* tokenizer_html.h: tables for HTML character references (see tokenizer_html.c, generated). */
#ifndef HERU_WAN_TOKENIZER_HTML_H
#define HERU_WAN_TOKENIZER_HTML_H

#include <stddef.h>
#include <stdint.h>

struct tok_html_entity {
	const char *name;  /* without '&', with ';' where the reference needs it; sorted bytewise */
	const char *value; /* UTF-8 */
};
struct tok_html_charref {
	uint32_t num;
	const char *value; /* UTF-8 */
};

extern const struct tok_html_entity tok_html_entities[];
extern const size_t tok_html_entities_count;
extern const struct tok_html_charref tok_html_invalid_charrefs[]; /* sorted by num */
extern const size_t tok_html_invalid_charrefs_count;
extern const uint32_t tok_html_invalid_codepoints[]; /* sorted */
extern const size_t tok_html_invalid_codepoints_count;
/* ftfy's entity table: names with ';' only, plus upper-case variants; sorted bytewise */
extern const struct tok_html_entity tok_ftfy_entities[];
extern const size_t tok_ftfy_entities_count;
/* ftfy's fix_character_width map (U+3000 and half/full-width forms), sorted by code point */
extern const struct tok_html_charref tok_ftfy_width[];
extern const size_t tok_ftfy_width_count;
extern const uint32_t tok_py_spaces[]; /* sorted */
extern const size_t tok_py_spaces_count;

#endif
