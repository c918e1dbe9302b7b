/* protocol.h: the WebSocket message formats of README "Protocol": JSON messages
 * {"type","payload"}, the 16-byte HRF1 binary frame header, base64 and data URLs.
 * Pure functions, no I/O: safe from any thread. */
#ifndef HERU_PROTOCOL_H
#define HERU_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define PROTO_BIN_HEADER 16
#define PROTO_MAGIC "HRF1"
#define PROTO_MAX_JSON_DEPTH 16

enum proto_type { PROTO_CONFIG_UPDATE, PROTO_PRESET_APPLY, PROTO_FRAME };

struct proto_msg {
	enum proto_type type;
	json_t *root;	 /* new: the parsed message (owns payload) */
	json_t *payload; /* borrowed from root */
};

/* Parse a binary frame. On success *JPEG points into BUF (borrowed). */
int proto_parse_binary(const uint8_t *buf, size_t len, uint32_t *id, double *ts, const uint8_t **jpeg,
		       size_t *jpeg_len, char *err, size_t errlen);
void proto_write_binary_header(uint8_t out[PROTO_BIN_HEADER], uint32_t id, double ts);

/* Parse a text message into MSG (release with proto_msg_release). Refuses invalid
 * UTF-8/JSON, nesting deeper than PROTO_MAX_JSON_DEPTH, a missing or unknown type,
 * and a payload that is not an object. */
int proto_parse_message(const char *text, size_t len, struct proto_msg *msg, char *err, size_t errlen);
void proto_msg_release(struct proto_msg *msg);

/* A "frame" payload: {"id": n, "ts": ms, "image": data URL or base64}. *JPEG is new. */
int proto_parse_frame(const json_t *payload, uint32_t *id, double *ts, uint8_t **jpeg, size_t *jpeg_len,
		      char *err, size_t errlen);

/* base64 (RFC 4648, padding optional on decode, whitespace refused). Returns new or NULL. */
char *proto_base64_encode(const uint8_t *data, size_t len, size_t *out_len);
uint8_t *proto_base64_decode(const char *text, size_t len, size_t *out_len);

/* Serialize {"type": TYPE, "payload": PAYLOAD (steals)} compactly. Returns new (free()). */
char *proto_message(const char *type, json_t *payload, size_t *len);

/* {"message": MESSAGE, "errors": ERRORS (steals, may be NULL)} as an error message. */
char *proto_error(const char *message, json_t *errors, size_t *len);

/* Nesting depth of a JSON text (brackets outside strings); cheap pre-parse bound. */
int proto_json_depth(const char *text, size_t len);

#endif
