/* tokenizer.h: the umT5 tokenizer (sentencepiece unigram) in C, as Wan2.1 uses it.
 *
 * Loads a sentencepiece `spiece.model` (protobuf, parsed by hand) or a Hugging Face
 * `tokenizer.json` (Unigram model), and encodes text exactly as sentencepiece 0.1.97 does:
 * the model's precompiled-charsmap normalizer (nmt_nfkc for umT5), dummy prefix, spaces escaped
 * as U+2581, extra whitespace removed, the optimized unigram Viterbi, unknown runs and byte
 * fallback. tokenizer_encode_wan adds Wan's text cleaning, the EOS and padding/truncation to a
 * fixed length, as `HuggingfaceTokenizer(clean='whitespace')` does upstream.
 *
 * A loaded model is immutable: any number of threads may encode with it at once. */
#ifndef HERU_WAN_TOKENIZER_H
#define HERU_WAN_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

struct tokenizer; /* opaque */

/* The Wan / umT5 text length. */
#define TOKENIZER_WAN_LEN 512

/* Opens PATH: a spiece.model, a tokenizer.json, or a directory holding one of them
 * (tokenizer.json is preferred, as upstream's AutoTokenizer reads it). Returns new, or NULL with a
 * one-sentence message in ERR. */
struct tokenizer *tokenizer_load(const char *path, char *err, size_t errlen);
/* Same, from a sentencepiece model already in memory (borrowed; copied as needed). */
struct tokenizer *tokenizer_load_spm_buffer(const void *data, size_t len, char *err, size_t errlen);
void tokenizer_free(struct tokenizer *t);

int tokenizer_vocab_size(const struct tokenizer *t);
int tokenizer_eos_id(const struct tokenizer *t); /* -1 when the model has no EOS piece */
int tokenizer_pad_id(const struct tokenizer *t); /* the model's pad id, else 0 */
int tokenizer_unk_id(const struct tokenizer *t);
/* The piece string of ID (borrowed, NUL-terminated), or NULL when out of range. */
const char *tokenizer_piece(const struct tokenizer *t, int id);
/* The id of PIECE as sentencepiece's PieceToId gives it (unk id when absent). */
int tokenizer_piece_to_id(const struct tokenizer *t, const char *piece, size_t len);

/* Sentencepiece normalization of TEXT[0..LEN) (invalid UTF-8 bytes become U+FFFD). *OUT is new
 * (NUL-terminated, free()), *OUTLEN its length. */
int tokenizer_normalize(const struct tokenizer *t, const char *text, size_t len, char **out,
			size_t *outlen, char *err, size_t errlen);

/* Encodes TEXT[0..LEN) like `spm_encode --output_format=id`: no cleaning, no EOS. *IDS is new
 * (free()), *N the count (0 for empty text; *IDS may then be NULL). */
int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, int32_t **ids,
		     size_t *n, char *err, size_t errlen);

/* Wan's text cleaning (ftfy subset, HTML unescape twice, whitespace collapse and strip; see
 * tokenizer_clean.c and the README). Returns new (free()), or NULL on allocation failure. */
char *tokenizer_clean_text(const char *text, size_t len);

/* The whole Wan tokenizer call: cleans TEXT (NUL-terminated), encodes it, truncates to
 * MAX_LEN - 1 tokens and appends EOS, then pads with the pad id. IDS and MASK (either may be NULL)
 * receive MAX_LEN entries (mask 1 on real tokens, EOS included). *N_REAL gets the number of real
 * tokens. With MAX_LEN 0 nothing is truncated or padded and IDS must hold n + 1 entries: use
 * tokenizer_encode_wan_alloc for that. */
int tokenizer_encode_wan(const struct tokenizer *t, const char *text, int max_len, int64_t *ids,
			 int64_t *mask, int *n_real, char *err, size_t errlen);
/* Cleans, encodes and appends EOS with no truncation or padding; *IDS new (free()). */
int tokenizer_encode_wan_alloc(const struct tokenizer *t, const char *text, int64_t **ids,
			       size_t *n, char *err, size_t errlen);

#endif
