/* http.c: REST, WebSocket upgrades and static files on one evhttp.
 *
 * DESIGN
 * One evhttp on the loop thread with bounded header and body sizes and a timeout
 * (a half-open or slow client is dropped by evhttp). Every route answers JSON;
 * errors are {"error": sentence, "errors": [{"field","reason"}]}. When a token is
 * set, the /api/ and /ws/ paths and /metrics need it (Authorization: Bearer, ?token=, or the
 * WebSocket subprotocol "bearer.TOKEN"); the UI's static files do not. WebSocket
 * upgrades are checked (headers, Origin, limits) and refused with an ordinary HTTP
 * answer before session.c/ws.c take the connection over. Static paths are decoded,
 * refused when they contain "..", hidden segments, NUL or backslashes, and resolved
 * with realpath() to stay inside the web root. */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "plugin.h"
#include "protocol.h"
#include "session.h"
#include "ws.h"

struct http_server {
	struct evhttp *http;		   /* new */
	struct evhttp_bound_socket *bound; /* owned by http */
	struct sess_manager *mgr;	   /* borrowed */
	const struct plugin_registry *reg; /* borrowed */
	struct http_opts opts;
	char web_root[PATH_MAX];	   /* realpath of the web root, "" if missing */
	int port;
};

/* ---- replies ---------------------------------------------------------------------- */

static void http_reply_json(struct evhttp_request *req, int code, const char *reason, json_t *body /* steals */)
{
	struct evbuffer *buf = evbuffer_new();
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
	if (buf && text) {
		evbuffer_add(buf, text, strlen(text));
		evbuffer_add(buf, "\n", 1);
	}
	evhttp_send_reply(req, code, reason, buf);
	if (buf)
		evbuffer_free(buf);
	free(text);
	json_decref(body);
}

static void http_error(struct evhttp_request *req, int code, const char *message, json_t *errors /* steals */)
{
	static const struct { int code; const char *reason; } reasons[] = {
		{ 400, "Bad Request" }, { 401, "Unauthorized" }, { 403, "Forbidden" }, { 404, "Not Found" },
		{ 405, "Method Not Allowed" }, { 413, "Payload Too Large" }, { 426, "Upgrade Required" },
		{ 500, "Internal Server Error" }, { 503, "Service Unavailable" },
	};
	const char *reason = "Error";
	json_t *body = json_object();
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (reasons[i].code == code)
			reason = reasons[i].reason;
	json_object_set_new(body, "error", json_string(message));
	json_object_set_new(body, "errors", errors ? errors : json_array());
	if (code == 426)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Sec-WebSocket-Version", "13");
	http_reply_json(req, code, reason, body);
}

/* ---- auth and origin ------------------------------------------------------------------- */

static const char *http_query_param(struct evhttp_request *req, const char *name, char *out, size_t outlen)
{
	const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	struct evkeyvalq params;
	const char *v;

	if (!q)
		return NULL;
	TAILQ_INIT(&params);
	if (evhttp_parse_query_str(q, &params) < 0) {
		evhttp_clear_headers(&params);
		return NULL;
	}
	v = evhttp_find_header(&params, name);
	if (v)
		snprintf(out, outlen, "%s", v);
	evhttp_clear_headers(&params);
	return v ? out : NULL;
}

static bool http_token_eq(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	unsigned diff = (unsigned)(na ^ nb);
	for (size_t i = 0; i < na && i < nb; i++)
		diff |= (unsigned)(a[i] ^ b[i]);
	return diff == 0;
}

/* 0 when authorized; sets *SUBPROTO when the token came as a WebSocket subprotocol. */
static int http_check_token(const struct http_server *hs, struct evhttp_request *req, char *subproto, size_t splen)
{
	struct evkeyvalq *hdr = evhttp_request_get_input_headers(req);
	const char *auth = evhttp_find_header(hdr, "Authorization");
	const char *protos = evhttp_find_header(hdr, "Sec-WebSocket-Protocol");
	char q[256];

	if (!hs->opts.token || !hs->opts.token[0])
		return 0;
	if (auth && strncasecmp(auth, "Bearer ", 7) == 0 && http_token_eq(auth + 7, hs->opts.token))
		return 0;
	if (http_query_param(req, "token", q, sizeof(q)) && http_token_eq(q, hs->opts.token))
		return 0;
	if (protos) {
		char copy[512], *save = NULL;
		snprintf(copy, sizeof(copy), "%s", protos);
		for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
			if (strncmp(t, "bearer.", 7) == 0 && http_token_eq(t + 7, hs->opts.token)) {
				snprintf(subproto, splen, "%s", t);
				return 0;
			}
	}
	return -1;
}

static bool http_origin_ok(const struct http_server *hs, struct evhttp_request *req)
{
	struct evkeyvalq *hdr = evhttp_request_get_input_headers(req);
	const char *origin = evhttp_find_header(hdr, "Origin");
	const char *host = evhttp_find_header(hdr, "Host");
	const char *p;

	if (!origin)
		return true; /* not a browser */
	for (const char *const *o = hs->opts.origins; o && *o; o++)
		if (strcmp(*o, "*") == 0 || strcasecmp(*o, origin) == 0)
			return true;
	p = strstr(origin, "://");
	if (p && host && strcasecmp(p + 3, host) == 0)
		return true; /* same origin */
	return false;
}

/* ---- REST ---------------------------------------------------------------------------------- */

static int http_gpu_count(void)
{
	int n = 0;
	DIR *d = opendir("/dev");
	struct dirent *e;
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		const char *s = e->d_name;
		if (strncmp(s, "nvidia", 6) == 0 && s[6] >= '0' && s[6] <= '9')
			n++;
	}
	closedir(d);
	return n;
}

static void http_health(struct http_server *hs, struct evhttp_request *req)
{
	json_t *ids = json_array();
	size_t n = hs->reg ? plugin_registry_count(hs->reg) : 0;
	int gpus = http_gpu_count();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(ids, json_string(plugin_registry_at(hs->reg, i)->id));
	http_reply_json(req, 200, "OK",
			json_pack("{s:s,s:s,s:f,s:o,s:{s:b,s:i},s:o}", "status", "ok", "version", PACKAGE_VERSION,
				  "uptime_s", metrics_now() - hs->opts.start_s, "plugins", ids, "gpu", "present",
				  gpus > 0, "count", gpus, "sessions", sess_ids(hs->mgr)));
}

static json_t *http_read_json(struct evhttp_request *req, char *err, size_t errlen)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *body;
	json_error_t jerr;
	json_t *j;

	if (len > 1024 * 1024) {
		snprintf(err, errlen, "request body is too large");
		return NULL;
	}
	body = (const char *)evbuffer_pullup(in, -1);
	if (len == 0 || !body) {
		snprintf(err, errlen, "request body is empty; expected a JSON merge patch");
		return NULL;
	}
	if (proto_json_depth(body, len) > PROTO_MAX_JSON_DEPTH) {
		snprintf(err, errlen, "request body nests JSON too deeply");
		return NULL;
	}
	j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j)
		snprintf(err, errlen, "request body is not valid JSON: %s at line %d column %d", jerr.text, jerr.line,
			 jerr.column);
	return j;
}

static void http_session(struct http_server *hs, struct evhttp_request *req, const char *rest)
{
	char id[80], err[256];
	const char *slash = strchr(rest, '/');
	struct session *s;
	int status = 404;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

	if (!slash || (size_t)(slash - rest) >= sizeof(id)) {
		http_error(req, 404, "no such endpoint (use /api/session/{id}/config or /stats)", NULL);
		return;
	}
	memcpy(id, rest, (size_t)(slash - rest));
	id[slash - rest] = 0;
	if (strcmp(slash, "/config") != 0 && strcmp(slash, "/stats") != 0) {
		http_error(req, 404, "no such endpoint (use /api/session/{id}/config or /stats)", NULL);
		return;
	}
	if (cmd != EVHTTP_REQ_GET && !(cmd == EVHTTP_REQ_PUT && strcmp(slash, "/config") == 0)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
				  strcmp(slash, "/config") == 0 ? "GET, PUT" : "GET");
		http_error(req, 405, "method not allowed on this endpoint", NULL);
		return;
	}
	s = sess_get(hs->mgr, id, err, sizeof(err), &status);
	if (!s) {
		http_error(req, status, err, NULL);
		return;
	}
	if (strcmp(slash, "/stats") == 0) {
		http_reply_json(req, 200, "OK", sess_stats_json(s));
		return;
	}
	if (cmd == EVHTTP_REQ_GET) {
		http_reply_json(req, 200, "OK", sess_config_json(s));
		return;
	}
	json_t *patch = http_read_json(req, err, sizeof(err));
	if (!patch) {
		http_error(req, 400, err, NULL);
		return;
	}
	json_t *errors = json_array();
	if (sess_patch(s, patch, errors) < 0) {
		http_error(req, 400, "config patch refused; nothing changed", errors);
	} else {
		json_decref(errors);
		http_reply_json(req, 200, "OK", sess_config_json(s));
	}
	json_decref(patch);
}

static void http_ws(struct http_server *hs, struct evhttp_request *req, const char *id, const char *subproto)
{
	char err[256];
	int status;
	struct session *s;
	const char *offered = evhttp_find_header(evhttp_request_get_input_headers(req), "Sec-WebSocket-Protocol");

	status = ws_check_upgrade(req, err, sizeof(err));
	if (status) {
		http_error(req, status, err, NULL);
		return;
	}
	if (!http_origin_ok(hs, req)) {
		http_error(req, 403, "WebSocket Origin not allowed (see allowed_origins in the config)", NULL);
		return;
	}
	s = sess_get(hs->mgr, id, err, sizeof(err), &status);
	if (!s) {
		http_error(req, status, err, NULL);
		return;
	}
	if (!subproto[0] && offered) {
		char copy[512], *save = NULL;
		snprintf(copy, sizeof(copy), "%s", offered);
		for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
			if (strcmp(t, "heru") == 0)
				snprintf((char *)subproto, 64, "heru");
	}
	status = sess_ws_accept(s, req, subproto[0] ? subproto : NULL, err, sizeof(err));
	if (status)
		http_error(req, status, err, NULL);
}

/* ---- static files -------------------------------------------------------------------------------- */

bool http_path_safe(const char *path)
{
	if (path[0] != '/')
		return false;
	if (strchr(path, '\\'))
		return false;
	for (const char *p = path; *p; p++) {
		if ((unsigned char)*p < 0x20)
			return false;
		if (p[0] == '/' && p[1] == '.')
			return false; /* "..", "." and hidden files */
	}
	return true;
}

static const char *http_mime(const char *path)
{
	static const struct { const char *ext, *type; } types[] = {
		{ ".html", "text/html; charset=utf-8" }, { ".js", "text/javascript; charset=utf-8" },
		{ ".mjs", "text/javascript; charset=utf-8" }, { ".css", "text/css; charset=utf-8" },
		{ ".json", "application/json" }, { ".svg", "image/svg+xml" }, { ".png", "image/png" },
		{ ".jpg", "image/jpeg" }, { ".jpeg", "image/jpeg" }, { ".ico", "image/x-icon" },
		{ ".wasm", "application/wasm" }, { ".txt", "text/plain; charset=utf-8" }, { ".map", "application/json" },
		{ ".woff2", "font/woff2" },
	};
	const char *dot = strrchr(path, '.');
	if (dot)
		for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
			if (strcasecmp(dot, types[i].ext) == 0)
				return types[i].type;
	return "application/octet-stream";
}

static void http_static(struct http_server *hs, struct evhttp_request *req, const char *path)
{
	char full[PATH_MAX], real[PATH_MAX];
	struct stat st;
	struct evbuffer *buf;
	int fd;
	size_t rl;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		http_error(req, 405, "method not allowed", NULL);
		return;
	}
	if (!hs->web_root[0]) {
		http_error(req, 404, "no web root configured (--web-root)", NULL);
		return;
	}
	if (!http_path_safe(path)) {
		http_error(req, 404, "not found", NULL);
		return;
	}
	if (snprintf(full, sizeof(full), "%s%s%s", hs->web_root, path,
		     path[strlen(path) - 1] == '/' ? "index.html" : "") >= (int)sizeof(full)) {
		http_error(req, 404, "not found", NULL);
		return;
	}
	if (!realpath(full, real)) {
		http_error(req, 404, "not found", NULL);
		return;
	}
	rl = strlen(hs->web_root);
	if (strncmp(real, hs->web_root, rl) != 0 || (real[rl] != '/' && real[rl] != 0)) {
		http_error(req, 404, "not found", NULL);
		return;
	}
	if (stat(real, &st) == 0 && S_ISDIR(st.st_mode)) {
		if (strlen(real) + 12 >= sizeof(real)) {
			http_error(req, 404, "not found", NULL);
			return;
		}
		strcat(real, "/index.html");
	}
	fd = open(real, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		http_error(req, 404, "not found", NULL);
		return;
	}
	buf = evbuffer_new();
	if (!buf) {
		close(fd);
		http_error(req, 500, "out of memory", NULL);
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", http_mime(real));
	evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-cache");
	evhttp_add_header(evhttp_request_get_output_headers(req), "X-Content-Type-Options", "nosniff");
	if (st.st_size > 0)
		evbuffer_add_file(buf, fd, 0, st.st_size); /* takes fd */
	else
		close(fd);
	evhttp_send_reply(req, 200, "OK", buf);
	evbuffer_free(buf);
}

/* ---- routing ------------------------------------------------------------------------------------ */

static void http_route(struct evhttp_request *req, void *arg)
{
	struct http_server *hs = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *raw = uri ? evhttp_uri_get_path(uri) : NULL;
	char *path = NULL;
	size_t plen = 0;
	char subproto[300] = "";
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

	if (!raw || !raw[0])
		raw = "/";
	path = evhttp_uridecode(raw, 0, &plen);
	if (!path || strlen(path) != plen) {
		http_error(req, 400, "request path is not valid", NULL);
		goto out;
	}
	log_debug("%s %s", cmd == EVHTTP_REQ_GET ? "GET" : cmd == EVHTTP_REQ_PUT ? "PUT" : "other", path);
	bool is_api = strncmp(path, "/api/", 5) == 0 || strcmp(path, "/metrics") == 0 || strncmp(path, "/ws/", 4) == 0;
	if (is_api && http_check_token(hs, req, subproto, sizeof(subproto)) < 0) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
		http_error(req, 401, "a valid token is required (Authorization: Bearer TOKEN)", NULL);
		goto out;
	}
	if (strncmp(path, "/ws/session/", 12) == 0) {
		http_ws(hs, req, path + 12, subproto);
		goto out;
	}
	if (strncmp(path, "/api/session/", 13) == 0) {
		http_session(hs, req, path + 13);
		goto out;
	}
	if (is_api && cmd != EVHTTP_REQ_GET) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
		http_error(req, 405, "method not allowed on this endpoint", NULL);
		goto out;
	}
	if (strcmp(path, "/api/health") == 0)
		http_health(hs, req);
	else if (strcmp(path, "/api/plugins") == 0) {
		json_t *j = hs->reg ? plugin_registry_json(hs->reg) : NULL;
		if (!j)
			j = json_pack("{s:[],s:[]}", "plugins", "refused");
		http_reply_json(req, 200, "OK", j);
	} else if (strcmp(path, "/api/schema") == 0)
		http_reply_json(req, 200, "OK", json_pack("{s:o}", "fields", cfg_schema_json()));
	else if (strcmp(path, "/metrics") == 0) {
		struct evbuffer *buf = evbuffer_new();
		sess_prometheus(hs->mgr, buf, hs->reg ? plugin_registry_count(hs->reg) : 0,
				hs->reg ? plugin_registry_refused_count(hs->reg) : 0);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
				  "text/plain; version=0.0.4; charset=utf-8");
		evhttp_send_reply(req, 200, "OK", buf);
		evbuffer_free(buf);
	} else if (is_api)
		http_error(req, 404, "no such endpoint", NULL);
	else
		http_static(hs, req, path);
out:
	free(path);
}

/* ---- setup ------------------------------------------------------------------------------------- */

struct http_server *http_server_new(struct event_base *base, struct sess_manager *mgr,
				    const struct plugin_registry *reg, const struct http_opts *opts, char *err,
				    size_t errlen)
{
	struct http_server *hs = calloc(1, sizeof(*hs));
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (!hs) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	hs->mgr = mgr;
	hs->reg = reg;
	hs->opts = *opts;
	if (opts->web_root && opts->web_root[0] && !realpath(opts->web_root, hs->web_root)) {
		log_warn("web root '%s' not found (%s); only the API is served", opts->web_root, strerror(errno));
		hs->web_root[0] = 0;
	}
	hs->http = evhttp_new(base);
	if (!hs->http) {
		snprintf(err, errlen, "cannot create the HTTP server");
		free(hs);
		return NULL;
	}
	evhttp_set_max_headers_size(hs->http, (ev_ssize_t)opts->max_header_bytes);
	evhttp_set_max_body_size(hs->http, (ev_ssize_t)opts->max_body_bytes);
	evhttp_set_timeout(hs->http, opts->timeout_s);
	evhttp_set_allowed_methods(hs->http, EVHTTP_REQ_GET | EVHTTP_REQ_PUT | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
						     EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS);
	evhttp_set_gencb(hs->http, http_route, hs);
	hs->bound = evhttp_bind_socket_with_handle(hs->http, opts->host, (ev_uint16_t)opts->port);
	if (!hs->bound) {
		snprintf(err, errlen, "cannot listen on %s:%d: %s", opts->host, opts->port, strerror(errno));
		evhttp_free(hs->http);
		free(hs);
		return NULL;
	}
	if (getsockname(evhttp_bound_socket_get_fd(hs->bound), (struct sockaddr *)&ss, &sl) == 0)
		hs->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							  : ((struct sockaddr_in *)&ss)->sin_port);
	return hs;
}

int http_server_port(const struct http_server *hs) { return hs->port; }

void http_server_stop_accepting(struct http_server *hs)
{
	if (hs->bound) {
		evhttp_del_accept_socket(hs->http, hs->bound);
		hs->bound = NULL;
	}
}

void http_server_free(struct http_server *hs)
{
	if (!hs)
		return;
	evhttp_free(hs->http);
	free(hs);
}
