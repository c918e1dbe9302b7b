/* session.h: sessions (by id, created on first use): config, presets, runtime status,
 * clients, stats, and the backend instance that serves them. Loop thread only. */
#ifndef HERU_SESSION_H
#define HERU_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "ws.h"

struct event_base;
struct evbuffer;
struct evhttp_request;
struct pipeline;
struct plugin_registry;
struct sess_manager;
struct session;

struct sess_limits {
	size_t max_sessions;
	size_t max_clients_per_session;
	size_t max_clients;
	double session_idle_s; /* evict a session without clients after this long */
	struct ws_limits ws;
};

/* BASE, REG: borrowed. DEFAULTS: borrowed, a validated config patch applied to every
 * new session (may be NULL). Creates the pipeline. Returns new or NULL. */
struct sess_manager *sess_manager_new(struct event_base *base, const struct plugin_registry *reg,
				      const struct sess_limits *lim, const json_t *defaults, double start_s);
/* Close every WebSocket with CODE (graceful; the loop must keep running a moment). */
void sess_manager_close_all(struct sess_manager *mgr, uint16_t code, const char *reason);
size_t sess_manager_clients(const struct sess_manager *mgr);
/* Abort the remaining clients, stop and join every backend instance, free all. */
void sess_manager_free(struct sess_manager *mgr);

/* 1..64 characters of [A-Za-z0-9_-]. */
bool sess_valid_id(const char *id);

/* The session ID, created when CREATE and absent. NULL with ERR and *STATUS (400 bad id,
 * 503 too many sessions). Borrowed. */
struct session *sess_get(struct sess_manager *mgr, const char *id, char *err, size_t errlen, int *status);

json_t *sess_config_json(const struct session *s); /* new */
json_t *sess_stats_json(const struct session *s);  /* new */
/* Merge PATCH (borrowed) and apply it. Returns 0, or -1 with ERRORS (borrowed) filled. */
int sess_patch(struct session *s, const json_t *patch, json_t *errors);

/* Upgrade REQ to a WebSocket client of S. Returns 0, or an HTTP status with ERR set. */
int sess_ws_accept(struct session *s, struct evhttp_request *req, const char *subprotocol, char *err,
		   size_t errlen);

/* GET /metrics body. */
void sess_prometheus(const struct sess_manager *mgr, struct evbuffer *out, size_t plugins_loaded,
		     size_t plugins_refused);

/* Session ids, for health. New. */
json_t *sess_ids(const struct sess_manager *mgr);

#endif
