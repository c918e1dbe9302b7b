/* ws.h: WebSocket connections taken over from evhttp (wslay framing), with bounded
 * send queues. Loop thread only. */
#ifndef HERU_WS_H
#define HERU_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evhttp_request;
struct ws_conn;

/* Close codes beyond RFC 6455's (documented in README "Protocol"). */
#define WS_CLOSE_NORMAL 1000
#define WS_CLOSE_GOING_AWAY 1001   /* server shutting down */
#define WS_CLOSE_PROTOCOL 1002
#define WS_CLOSE_TOO_BIG 1009      /* message over max_ws_message_bytes */
#define WS_CLOSE_SLOW 4001         /* client read too slowly for too long */
#define WS_CLOSE_IDLE 4002         /* nothing received for ws_idle_timeout_s */

struct ws_limits {
	size_t max_message;	 /* largest message accepted, bytes */
	size_t max_queue_bytes;	 /* output bytes queued before frames are replaced */
	size_t max_queue_frames; /* frames queued before frames are replaced */
	size_t hard_queue_bytes; /* queued bytes at which the client is closed at once */
	double slow_close_s;	 /* close a client whose queue never drains for this long */
	double idle_timeout_s;	 /* close a client that sends nothing (pongs count) */
	size_t sndbuf;		 /* SO_SNDBUF of WebSocket sockets (0: kernel default) */
};

struct ws_handlers {
	/* A complete text or binary message (DATA borrowed). */
	void (*on_message)(struct ws_conn *ws, void *ud, bool binary, const uint8_t *data, size_t len);
	/* The connection is gone (called once, from a deferred callback); WS is freed
	 * right after it returns. */
	void (*on_closed)(struct ws_conn *ws, void *ud);
};

/* Check the upgrade headers of REQ (borrowed). Returns 0, or the HTTP status to answer
 * (400, 426) with a sentence in ERR. */
int ws_check_upgrade(struct evhttp_request *req, char *err, size_t errlen);

/* Take over REQ's connection and answer 101 (after ws_check_upgrade passed). Returns a
 * new connection (freed by itself after on_closed), or NULL with ERR set (then the
 * caller still answers the request). */
struct ws_conn *ws_accept(struct evhttp_request *req, const char *subprotocol, const struct ws_limits *lim,
			  const struct ws_handlers *h, void *ud, char *err, size_t errlen);

/* Queue a control/JSON message (always sent, in order). Closes the client with
 * WS_CLOSE_SLOW when its queue exceeds hard_queue_bytes. */
void ws_send_text(struct ws_conn *ws, const char *text, size_t len);

/* Queue a video frame: when the client's queue is over its limits the frame waits in
 * a one-frame slot, replacing (and counting) the one there. Returns 1 when a frame
 * was dropped, else 0. DATA is borrowed. */
int ws_send_frame(struct ws_conn *ws, bool binary, const uint8_t *data, size_t len);

/* Start a close handshake with CODE and REASON (ASCII, < 120 bytes). */
void ws_close(struct ws_conn *ws, uint16_t code, const char *reason);

/* Periodic check (about once a second): pings, idle and slow-reader timeouts. */
void ws_tick(struct ws_conn *ws, double now_s);

/* Free now without a handshake (shutdown after the grace period); calls on_closed. */
void ws_abort(struct ws_conn *ws);

bool ws_is_closing(const struct ws_conn *ws);

/* Base64(SHA-1(key + GUID)) into OUT (29 bytes with NUL). Exposed for tests. */
void ws_accept_key(const char *key, char out[29]);

#endif
