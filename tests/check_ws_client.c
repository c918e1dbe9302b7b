/*
 * check_ws_client.c: the CLIs' WebSocket/HTTP client (server/ws_client.c) and their
 * helpers (server/cli_util.c) against a scripted server on a loopback socket:
 * handshake and accept key, fragmented messages, pings, close codes, masking, and
 * a server that answers garbage.
 */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_util.h"
#include "cli_util.h"
#include "ws_client.h"

/* ---- pure functions ---- */

START_TEST(test_accept_key_rfc6455)
{
	char out[29];

	ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out); /* the example of RFC 6455 §1.3 */
	ck_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}
END_TEST

START_TEST(test_url_parse)
{
	struct ws_url u;
	char err[256];

	ck_assert_int_eq(ws_url_parse("http://127.0.0.1:8000", &u, err, sizeof(err)), 0);
	ck_assert_str_eq(u.host, "127.0.0.1");
	ck_assert_str_eq(u.port, "8000");
	ck_assert_str_eq(u.path, "/");
	ck_assert_int_eq(ws_url_parse("ws://example.org/ws/session/main?x=1", &u, err, sizeof(err)), 0);
	ck_assert_str_eq(u.host, "example.org");
	ck_assert_str_eq(u.port, "80");
	ck_assert_str_eq(u.path, "/ws/session/main?x=1");
	ck_assert_int_eq(ws_url_parse("[::1]:9000/a", &u, err, sizeof(err)), 0);
	ck_assert_str_eq(u.host, "::1");
	ck_assert_str_eq(u.port, "9000");
	ck_assert_int_eq(ws_url_parse("https://x", &u, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "unsupported URL"));
	ck_assert_int_eq(ws_url_parse("http://x:80a", &u, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "bad port"));
	ck_assert_int_eq(ws_url_parse("http://:80", &u, err, sizeof(err)), -1);
	ck_assert_int_eq(ws_url_parse("", &u, err, sizeof(err)), -1);
}
END_TEST

START_TEST(test_frame_header_and_percentile)
{
	uint8_t h[CLI_FRAME_HEADER];
	double v[] = { 5, 1, 4, 2, 3 }, ts;
	uint32_t id;

	cli_frame_header(h, 0x01020304u, 1234.5);
	ck_assert(memcmp(h, "HRF1\x01\x02\x03\x04", 8) == 0);
	ck_assert(cli_parse_frame_header(h, sizeof(h), &id, &ts));
	ck_assert_uint_eq(id, 0x01020304u);
	ck_assert(ts == 1234.5);
	ck_assert(!cli_parse_frame_header(h, 15, &id, &ts));
	h[0] = 'X';
	ck_assert(!cli_parse_frame_header(h, sizeof(h), &id, &ts));
	ck_assert(cli_percentile(v, 5, 50) == 3);
	ck_assert(cli_percentile(v, 5, 100) == 5);
	ck_assert(cli_percentile(v, 0, 50) == 0);
}
END_TEST

/* ---- a scripted server ---- */

enum script { SCRIPT_GOOD, SCRIPT_BAD_ACCEPT, SCRIPT_HTTP_404, SCRIPT_GARBAGE };

struct fake {
	int listen_fd;
	char port[8];
	enum script script;
	pthread_t thread;
	/* what the server saw */
	bool pong_ok, text_ok, close_ok, all_masked;
};

static int read_exact(int fd, uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Read one client frame; unmask into payload. Returns the opcode or -1. */
static int read_frame(struct fake *f, int fd, uint8_t *payload, size_t cap, size_t *len)
{
	uint8_t h[14], mask[4];
	uint64_t n;
	size_t i;

	if (read_exact(fd, h, 2) != 0)
		return -1;
	if (!(h[1] & 0x80))
		f->all_masked = false;
	n = h[1] & 0x7f;
	if (n == 126) {
		if (read_exact(fd, h + 2, 2) != 0)
			return -1;
		n = (uint64_t)h[2] << 8 | h[3];
	} else if (n == 127) {
		if (read_exact(fd, h + 2, 8) != 0)
			return -1;
		for (n = 0, i = 0; i < 8; i++)
			n = n << 8 | h[2 + i];
	}
	if (n > cap || read_exact(fd, mask, 4) != 0 || read_exact(fd, payload, (size_t)n) != 0)
		return -1;
	for (i = 0; i < n; i++)
		payload[i] ^= mask[i & 3];
	*len = (size_t)n;
	return h[0] & 0x0f;
}

static void send_frame(int fd, int fin_op, const void *p, size_t n)
{
	uint8_t h[4];
	size_t hl = 2;

	h[0] = (uint8_t)fin_op;
	if (n < 126) {
		h[1] = (uint8_t)n;
	} else {
		h[1] = 126;
		h[2] = (uint8_t)(n >> 8);
		h[3] = (uint8_t)n;
		hl = 4;
	}
	ck_assert_int_eq(write(fd, h, hl), (ssize_t)hl);
	if (n)
		ck_assert_int_eq(write(fd, p, n), (ssize_t)n);
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	char req[4096], key[64] = "", acc[29], resp[512];
	uint8_t payload[70000];
	size_t got = 0, len;
	int fd, op;
	char *k;

	fd = accept(f->listen_fd, NULL, NULL);
	if (fd < 0)
		return NULL;
	while (got < sizeof(req) - 1 && !strstr(req, "\r\n\r\n")) {
		ssize_t r = read(fd, req + got, sizeof(req) - 1 - got);
		if (r <= 0)
			goto out;
		got += (size_t)r;
		req[got] = 0;
	}
	k = strstr(req, "Sec-WebSocket-Key: ");
	if (k)
		sscanf(k + 19, "%63[^\r]", key);
	ws_accept_key(key, acc);
	if (f->script == SCRIPT_HTTP_404) {
		snprintf(resp, sizeof(resp), "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nno such\n\n");
		ck_assert_int_ge(write(fd, resp, strlen(resp)), 0);
		goto out;
	}
	if (f->script == SCRIPT_GARBAGE) {
		ck_assert_int_ge(write(fd, "\x16\x03\x01 hello\r\n\r\n", 13), 0);
		goto out;
	}
	if (f->script == SCRIPT_BAD_ACCEPT)
		acc[0] = acc[0] == 'A' ? 'B' : 'A';
	snprintf(resp, sizeof(resp), "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		"Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", acc);
	ck_assert_int_ge(write(fd, resp, strlen(resp)), 0);
	if (f->script != SCRIPT_GOOD)
		goto out;
	/* a text message in three fragments with a ping in between, then a binary one */
	send_frame(fd, 0x01, "hel", 3);
	send_frame(fd, 0x89, "pp", 2);
	send_frame(fd, 0x00, "lo ", 3);
	send_frame(fd, 0x80, "world", 5);
	memset(payload, 0xab, 1000);
	send_frame(fd, 0x82, payload, 1000);
	/* the client's pong, then its text message */
	op = read_frame(f, fd, payload, sizeof(payload), &len);
	f->pong_ok = op == 10 && len == 2 && memcmp(payload, "pp", 2) == 0;
	op = read_frame(f, fd, payload, sizeof(payload), &len);
	f->text_ok = op == 1 && len == 66000 && payload[0] == 'x' && payload[65999] == 'y';
	/* close with 1001 "going away"; the client answers with a close */
	send_frame(fd, 0x88, "\x03\xe9" "bye", 5);
	op = read_frame(f, fd, payload, sizeof(payload), &len);
	f->close_ok = op == 8 && len == 2 && payload[0] == 0x03 && payload[1] == 0xe9;
out:
	close(fd);
	return NULL;
}

static void fake_start(struct fake *f, enum script script)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);

	memset(f, 0, sizeof(*f));
	f->script = script;
	f->all_masked = true;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(f->listen_fd, 0);
	ck_assert_int_eq(bind(f->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(f->listen_fd, 4), 0);
	ck_assert_int_eq(getsockname(f->listen_fd, (struct sockaddr *)&a, &al), 0);
	snprintf(f->port, sizeof(f->port), "%u", ntohs(a.sin_port));
	ck_assert_int_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f)
{
	pthread_join(f->thread, NULL);
	close(f->listen_fd);
}

static struct ws_url url_of(const struct fake *f)
{
	struct ws_url u;
	char s[64], err[128];

	snprintf(s, sizeof(s), "http://127.0.0.1:%s", f->port);
	ck_assert_int_eq(ws_url_parse(s, &u, err, sizeof(err)), 0);
	return u;
}

START_TEST(test_ws_conversation)
{
	struct fake f;
	struct ws_url u;
	struct ws_client *c;
	struct ws_message m;
	char err[256], *big;

	fake_start(&f, SCRIPT_GOOD);
	u = url_of(&f);
	c = ws_client_connect(&u, "/ws/session/main", NULL, 5000, err, sizeof(err));
	ck_assert_msg(c != NULL, "%s", err);
	ck_assert_int_eq(ws_client_recv(c, 5000, &m, err, sizeof(err)), 1);
	ck_assert_int_eq(m.opcode, WS_TEXT);
	ck_assert_uint_eq(m.len, 11);
	ck_assert(memcmp(m.data, "hello world", 11) == 0);
	ck_assert_int_eq(ws_client_recv(c, 5000, &m, err, sizeof(err)), 1);
	ck_assert_int_eq(m.opcode, WS_BINARY);
	ck_assert_uint_eq(m.len, 1000);
	ck_assert_uint_eq(m.data[999], 0xab);
	big = malloc(66000);
	ck_assert_ptr_nonnull(big);
	memset(big, 'x', 66000);
	big[65999] = 'y';
	ck_assert_int_eq(ws_client_send(c, WS_TEXT, big, 66000, err, sizeof(err)), 0);
	free(big);
	ck_assert_int_eq(ws_client_recv(c, 5000, &m, err, sizeof(err)), 1);
	ck_assert_int_eq(m.opcode, WS_CLOSE);
	ck_assert_uint_eq(m.close_code, 1001);
	ck_assert_int_eq(ws_client_recv(c, 100, &m, err, sizeof(err)), -1);
	ws_client_close(c, 1000);
	fake_stop(&f);
	ck_assert_msg(f.pong_ok, "the ping was not answered with its payload");
	ck_assert_msg(f.text_ok, "the 66000-byte text message arrived damaged");
	ck_assert_msg(f.close_ok, "the close was not echoed with its code");
	ck_assert_msg(f.all_masked, "a client frame was not masked");
}
END_TEST

START_TEST(test_ws_refusals)
{
	struct fake f;
	struct ws_url u;
	char err[512], *body = NULL;
	int status = 0;

	fake_start(&f, SCRIPT_BAD_ACCEPT);
	u = url_of(&f);
	ck_assert_ptr_null(ws_client_connect(&u, "/ws", NULL, 5000, err, sizeof(err)));
	ck_assert_msg(strstr(err, "Sec-WebSocket-Accept is missing or wrong"), "%s", err);
	fake_stop(&f);

	fake_start(&f, SCRIPT_HTTP_404);
	u = url_of(&f);
	ck_assert_ptr_null(ws_client_connect(&u, "/ws", NULL, 5000, err, sizeof(err)));
	ck_assert_msg(strstr(err, "refused the WebSocket upgrade of '/ws' with HTTP 404"), "%s", err);
	fake_stop(&f);

	fake_start(&f, SCRIPT_GARBAGE);
	u = url_of(&f);
	ck_assert_int_eq(ws_http_request(&u, "GET", "/api/health", NULL, NULL, 5000, &status, &body,
		err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "not HTTP"), "%s", err);
	ck_assert_ptr_null(body);
	fake_stop(&f);

	/* nothing listening: a port that was just free */
	{
		struct sockaddr_in a = { .sin_family = AF_INET };
		socklen_t al = sizeof(a);
		char s[64];
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
		ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
		close(fd);
		snprintf(s, sizeof(s), "127.0.0.1:%u", ntohs(a.sin_port));
		ck_assert_int_eq(ws_url_parse(s, &u, err, sizeof(err)), 0);
		ck_assert_ptr_null(ws_client_connect(&u, "/ws", NULL, 2000, err, sizeof(err)));
		ck_assert_msg(strstr(err, "cannot connect"), "%s", err);
	}
}
END_TEST

START_TEST(test_http_request)
{
	struct fake f;
	struct ws_url u;
	char err[256], *body = NULL;
	int status = 0;

	fake_start(&f, SCRIPT_HTTP_404);
	u = url_of(&f);
	ck_assert_int_eq(ws_http_request(&u, "PUT", "/api/x", "{\"a\":1}", "tok", 5000, &status,
		&body, err, sizeof(err)), 0);
	ck_assert_int_eq(status, 404);
	ck_assert_str_eq(body, "no such\n\n");
	free(body);
	fake_stop(&f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ws_client");
	TCase *tc = tcase_create("ws_client");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_accept_key_rfc6455);
	tcase_add_test(tc, test_url_parse);
	tcase_add_test(tc, test_frame_header_and_percentile);
	tcase_add_test(tc, test_ws_conversation);
	tcase_add_test(tc, test_ws_refusals);
	tcase_add_test(tc, test_http_request);
	suite_add_tcase(s, tc);
	return check_run_suite(s);
}
