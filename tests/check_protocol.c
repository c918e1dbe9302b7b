/* check_protocol.c: WebSocket message parsing (server/protocol.c) and the handshake
 * key (server/ws.c). */
#include "config.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check_util.h"
#include "http.h"
#include "protocol.h"
#include "ws.h"

START_TEST(binary_header_roundtrip)
{
	uint8_t buf[PROTO_BIN_HEADER + 3];
	uint32_t id;
	double ts;
	const uint8_t *jpeg;
	size_t n;
	char err[128];

	proto_write_binary_header(buf, 0xA1B2C3D4u, 1712345678901.25);
	memcpy(buf + PROTO_BIN_HEADER, "\xff\xd8\xff", 3);
	ck_assert_int_eq(memcmp(buf, "HRF1", 4), 0);
	/* id is big-endian */
	ck_assert_int_eq(buf[4], 0xA1);
	ck_assert_int_eq(buf[7], 0xD4);
	ck_assert_int_eq(proto_parse_binary(buf, sizeof(buf), &id, &ts, &jpeg, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(id, 0xA1B2C3D4u);
	ck_assert(ts == 1712345678901.25);
	ck_assert_ptr_eq(jpeg, buf + PROTO_BIN_HEADER);
	ck_assert_uint_eq(n, 3);
}
END_TEST

START_TEST(binary_header_float_is_big_endian)
{
	/* 1.0 as IEEE float64 big-endian is 3F F0 00 .. 00 */
	uint8_t buf[PROTO_BIN_HEADER];
	proto_write_binary_header(buf, 1, 1.0);
	ck_assert_int_eq(buf[8], 0x3F);
	ck_assert_int_eq(buf[9], 0xF0);
	for (int i = 10; i < 16; i++)
		ck_assert_int_eq(buf[i], 0);
}
END_TEST

START_TEST(binary_header_refusals)
{
	uint8_t buf[32] = "HRF1";
	uint32_t id;
	double ts;
	const uint8_t *jpeg;
	size_t n;
	char err[128];

	ck_assert_int_eq(proto_parse_binary(buf, 10, &id, &ts, &jpeg, &n, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "shorter"));
	ck_assert_int_eq(proto_parse_binary(buf, 16, &id, &ts, &jpeg, &n, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "no JPEG"));
	memcpy(buf, "GIF8", 4);
	ck_assert_int_eq(proto_parse_binary(buf, 32, &id, &ts, &jpeg, &n, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "magic"));
	proto_write_binary_header(buf, 1, NAN);
	ck_assert_int_eq(proto_parse_binary(buf, 32, &id, &ts, &jpeg, &n, err, sizeof(err)), -1);
}
END_TEST

static int parse(const char *text, struct proto_msg *m, char *err)
{
	return proto_parse_message(text, strlen(text), m, err, 200);
}

START_TEST(messages_parse)
{
	struct proto_msg m;
	char err[200];
	ck_assert_int_eq(parse("{\"type\":\"config.update\",\"payload\":{\"prompt\":\"x\"}}", &m, err), 0);
	ck_assert_int_eq(m.type, PROTO_CONFIG_UPDATE);
	ck_assert_str_eq(json_string_value(json_object_get(m.payload, "prompt")), "x");
	proto_msg_release(&m);
	ck_assert_int_eq(parse("{\"payload\":{\"preset\":\"A\"},\"type\":\"preset.apply\"}", &m, err), 0);
	ck_assert_int_eq(m.type, PROTO_PRESET_APPLY);
	proto_msg_release(&m);
	ck_assert_int_eq(parse("{\"type\":\"frame\",\"payload\":{\"id\":1,\"image\":\"\"}}", &m, err), 0);
	ck_assert_int_eq(m.type, PROTO_FRAME);
	proto_msg_release(&m);
}
END_TEST

START_TEST(messages_refused)
{
	static const struct { const char *text, *words; } cases[] = {
		{ "{\"type\":\"config.update\",\"payload\":", "not valid JSON" },
		{ "[1,2,3]", "JSON object" },
		{ "{\"payload\":{}}", "no string \"type\"" },
		{ "{\"type\":7,\"payload\":{}}", "no string \"type\"" },
		{ "{\"type\":\"reboot\",\"payload\":{}}", "unknown message type \"reboot\"" },
		{ "{\"type\":\"config.update\"}", "needs an object \"payload\"" },
		{ "{\"type\":\"config.update\",\"payload\":[1]}", "needs an object \"payload\"" },
		{ "{\"type\":\"frame\",\"type\":\"frame\",\"payload\":{}}", "not valid JSON" },
		{ "{\"type\":\"config.update\",\"payload\":{\"a\":\"\xff\xfe\"}}", "not valid JSON" },
	};
	struct proto_msg m;
	char err[200];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_msg(parse(cases[i].text, &m, err) == -1, "accepted %s", cases[i].text);
		ck_assert_msg(strstr(err, cases[i].words) != NULL, "'%s' gave '%s'", cases[i].text, err);
		ck_assert_ptr_null(m.root);
	}
}
END_TEST

START_TEST(deep_nesting_refused)
{
	char text[4096];
	struct proto_msg m;
	char err[200];
	size_t n = 0;
	n += (size_t)sprintf(text, "{\"type\":\"config.update\",\"payload\":");
	for (int i = 0; i < 1000; i++)
		text[n++] = '[';
	for (int i = 0; i < 1000; i++)
		text[n++] = ']';
	text[n++] = '}';
	text[n] = 0;
	ck_assert_int_eq(parse(text, &m, err), -1);
	ck_assert_ptr_nonnull(strstr(err, "deeper"));
	/* brackets inside strings do not count */
	ck_assert_int_eq(proto_json_depth("{\"a\":\"[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[\"}", 36), 1);
}
END_TEST

START_TEST(base64_roundtrip)
{
	for (size_t len = 0; len < 70; len++) {
		uint8_t data[70], *back;
		size_t n, m;
		char *b64;
		for (size_t i = 0; i < len; i++)
			data[i] = (uint8_t)(i * 37 + 11);
		b64 = proto_base64_encode(data, len, &n);
		ck_assert_uint_eq(n, strlen(b64));
		ck_assert_uint_eq(n % 4, 0);
		back = proto_base64_decode(b64, n, &m);
		ck_assert_ptr_nonnull(back);
		ck_assert_uint_eq(m, len);
		ck_assert_int_eq(memcmp(back, data, len), 0);
		free(back);
		free(b64);
	}
	ck_assert_ptr_null(proto_base64_decode("ab$d", 4, &(size_t){ 0 }));
	ck_assert_ptr_null(proto_base64_decode("abcde", 5, &(size_t){ 0 }));
}
END_TEST

START_TEST(frame_payload)
{
	json_t *p = json_pack("{s:i,s:f,s:s}", "id", 42, "ts", 99.5, "image", "data:image/jpeg;base64,/9j/AA==");
	uint8_t *jpeg;
	size_t n;
	uint32_t id;
	double ts;
	char err[200];
	ck_assert_int_eq(proto_parse_frame(p, &id, &ts, &jpeg, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(id, 42);
	ck_assert(ts == 99.5);
	ck_assert_uint_eq(n, 4);
	ck_assert_int_eq(jpeg[0], 0xFF);
	ck_assert_int_eq(jpeg[1], 0xD8);
	free(jpeg);
	json_decref(p);
	/* bare base64 is accepted too */
	p = json_pack("{s:i,s:s}", "id", 1, "image", "/9j/AA==");
	ck_assert_int_eq(proto_parse_frame(p, &id, &ts, &jpeg, &n, err, sizeof(err)), 0);
	free(jpeg);
	json_decref(p);
	static const char *bad[] = {
		"{\"image\":\"/9j/\"}", "{\"id\":-1,\"image\":\"/9j/\"}", "{\"id\":1.5,\"image\":\"/9j/\"}",
		"{\"id\":1,\"image\":5}", "{\"id\":1,\"image\":\"data:image/png;base64,AAAA\"}",
		"{\"id\":1,\"image\":\"not base64!\"}", "{\"id\":1,\"image\":\"\"}", "{\"id\":1,\"ts\":\"now\",\"image\":\"/9j/\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p = json_loads(bad[i], 0, NULL);
		ck_assert_msg(proto_parse_frame(p, &id, &ts, &jpeg, &n, err, sizeof(err)) == -1, "accepted %s", bad[i]);
		ck_assert_ptr_null(jpeg);
		json_decref(p);
	}
}
END_TEST

START_TEST(error_message_shape)
{
	size_t n;
	char *text = proto_error("bad \xff input", json_pack("[{s:s,s:s}]", "field", "x", "reason", "y"), &n);
	json_t *j = json_loads(text, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_string_value(json_object_get(j, "type")), "error");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "payload"), "message")), "bad ? input");
	ck_assert_int_eq(json_array_size(json_object_get(json_object_get(j, "payload"), "errors")), 1);
	json_decref(j);
	free(text);
}
END_TEST

START_TEST(handshake_key)
{
	/* the example of RFC 6455 section 1.3 */
	char out[29];
	ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out);
	ck_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}
END_TEST

START_TEST(static_paths)
{
	ck_assert(http_path_safe("/"));
	ck_assert(http_path_safe("/index.html"));
	ck_assert(http_path_safe("/js/app.js"));
	ck_assert(!http_path_safe("/../etc/passwd"));
	ck_assert(!http_path_safe("/js/../../x"));
	ck_assert(!http_path_safe("/.git/config"));
	ck_assert(!http_path_safe("/a\\b"));
	ck_assert(!http_path_safe("relative"));
	ck_assert(!http_path_safe("/a\nb"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("protocol");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, binary_header_roundtrip);
	tcase_add_test(tc, binary_header_float_is_big_endian);
	tcase_add_test(tc, binary_header_refusals);
	tcase_add_test(tc, messages_parse);
	tcase_add_test(tc, messages_refused);
	tcase_add_test(tc, deep_nesting_refused);
	tcase_add_test(tc, base64_roundtrip);
	tcase_add_test(tc, frame_payload);
	tcase_add_test(tc, error_message_shape);
	tcase_add_test(tc, handshake_key);
	tcase_add_test(tc, static_paths);
	suite_add_tcase(s, tc);
	return check_run_suite(s);
}
