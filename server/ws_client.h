/*
 * ws_client.h: a small blocking HTTP/1.1 and WebSocket (RFC 6455) client for the
 * CLIs (heru-smoke, heru-bench) and tests. One connection per object, one thread
 * per object; every wait has a timeout.
 */
#ifndef HERU_WS_CLIENT_H
#define HERU_WS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WS_CLIENT_MAX_MESSAGE (32u << 20) /* bigger incoming messages close the socket */

/* A parsed http:// or ws:// URL (https/wss are not supported). */
struct ws_url {
	char host[256];
	char port[8];
	char path[1024]; /* begins with '/', includes the query */
};

/* Parse `url`: "http://host:port/path", "ws://host/path", "host:port" (path "/").
 * Returns 0, or -1 with one sentence in err. */
int ws_url_parse(const char *url, struct ws_url *out, char *err, size_t errlen);

/*
 * One HTTP request on a fresh connection: `method` and `path` (borrowed), optional
 * JSON `body` (borrowed, may be NULL) and bearer `token` (may be NULL). On success
 * returns 0, *status is the HTTP status and *resp a new NUL-terminated body (free()
 * it). -1 with one sentence in err when the server cannot be reached or answers
 * garbage.
 */
int ws_http_request(const struct ws_url *url, const char *method, const char *path,
	const char *body, const char *token, int timeout_ms, int *status, char **resp,
	char *err, size_t errlen);

struct ws_client;

enum ws_opcode {
	WS_TEXT = 1,
	WS_BINARY = 2,
	WS_CLOSE = 8
};

/* A received message: data is owned by the client and valid until the next recv. */
struct ws_message {
	enum ws_opcode opcode;
	const uint8_t *data;
	size_t len;
	uint16_t close_code; /* for WS_CLOSE: the peer's code, 1005 when none */
};

/* Connect and upgrade to a WebSocket at `path` (borrowed). Returns a new client, or
 * NULL with one sentence in err (connection refused, HTTP status, bad accept key). */
struct ws_client *ws_client_connect(const struct ws_url *url, const char *path,
	const char *token, int timeout_ms, char *err, size_t errlen);

/* Send one masked message (text or binary). 0, or -1 with err (peer gone). */
int ws_client_send(struct ws_client *c, enum ws_opcode opcode, const void *data, size_t len,
	char *err, size_t errlen);

/*
 * Wait up to timeout_ms for one message (pings are answered on the way). Returns 1
 * with *msg filled, 0 on timeout, -1 with err when the connection failed. A close
 * from the server is returned as a WS_CLOSE message (answered), after which every
 * call returns -1.
 */
int ws_client_recv(struct ws_client *c, int timeout_ms, struct ws_message *msg, char *err,
	size_t errlen);

/* Send a close frame with `code` (if still open), wait briefly for the server's
 * close, and free the client. NULL is a no-op. */
void ws_client_close(struct ws_client *c, uint16_t code);

/* The Sec-WebSocket-Accept value for a Sec-WebSocket-Key (RFC 6455 §4.2.2): base64 of
 * SHA-1(key + GUID); out receives 28 characters and a NUL. */
void ws_accept_key(const char *key, char out[29]);

/* Monotonic milliseconds and wall-clock epoch milliseconds. */
double ws_now_ms(void);
double ws_epoch_ms(void);

#endif /* HERU_WS_CLIENT_H */
