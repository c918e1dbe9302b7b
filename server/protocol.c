/* protocol.c: WebSocket message encoding and decoding (README "Protocol").
 *
 * DESIGN
 * Everything a client sends is parsed here before any state is touched, with bounds
 * checked first: the binary header is exactly 16 bytes (magic HRF1, frame id uint32 BE,
 * timestamp float64 BE), JSON nesting is bounded before jansson sees the text, the
 * message type must be one of the three the server accepts and the payload an object.
 * The caller turns any failure into an `error` message; nothing else changes. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

static void proto_set_err(char *err, size_t errlen, const char *msg)
{
	if (errlen)
		snprintf(err, errlen, "%s", msg);
}

int proto_parse_binary(const uint8_t *buf, size_t len, uint32_t *id, double *ts, const uint8_t **jpeg,
		       size_t *jpeg_len, char *err, size_t errlen)
{
	uint64_t bits = 0;

	if (len < PROTO_BIN_HEADER) {
		snprintf(err, errlen, "binary message of %zu bytes is shorter than the 16-byte HRF1 header", len);
		return -1;
	}
	if (memcmp(buf, PROTO_MAGIC, 4) != 0) {
		proto_set_err(err, errlen, "binary message does not start with the magic \"HRF1\"");
		return -1;
	}
	*id = (uint32_t)buf[4] << 24 | (uint32_t)buf[5] << 16 | (uint32_t)buf[6] << 8 | buf[7];
	for (int i = 0; i < 8; i++)
		bits = bits << 8 | buf[8 + i];
	memcpy(ts, &bits, sizeof(*ts));
	if (!isfinite(*ts)) {
		proto_set_err(err, errlen, "binary frame timestamp is not a finite number");
		return -1;
	}
	if (len == PROTO_BIN_HEADER) {
		proto_set_err(err, errlen, "binary frame carries no JPEG data after its header");
		return -1;
	}
	*jpeg = buf + PROTO_BIN_HEADER;
	*jpeg_len = len - PROTO_BIN_HEADER;
	return 0;
}

void proto_write_binary_header(uint8_t out[PROTO_BIN_HEADER], uint32_t id, double ts)
{
	uint64_t bits;

	memcpy(out, PROTO_MAGIC, 4);
	out[4] = (uint8_t)(id >> 24);
	out[5] = (uint8_t)(id >> 16);
	out[6] = (uint8_t)(id >> 8);
	out[7] = (uint8_t)id;
	memcpy(&bits, &ts, sizeof(bits));
	for (int i = 0; i < 8; i++)
		out[8 + i] = (uint8_t)(bits >> (56 - 8 * i));
}

int proto_json_depth(const char *text, size_t len)
{
	int depth = 0, max = 0;
	bool in_str = false, esc = false;

	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		if (in_str) {
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"')
				in_str = false;
		} else if (c == '"')
			in_str = true;
		else if (c == '{' || c == '[') {
			if (++depth > max)
				max = depth;
		} else if (c == '}' || c == ']')
			depth--;
	}
	return max;
}

int proto_parse_message(const char *text, size_t len, struct proto_msg *msg, char *err, size_t errlen)
{
	static const char *const names[] = { "config.update", "preset.apply", "frame" };
	json_error_t jerr;
	json_t *root, *type, *payload;
	const char *t;

	memset(msg, 0, sizeof(*msg));
	if (proto_json_depth(text, len) > PROTO_MAX_JSON_DEPTH) {
		snprintf(err, errlen, "message nests JSON deeper than %d levels", PROTO_MAX_JSON_DEPTH);
		return -1;
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		snprintf(err, errlen, "message is not valid JSON: %s at line %d column %d", jerr.text, jerr.line,
			 jerr.column);
		return -1;
	}
	if (!json_is_object(root)) {
		proto_set_err(err, errlen, "message must be a JSON object {\"type\", \"payload\"}");
		goto fail;
	}
	type = json_object_get(root, "type");
	if (!json_is_string(type)) {
		proto_set_err(err, errlen, "message has no string \"type\"");
		goto fail;
	}
	t = json_string_value(type);
	payload = json_object_get(root, "payload");
	for (int i = 0; i < 3; i++) {
		if (strcmp(t, names[i]) == 0) {
			if (!json_is_object(payload)) {
				snprintf(err, errlen, "message \"%s\" needs an object \"payload\"", names[i]);
				goto fail;
			}
			msg->type = (enum proto_type)i;
			msg->root = root;
			msg->payload = payload;
			return 0;
		}
	}
	snprintf(err, errlen, "unknown message type \"%.64s\" (expected config.update, preset.apply or frame)", t);
fail:
	json_decref(root);
	return -1;
}

void proto_msg_release(struct proto_msg *msg)
{
	json_decref(msg->root);
	msg->root = msg->payload = NULL;
}

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *proto_base64_encode(const uint8_t *data, size_t len, size_t *out_len)
{
	size_t n = 4 * ((len + 2) / 3);
	char *out = malloc(n + 1), *p = out;
	size_t i;

	if (!out)
		return NULL;
	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
		*p++ = b64_chars[v >> 18];
		*p++ = b64_chars[(v >> 12) & 63];
		*p++ = b64_chars[(v >> 6) & 63];
		*p++ = b64_chars[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < len ? (uint32_t)data[i + 1] << 8 : 0);
		*p++ = b64_chars[v >> 18];
		*p++ = b64_chars[(v >> 12) & 63];
		*p++ = i + 1 < len ? b64_chars[(v >> 6) & 63] : '=';
		*p++ = '=';
	}
	*p = 0;
	if (out_len)
		*out_len = n;
	return out;
}

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

uint8_t *proto_base64_decode(const char *text, size_t len, size_t *out_len)
{
	uint8_t *out, *p;
	uint32_t acc = 0;
	int bits = 0;

	while (len > 0 && text[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return NULL;
	out = malloc(len * 3 / 4 + 1);
	if (!out)
		return NULL;
	p = out;
	for (size_t i = 0; i < len; i++) {
		int v = b64_value((unsigned char)text[i]);
		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			*p++ = (uint8_t)(acc >> bits);
		}
	}
	*out_len = (size_t)(p - out);
	return out;
}

int proto_parse_frame(const json_t *payload, uint32_t *id, double *ts, uint8_t **jpeg, size_t *jpeg_len,
		      char *err, size_t errlen)
{
	const json_t *jid = json_object_get(payload, "id"), *jts = json_object_get(payload, "ts");
	const json_t *jimg = json_object_get(payload, "image");
	const char *s;
	size_t n;

	*jpeg = NULL;
	if (!json_is_integer(jid) || json_integer_value(jid) < 0 || json_integer_value(jid) > 0xffffffffLL) {
		proto_set_err(err, errlen, "frame \"id\" must be an integer from 0 to 4294967295");
		return -1;
	}
	if (jts && !json_is_number(jts)) {
		proto_set_err(err, errlen, "frame \"ts\" must be a number (client time in ms)");
		return -1;
	}
	if (!json_is_string(jimg)) {
		proto_set_err(err, errlen, "frame \"image\" must be a data URL or base64 string");
		return -1;
	}
	s = json_string_value(jimg);
	n = json_string_length(jimg);
	if (strncmp(s, "data:", 5) == 0) {
		const char *comma = memchr(s, ',', n);
		if (!comma || strncmp(s, "data:image/jpeg;base64,", 23) != 0) {
			proto_set_err(err, errlen, "frame \"image\" data URL must start with data:image/jpeg;base64,");
			return -1;
		}
		n -= (size_t)(comma + 1 - s);
		s = comma + 1;
	}
	*jpeg = proto_base64_decode(s, n, jpeg_len);
	if (!*jpeg) {
		proto_set_err(err, errlen, "frame \"image\" is not valid base64");
		return -1;
	}
	if (*jpeg_len == 0) {
		free(*jpeg);
		*jpeg = NULL;
		proto_set_err(err, errlen, "frame \"image\" is empty");
		return -1;
	}
	*id = (uint32_t)json_integer_value(jid);
	*ts = jts ? json_number_value(jts) : 0;
	return 0;
}

char *proto_message(const char *type, json_t *payload, size_t *len)
{
	json_t *root = json_object();
	char *s;

	json_object_set_new(root, "type", json_string(type));
	json_object_set_new(root, "payload", payload ? payload : json_object());
	s = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(10));
	json_decref(root);
	if (s && len)
		*len = strlen(s);
	return s;
}

char *proto_error(const char *message, json_t *errors, size_t *len)
{
	json_t *p = json_object();
	json_t *m = json_string(message);
	if (!m) { /* not UTF-8 (a client string cut at a limit): keep printable ASCII */
		char buf[512];
		size_t i;
		for (i = 0; message[i] && i + 1 < sizeof(buf); i++)
			buf[i] = (message[i] >= 0x20 && message[i] < 0x7f) ? message[i] : '?';
		buf[i] = 0;
		m = json_string(buf);
	}
	json_object_set_new(p, "message", m);
	json_object_set_new(p, "errors", errors ? errors : json_array());
	return proto_message("error", p, len);
}
