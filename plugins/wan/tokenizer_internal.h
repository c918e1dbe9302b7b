/* tokenizer_internal.h: what tokenizer.c (encoding) and tokenizer_load.c (file formats) share. */
#ifndef HERU_WAN_TOKENIZER_INTERNAL_H
#define HERU_WAN_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wan_err.h"

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

struct sbuf {
	char *p;
	size_t n, cap;
};

/* Appends S[0..N) and keeps the buffer NUL-terminated; 0 or -1 (out of memory). */
int tok_sb_put(struct sbuf *b, const char *s, size_t n);
/* Builds the piece table and derived fields once pieces and trainer fields are set. */
int tok_finish_model(struct tokenizer *t, char *err, size_t errlen);
/* Installs a precompiled charsmap blob (<trie size u32><double array><replacements>). */
int tok_set_charsmap(struct tokenizer *t, const unsigned char *blob, size_t len, char *err, size_t errlen);

#endif
