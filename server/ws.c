/* ws.c: WebSocket connections over the bufferevent of an evhttp connection.
 *
 * DESIGN
 * Upgrade (conventions.md recipe). http.c validates the request (ws_check_upgrade),
 * the session allocates its client, then ws_accept allocates everything that can
 * fail (wslay context with a max message length, events), and only then, with no
 * loop iteration in between, takes the connection's bufferevent: our callbacks, no
 * HTTP timeouts, a write low-water mark, no evhttp close callback, read+write on, and
 * the 101 written by hand. evhttp_send_reply* is never called on that request again.
 * Bytes the client sent right after its handshake are already in the input buffer;
 * a one-shot "kick" event feeds them to wslay on the next iteration (after the
 * caller has recorded the connection).
 *
 * Pump (nghttp2/h2o style). wslay's send callback writes into the output evbuffer
 * until it holds WS_HIGH_WATER bytes and then answers WOULDBLOCK; the write callback
 * (output drained below the low-water mark) resumes sending. Reading feeds the
 * input evbuffer to wslay_event_recv.
 *
 * Send limits. Video frames never queue without bound: when a client's queued bytes
 * (wslay queue + output buffer) or queued messages exceed its limits, the newest
 * frame waits in a one-frame slot and replaces what was there (a counted drop). When
 * the slot has not been flushed for slow_close_s the client is closed with
 * WS_CLOSE_SLOW. Control messages (config, stats, errors) always queue, up to
 * hard_queue_bytes.
 *
 * Close. ws_close queues a close frame and arms a deadline; once the close frame is
 * out and the output drained we shutdown(SHUT_WR) and read until EOF or the
 * deadline. The connection is freed (evhttp_connection_free) only from a deferred
 * event, never inside a call from the session, so iterating clients stays safe. */
#include "config.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <wslay/wslay.h>

#include "log.h"
#include "metrics.h"
#include "protocol.h"
#include "ws.h"

#define WS_HIGH_WATER (256 * 1024)
#define WS_LOW_WATER (32 * 1024)
#define WS_CLOSE_DEADLINE_S 2

struct ws_conn {
	struct evhttp_connection *evcon; /* borrowed until we free it */
	struct bufferevent *bev;	 /* owned by evcon */
	wslay_event_context_ptr ctx;	 /* new */
	struct event *kick;		 /* new: process buffered input */
	struct event *reaper;		 /* new: deferred free */
	struct event *deadline;		 /* new: close handshake deadline */
	struct ws_limits lim;
	struct ws_handlers h;
	void *ud;
	bool closing, dead, shut_wr;
	uint8_t *pending;		 /* new: the frame slot */
	size_t pending_len;
	bool pending_binary;
	double slow_since;		 /* 0: not slow */
	double last_rx, last_ping;
};

/* ---- SHA-1 (RFC 3174), for Sec-WebSocket-Accept only ------------------------------- */

static uint32_t rol(uint32_t x, int n) { return x << n | x >> (32 - n); }

static void sha1_block(uint32_t h[5], const uint8_t *p)
{
	uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 80; i++)
		w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	for (int i = 0; i < 80; i++) {
		uint32_t f, k;
		if (i < 20)
			f = (b & c) | (~b & d), k = 0x5A827999;
		else if (i < 40)
			f = b ^ c ^ d, k = 0x6ED9EBA1;
		else if (i < 60)
			f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
		else
			f = b ^ c ^ d, k = 0xCA62C1D6;
		uint32_t t = rol(a, 5) + f + e + k + w[i];
		e = d, d = c, c = rol(b, 30), b = a, a = t;
	}
	h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

static void sha1(const uint8_t *data, size_t len, uint8_t out[20])
{
	uint32_t h[5] = { 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0 };
	uint8_t blk[64];
	size_t i = 0;
	for (; i + 64 <= len; i += 64)
		sha1_block(h, data + i);
	size_t rem = len - i;
	memset(blk, 0, 64);
	memcpy(blk, data + i, rem);
	blk[rem] = 0x80;
	if (rem >= 56) {
		sha1_block(h, blk);
		memset(blk, 0, 64);
	}
	uint64_t bits = (uint64_t)len * 8;
	for (int j = 0; j < 8; j++)
		blk[63 - j] = (uint8_t)(bits >> (8 * j));
	sha1_block(h, blk);
	for (int j = 0; j < 5; j++) {
		out[4 * j] = (uint8_t)(h[j] >> 24);
		out[4 * j + 1] = (uint8_t)(h[j] >> 16);
		out[4 * j + 2] = (uint8_t)(h[j] >> 8);
		out[4 * j + 3] = (uint8_t)h[j];
	}
}

void ws_accept_key(const char *key, char out[29])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	char buf[128];
	uint8_t digest[20];
	char *b64;

	snprintf(buf, sizeof(buf), "%.60s%s", key, guid);
	sha1((const uint8_t *)buf, strlen(buf), digest);
	b64 = proto_base64_encode(digest, 20, NULL);
	snprintf(out, 29, "%s", b64 ? b64 : "");
	free(b64);
}

/* ---- upgrade ----------------------------------------------------------------------- */

static bool ws_has_token(const char *value, const char *token)
{
	size_t n = strlen(token);
	const char *p = value;
	while (p && *p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *end = p;
		while (*end && *end != ',')
			end++;
		const char *e = end;
		while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((size_t)(e - p) == n && strncasecmp(p, token, n) == 0)
			return true;
		p = end;
	}
	return false;
}

int ws_check_upgrade(struct evhttp_request *req, char *err, size_t errlen)
{
	struct evkeyvalq *hdr = evhttp_request_get_input_headers(req);
	const char *upgrade = evhttp_find_header(hdr, "Upgrade");
	const char *conn = evhttp_find_header(hdr, "Connection");
	const char *key = evhttp_find_header(hdr, "Sec-WebSocket-Key");
	const char *version = evhttp_find_header(hdr, "Sec-WebSocket-Version");
	size_t klen = 0;
	uint8_t *raw;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		snprintf(err, errlen, "a WebSocket upgrade must use GET");
		return 400;
	}
	if (!upgrade || !ws_has_token(upgrade, "websocket")) {
		snprintf(err, errlen, "this path only accepts WebSocket upgrades (Upgrade: websocket)");
		return 426;
	}
	if (!conn || !ws_has_token(conn, "upgrade")) {
		snprintf(err, errlen, "the Connection header must contain \"Upgrade\"");
		return 400;
	}
	if (!version || strcmp(version, "13") != 0) {
		snprintf(err, errlen, "only WebSocket version 13 is supported");
		return 426;
	}
	if (!key || strlen(key) != 24 || !(raw = proto_base64_decode(key, 24, &klen))) {
		snprintf(err, errlen, "Sec-WebSocket-Key must be 16 bytes in base64");
		return 400;
	}
	free(raw);
	if (klen != 16) {
		snprintf(err, errlen, "Sec-WebSocket-Key must be 16 bytes in base64");
		return 400;
	}
	return 0;
}

/* ---- wslay callbacks ---------------------------------------------------------------- */

static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
	struct ws_conn *ws = user;
	int n = evbuffer_remove(bufferevent_get_input(ws->bev), buf, len);
	if (n <= 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	ws->last_rx = metrics_now();
	return n;
}

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
	struct ws_conn *ws = user;
	struct evbuffer *out = bufferevent_get_output(ws->bev);
	if (evbuffer_get_length(out) >= WS_HIGH_WATER) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (evbuffer_add(out, data, len) < 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return (ssize_t)len;
}

static void ws_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
	struct ws_conn *ws = user;
	if (ws->dead || ws->closing)
		return;
	if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME)
		ws->h.on_message(ws, ws->ud, arg->opcode == WSLAY_BINARY_FRAME, arg->msg, arg->msg_length);
	else if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
		ws->closing = true;
		log_debug("websocket closed by the client (code %u)", arg->status_code);
	}
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static void ws_schedule_free(struct ws_conn *ws)
{
	if (ws->dead)
		return;
	ws->dead = true;
	ws->closing = true;
	bufferevent_disable(ws->bev, EV_READ | EV_WRITE);
	bufferevent_setcb(ws->bev, NULL, NULL, NULL, NULL);
	event_active(ws->reaper, 0, 1);
}

static void ws_reap(evutil_socket_t fd, short what, void *arg)
{
	struct ws_conn *ws = arg;
	ws->h.on_closed(ws, ws->ud);
	evhttp_connection_free(ws->evcon);
	wslay_event_context_free(ws->ctx);
	event_free(ws->kick);
	event_free(ws->reaper);
	event_free(ws->deadline);
	free(ws->pending);
	free(ws);
}

static size_t ws_queued(const struct ws_conn *ws)
{
	return wslay_event_get_queued_msg_length(ws->ctx) + evbuffer_get_length(bufferevent_get_output(ws->bev));
}

static void ws_flush_pending(struct ws_conn *ws)
{
	struct wslay_event_msg msg;

	if (!ws->pending || ws->closing || ws_queued(ws) > ws->lim.max_queue_bytes ||
	    wslay_event_get_queued_msg_count(ws->ctx) >= ws->lim.max_queue_frames)
		return;
	msg.opcode = ws->pending_binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME;
	msg.msg = ws->pending;
	msg.msg_length = ws->pending_len;
	wslay_event_queue_msg(ws->ctx, &msg);
	free(ws->pending);
	ws->pending = NULL;
	ws->slow_since = 0;
}

static void ws_pump(struct ws_conn *ws)
{
	if (ws->dead)
		return;
	if (wslay_event_send(ws->ctx) != 0) {
		ws_schedule_free(ws);
		return;
	}
	ws_flush_pending(ws);
	if (wslay_event_want_write(ws->ctx) && wslay_event_send(ws->ctx) != 0) {
		ws_schedule_free(ws);
		return;
	}
	if (wslay_event_get_close_sent(ws->ctx) && !wslay_event_want_write(ws->ctx) &&
	    evbuffer_get_length(bufferevent_get_output(ws->bev)) == 0 && !ws->shut_wr) {
		/* close frame is on the wire: half-close and wait for the client's EOF */
		ws->shut_wr = true;
		shutdown(bufferevent_getfd(ws->bev), SHUT_WR);
		if (!evtimer_pending(ws->deadline, NULL)) {
			struct timeval tv = { WS_CLOSE_DEADLINE_S, 0 };
			evtimer_add(ws->deadline, &tv);
		}
	}
}

static void ws_read_cb(struct bufferevent *bev, void *arg)
{
	struct ws_conn *ws = arg;
	if (ws->dead)
		return;
	if (ws->shut_wr) { /* draining until EOF */
		evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
		return;
	}
	if (wslay_event_recv(ws->ctx) != 0) {
		ws_schedule_free(ws);
		return;
	}
	if (wslay_event_get_close_received(ws->ctx))
		ws->closing = true;
	/* wslay queues a close (1002/1009) by itself on protocol errors and oversize */
	if (!wslay_event_want_read(ws->ctx) && !ws->closing) {
		ws->closing = true;
		struct timeval tv = { WS_CLOSE_DEADLINE_S, 0 };
		evtimer_add(ws->deadline, &tv);
	}
	ws_pump(ws);
	if (!ws->dead && !wslay_event_want_read(ws->ctx) && !wslay_event_want_write(ws->ctx) &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0 && !ws->shut_wr)
		ws_pump(ws);
}

static void ws_write_cb(struct bufferevent *bev, void *arg)
{
	ws_pump(arg);
}

static void ws_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct ws_conn *ws = arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		ws_schedule_free(ws);
}

static void ws_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ws_conn *ws = arg;
	if (evbuffer_get_length(bufferevent_get_input(ws->bev)) > 0)
		ws_read_cb(ws->bev, ws);
	else
		ws_pump(ws);
}

static void ws_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	ws_schedule_free(arg);
}

struct ws_conn *ws_accept(struct evhttp_request *req, const char *subprotocol, const struct ws_limits *lim,
			  const struct ws_handlers *h, void *ud, char *err, size_t errlen)
{
	static const struct wslay_event_callbacks cbs = {
		ws_recv_cb, ws_send_cb, NULL, NULL, NULL, NULL, ws_msg_cb,
	};
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev;
	struct event_base *base;
	struct ws_conn *ws;
	const char *key = evhttp_find_header(evhttp_request_get_input_headers(req), "Sec-WebSocket-Key");
	char accept[29];

	if (!evcon || !(bev = evhttp_connection_get_bufferevent(evcon))) {
		snprintf(err, errlen, "the client is gone");
		return NULL;
	}
	base = bufferevent_get_base(bev);
	ws = calloc(1, sizeof(*ws));
	if (!ws)
		goto nomem;
	ws->evcon = evcon;
	ws->bev = bev;
	ws->lim = *lim;
	ws->h = *h;
	ws->ud = ud;
	ws->last_rx = ws->last_ping = metrics_now();
	if (wslay_event_context_server_init(&ws->ctx, &cbs, ws) != 0)
		goto nomem_ws;
	wslay_event_config_set_max_recv_msg_length(ws->ctx, lim->max_message);
	ws->kick = event_new(base, -1, 0, ws_kick_cb, ws);
	ws->reaper = event_new(base, -1, 0, ws_reap, ws);
	ws->deadline = evtimer_new(base, ws_deadline_cb, ws);
	if (!ws->kick || !ws->reaper || !ws->deadline)
		goto nomem_events;
	ws_accept_key(key, accept);

	/* No failure is possible from here on: take the connection over. */
	evhttp_connection_set_closecb(evcon, NULL, NULL);
	bufferevent_setcb(bev, ws_read_cb, ws_write_cb, ws_event_cb, ws);
	bufferevent_setwatermark(bev, EV_WRITE, WS_LOW_WATER, 0);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	/* After enable: clearing the timeouts of a disabled bufferevent leaves evhttp's
	 * timer armed on its read event (libevent 2.1), which would drop the socket. */
	bufferevent_set_timeouts(bev, NULL, NULL);
	/* A bounded kernel send buffer keeps a stalled client's backlog in our queue,
	 * where newest-frame-wins and the slow-reader close apply. */
	if (lim->sndbuf > 0) {
		int sz = (int)lim->sndbuf;
		setsockopt(bufferevent_getfd(bev), SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	}
	bufferevent_write(bev, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", 75);
	evbuffer_add_printf(bufferevent_get_output(bev), "Sec-WebSocket-Accept: %s\r\n", accept);
	if (subprotocol)
		evbuffer_add_printf(bufferevent_get_output(bev), "Sec-WebSocket-Protocol: %s\r\n", subprotocol);
	bufferevent_write(bev, "\r\n", 2);
	event_active(ws->kick, 0, 1);
	return ws;

nomem_events:
	if (ws->kick)
		event_free(ws->kick);
	if (ws->reaper)
		event_free(ws->reaper);
	if (ws->deadline)
		event_free(ws->deadline);
	wslay_event_context_free(ws->ctx);
nomem_ws:
	free(ws);
nomem:
	snprintf(err, errlen, "out of memory accepting a WebSocket");
	return NULL;
}

void ws_send_text(struct ws_conn *ws, const char *text, size_t len)
{
	struct wslay_event_msg msg = { WSLAY_TEXT_FRAME, (const uint8_t *)text, len };
	if (ws->closing || ws->dead)
		return;
	if (ws_queued(ws) + len > ws->lim.hard_queue_bytes) {
		ws_close(ws, WS_CLOSE_SLOW, "client too slow: its send queue is full");
		return;
	}
	if (wslay_event_queue_msg(ws->ctx, &msg) != 0) {
		ws_schedule_free(ws);
		return;
	}
	ws_pump(ws);
}

int ws_send_frame(struct ws_conn *ws, bool binary, const uint8_t *data, size_t len)
{
	struct wslay_event_msg msg = { binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME, data, len };
	int dropped = 0;

	if (ws->closing || ws->dead)
		return 0;
	if (ws->pending || ws_queued(ws) > ws->lim.max_queue_bytes ||
	    wslay_event_get_queued_msg_count(ws->ctx) >= ws->lim.max_queue_frames) {
		uint8_t *copy = malloc(len);
		if (!copy)
			return 1;
		memcpy(copy, data, len);
		if (ws->pending)
			dropped = 1;
		free(ws->pending);
		ws->pending = copy;
		ws->pending_len = len;
		ws->pending_binary = binary;
		if (ws->slow_since == 0)
			ws->slow_since = metrics_now();
		ws_pump(ws);
		return dropped;
	}
	if (wslay_event_queue_msg(ws->ctx, &msg) != 0) {
		ws_schedule_free(ws);
		return 1;
	}
	ws_pump(ws);
	return 0;
}

void ws_close(struct ws_conn *ws, uint16_t code, const char *reason)
{
	struct timeval tv = { WS_CLOSE_DEADLINE_S, 0 };
	if (ws->dead || ws->closing)
		return;
	ws->closing = true;
	free(ws->pending);
	ws->pending = NULL;
	wslay_event_queue_close(ws->ctx, code, (const uint8_t *)reason, reason ? strlen(reason) : 0);
	evtimer_add(ws->deadline, &tv);
	ws_pump(ws);
}

void ws_abort(struct ws_conn *ws)
{
	if (!ws->dead)
		ws_schedule_free(ws);
	/* run the reaper now (shutdown: the loop will not iterate again) */
	event_del(ws->reaper);
	ws_reap(-1, 0, ws);
}

void ws_tick(struct ws_conn *ws, double now)
{
	if (ws->dead || ws->closing)
		return;
	if (ws->slow_since > 0 && now - ws->slow_since > ws->lim.slow_close_s) {
		char reason[100];
		snprintf(reason, sizeof(reason), "client too slow: frames waited more than %.0f s", ws->lim.slow_close_s);
		log_info("closing a slow WebSocket client (%s)", reason);
		ws_close(ws, WS_CLOSE_SLOW, reason);
		return;
	}
	if (now - ws->last_rx > ws->lim.idle_timeout_s) {
		log_info("closing an idle WebSocket client (nothing received for %.0f s)", ws->lim.idle_timeout_s);
		ws_close(ws, WS_CLOSE_IDLE, "idle: nothing received, not even a pong");
		return;
	}
	if (now - ws->last_ping > ws->lim.idle_timeout_s / 3 && now - ws->last_rx > ws->lim.idle_timeout_s / 3) {
		struct wslay_event_msg ping = { WSLAY_PING, (const uint8_t *)"heru", 4 };
		ws->last_ping = now;
		wslay_event_queue_msg(ws->ctx, &ping);
		ws_pump(ws);
	}
}

bool ws_is_closing(const struct ws_conn *ws) { return ws->closing || ws->dead; }
