/* http.h: the evhttp front: REST API, WebSocket upgrades, static files. Loop thread. */
#ifndef HERU_HTTP_H
#define HERU_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct sess_manager;
struct plugin_registry;
struct http_server;

struct http_opts {
	const char *host;	   /* borrowed */
	int port;		   /* 0: any free port */
	const char *web_root;	   /* borrowed */
	const char *token;	   /* borrowed, NULL/"" = none */
	const char *const *origins; /* borrowed, NULL-terminated extra allowed Origins */
	size_t max_header_bytes;
	size_t max_body_bytes;
	int timeout_s;
	double start_s;		   /* monotonic start time, for uptime */
};

/* Bind and serve. MGR, REG: borrowed. Returns new, or NULL with ERR. */
struct http_server *http_server_new(struct event_base *base, struct sess_manager *mgr,
				    const struct plugin_registry *reg, const struct http_opts *opts, char *err,
				    size_t errlen);
int http_server_port(const struct http_server *hs);
void http_server_stop_accepting(struct http_server *hs);
void http_server_free(struct http_server *hs);

/* Is this path safe to serve below a web root? (no "..", no hidden segments, no NUL
 * or backslash). Exposed for tests. */
bool http_path_safe(const char *path);

#endif
