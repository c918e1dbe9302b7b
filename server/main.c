/* main.c: herud entry point: options (flags over conf/heru.json), startup, signals
 * and clean shutdown.
 *
 * DESIGN
 * Startup order: options, libevent with pthreads (workers wake the loop with
 * event_active), the plugin registry (loaded here, before the loop runs), sessions
 * (they own the pipeline), then the HTTP server. SIGINT/SIGTERM: stop accepting,
 * close every WebSocket with 1001, keep the loop running until they are gone (or
 * 3 s), then free in reverse order (sessions join every worker thread). A second
 * signal skips the grace period. */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "plugin.h"
#include "session.h"

#define MAX_ORIGINS 16

struct options {
	char listen[300];
	char config[4096];
	char plugin_dir[4096];
	char web_root[4096];
	char log_level[16];
	char token[256];
	int http_timeout_s;
	size_t max_header_bytes, max_body_bytes, max_ws_message_bytes;
	size_t max_sessions, max_clients, max_clients_per_session;
	size_t send_queue_bytes, send_queue_frames;
	double ws_idle_timeout_s, slow_client_close_s, session_idle_s;
	char *origins[MAX_ORIGINS + 1];
	json_t *session_defaults; /* new */
};

struct server {
	struct event_base *base;
	struct sess_manager *mgr;
	struct http_server *http;
	struct event *sigint, *sigterm, *grace;
	double grace_until;
	bool stopping;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: herud [options]\n"
		   "  --listen HOST:PORT   address to serve on (default 127.0.0.1:8000; port 0 = any free port)\n"
		   "  --config FILE        JSON config file (default conf/heru.json when it exists)\n"
		   "  --plugin-dir DIR     folder of plugin *.so files (default " HERUD_PLUGINDIR ")\n"
		   "  --web-root DIR       folder of the browser UI (default web)\n"
		   "  --log-level LEVEL    error, warn, info or debug (default info)\n"
		   "  --token TOKEN        require this token for the API and WebSockets (needed off loopback)\n"
		   "  --print-schema       print the session config schema as JSON and exit\n"
		   "  --help, --version\n"
		   "Every flag can also be set in the config file (listen, plugin_dir, web_root, log_level, token),\n"
		   "next to the limits described in README \"herud\".\n");
}

static void options_defaults(struct options *o)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->listen, sizeof(o->listen), "127.0.0.1:8000");
	snprintf(o->plugin_dir, sizeof(o->plugin_dir), "%s", HERUD_PLUGINDIR);
	snprintf(o->web_root, sizeof(o->web_root), "web");
	snprintf(o->log_level, sizeof(o->log_level), "info");
	o->http_timeout_s = 30;
	o->max_header_bytes = 16 * 1024;
	o->max_body_bytes = 1024 * 1024;
	o->max_ws_message_bytes = 8 * 1024 * 1024;
	o->max_sessions = 64;
	o->max_clients = 256;
	o->max_clients_per_session = 32;
	o->send_queue_bytes = 2 * 1024 * 1024;
	o->send_queue_frames = 3;
	o->ws_idle_timeout_s = 60;
	o->slow_client_close_s = 10;
	o->session_idle_s = 1800;
}

static void options_release(struct options *o)
{
	for (int i = 0; o->origins[i]; i++)
		free(o->origins[i]);
	json_decref(o->session_defaults);
}

static int opt_string(json_t *v, const char *key, char *dst, size_t n)
{
	if (!json_is_string(v) || json_string_length(v) >= n) {
		fprintf(stderr, "herud: config key \"%s\" must be a string shorter than %zu bytes\n", key, n);
		return -1;
	}
	snprintf(dst, n, "%s", json_string_value(v));
	return 0;
}

static int opt_number(json_t *v, const char *key, double min, double max, double *out)
{
	if (!json_is_number(v) || json_number_value(v) < min || json_number_value(v) > max) {
		fprintf(stderr, "herud: config key \"%s\" must be a number from %g to %g\n", key, min, max);
		return -1;
	}
	*out = json_number_value(v);
	return 0;
}

/* One key of the config file. Returns 0 or -1 (after printing why). */
static int options_set_key(struct options *o, const char *key, json_t *v, const char *path)
{
	int rc = 0;
	double d;

	if (strcmp(key, "listen") == 0)
		rc |= opt_string(v, key, o->listen, sizeof(o->listen));
	else if (strcmp(key, "plugin_dir") == 0)
		rc |= opt_string(v, key, o->plugin_dir, sizeof(o->plugin_dir));
	else if (strcmp(key, "web_root") == 0)
		rc |= opt_string(v, key, o->web_root, sizeof(o->web_root));
	else if (strcmp(key, "log_level") == 0)
		rc |= opt_string(v, key, o->log_level, sizeof(o->log_level));
	else if (strcmp(key, "token") == 0)
		rc |= json_is_null(v) ? 0 : opt_string(v, key, o->token, sizeof(o->token));
	else if (strcmp(key, "http_timeout_s") == 0)
		{
		if (opt_number(v, key, 1, 3600, &d) < 0)
			return -1;
		o->http_timeout_s = (int)d;
	}
	else if (strcmp(key, "max_header_bytes") == 0)
		{
		if (opt_number(v, key, 1024, 1 << 20, &d) < 0)
			return -1;
		o->max_header_bytes = (size_t)d;
	}
	else if (strcmp(key, "max_body_bytes") == 0)
		{
		if (opt_number(v, key, 1024, 64 << 20, &d) < 0)
			return -1;
		o->max_body_bytes = (size_t)d;
	}
	else if (strcmp(key, "max_ws_message_bytes") == 0)
		{
		if (opt_number(v, key, 1024, 64 << 20, &d) < 0)
			return -1;
		o->max_ws_message_bytes = (size_t)d;
	}
	else if (strcmp(key, "max_sessions") == 0)
		{
		if (opt_number(v, key, 1, 100000, &d) < 0)
			return -1;
		o->max_sessions = (size_t)d;
	}
	else if (strcmp(key, "max_clients") == 0)
		{
		if (opt_number(v, key, 1, 100000, &d) < 0)
			return -1;
		o->max_clients = (size_t)d;
	}
	else if (strcmp(key, "max_clients_per_session") == 0)
		{
		if (opt_number(v, key, 1, 100000, &d) < 0)
			return -1;
		o->max_clients_per_session = (size_t)d;
	}
	else if (strcmp(key, "send_queue_bytes") == 0)
		{
		if (opt_number(v, key, 16384, 1 << 30, &d) < 0)
			return -1;
		o->send_queue_bytes = (size_t)d;
	}
	else if (strcmp(key, "send_queue_frames") == 0)
		{
		if (opt_number(v, key, 1, 1000, &d) < 0)
			return -1;
		o->send_queue_frames = (size_t)d;
	}
	else if (strcmp(key, "ws_idle_timeout_s") == 0)
		rc |= opt_number(v, key, 1, 86400, &o->ws_idle_timeout_s);
	else if (strcmp(key, "session_idle_s") == 0)
		rc |= opt_number(v, key, 1, 7 * 86400, &o->session_idle_s);
	else if (strcmp(key, "slow_client_close_s") == 0)
		rc |= opt_number(v, key, 0.5, 3600, &o->slow_client_close_s);
	else if (strcmp(key, "allowed_origins") == 0) {
		size_t i;
		json_t *e;
		if (!json_is_array(v) || json_array_size(v) > MAX_ORIGINS) {
			fprintf(stderr, "herud: config key \"allowed_origins\" must be an array of at most %d strings\n",
				MAX_ORIGINS);
			rc = -1;
			return -1;
		}
		json_array_foreach(v, i, e) {
			if (!json_is_string(e)) {
				fprintf(stderr, "herud: allowed_origins must hold strings\n");
				rc = -1;
				break;
			}
			o->origins[i] = strdup(json_string_value(e));
		}
	} else if (strcmp(key, "session_defaults") == 0) {
		json_t *errors = json_array(), *merged = NULL, *def = cfg_defaults();
		if (cfg_merge(def, v, &merged, errors) < 0) {
			size_t i;
			json_t *e;
			fprintf(stderr, "herud: config key \"session_defaults\" is invalid:\n");
			json_array_foreach(errors, i, e)
				fprintf(stderr, "  %s: %s\n", json_string_value(json_object_get(e, "field")),
					json_string_value(json_object_get(e, "reason")));
			rc = -1;
		} else {
			json_decref(o->session_defaults);
			o->session_defaults = json_incref(v);
		}
		json_decref(merged);
		json_decref(def);
		json_decref(errors);
	} else {
		fprintf(stderr, "herud: unknown key \"%s\" in config '%s'\n", key, path);
		rc = -1;
	}
	return rc ? -1 : 0;
}

static int options_load_file(struct options *o, const char *path, bool required)
{
	json_error_t jerr;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr), *v;
	const char *key;
	int rc = 0;

	if (!root) {
		if (!required && errno == ENOENT && jerr.line == -1)
			return 0;
		fprintf(stderr, "herud: cannot read config '%s': %s (line %d)\n", path, jerr.text, jerr.line);
		return -1;
	}
	if (!json_is_object(root)) {
		fprintf(stderr, "herud: config '%s' must be a JSON object\n", path);
		json_decref(root);
		return -1;
	}
	json_object_foreach(root, key, v)
		if (options_set_key(o, key, v, path) < 0)
			rc = -1;
	json_decref(root);
	return rc ? -1 : 0;
}

/* HOST:PORT or [V6]:PORT into host and port. */
static int parse_listen(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon;
	char *end;
	long p;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':' || (size_t)(rb - s - 1) >= hostlen)
			return -1;
		memcpy(host, s + 1, (size_t)(rb - s - 1));
		host[rb - s - 1] = 0;
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || colon == s || (size_t)(colon - s) >= hostlen)
			return -1;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = 0;
	}
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || p < 0 || p > 65535)
		return -1;
	*port = (int)p;
	return 0;
}

static bool is_loopback(const char *host)
{
	return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 || strcmp(host, "localhost") == 0;
}

/* ---- signals and shutdown ------------------------------------------------------------------------ */

static void grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	if (sess_manager_clients(srv->mgr) == 0 || metrics_now() > srv->grace_until)
		event_base_loopbreak(srv->base);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;
	struct timeval tick = { 0, 50000 };

	if (srv->stopping) {
		log_warn("second signal: stopping now");
		event_base_loopbreak(srv->base);
		return;
	}
	srv->stopping = true;
	log_info("signal %d: shutting down (closing WebSockets with 1001)", (int)sig);
	http_server_stop_accepting(srv->http);
	sess_manager_close_all(srv->mgr, WS_CLOSE_GOING_AWAY, "server shutting down");
	srv->grace_until = metrics_now() + 3.0;
	srv->grace = event_new(srv->base, -1, EV_PERSIST, grace_cb, srv);
	if (!srv->grace || event_add(srv->grace, &tick) < 0)
		event_base_loopbreak(srv->base);
}

/* The host handed to plugins' init (instances get their own from pipeline.c). */
static void reg_host_log(const struct heru_host *host, int level, const char *msg)
{
	if (level < HERU_LOG_ERROR || level > HERU_LOG_DEBUG)
		level = HERU_LOG_INFO;
	log_msg((enum log_level)level, "%s", msg ? msg : "(null)");
}
static void reg_host_report(const struct heru_host *host, const char *mode, float progress) {}
static bool reg_host_cancelled(const struct heru_host *host) { return false; }

static struct heru_host reg_host = {
	.struct_size = sizeof(struct heru_host), .abi_major = HERU_ABI_MAJOR, .abi_minor = HERU_ABI_MINOR,
	.name = "herud", .version = PACKAGE_VERSION, .log = reg_host_log, .report = reg_host_report,
	.is_cancelled = reg_host_cancelled, .frame_new = plugin_host_frame_new,
};

static int print_schema(void)
{
	json_t *schema = cfg_schema_json();
	char *text = json_dumps(schema, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
	puts(text ? text : "[]");
	free(text);
	json_decref(schema);
	return 0;
}

/* Flags over the config file over the defaults. Returns 0 to serve, 1 when done
 * (help, version, schema: *RC holds the exit code), -1 on a usage error. */
static int parse_options(int argc, char **argv, struct options *o, int *rc)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },   { "config", required_argument, NULL, 'c' },
		{ "plugin-dir", required_argument, NULL, 'p' }, { "web-root", required_argument, NULL, 'w' },
		{ "log-level", required_argument, NULL, 'L' }, { "token", required_argument, NULL, 't' },
		{ "print-schema", no_argument, NULL, 's' },  { "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },	     { NULL, 0, NULL, 0 },
	};
	const char *flag[5] = { NULL }; /* listen, plugin-dir, web-root, log-level, token */
	const char *config_path = NULL;
	int c;

	*rc = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'l': flag[0] = optarg; break;
		case 'c': config_path = optarg; break;
		case 'p': flag[1] = optarg; break;
		case 'w': flag[2] = optarg; break;
		case 'L': flag[3] = optarg; break;
		case 't': flag[4] = optarg; break;
		case 's': *rc = print_schema(); return 1;
		case 'h': usage(stdout); return 1;
		case 'V': printf("herud %s\n", PACKAGE_VERSION); return 1;
		default: usage(stderr); *rc = 2; return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "herud: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		*rc = 2;
		return -1;
	}
	*rc = 1;
	if (options_load_file(o, config_path ? config_path : "conf/heru.json", config_path != NULL) < 0)
		return -1;
	if (flag[0]) snprintf(o->listen, sizeof(o->listen), "%s", flag[0]);
	if (flag[1]) snprintf(o->plugin_dir, sizeof(o->plugin_dir), "%s", flag[1]);
	if (flag[2]) snprintf(o->web_root, sizeof(o->web_root), "%s", flag[2]);
	if (flag[3]) snprintf(o->log_level, sizeof(o->log_level), "%s", flag[3]);
	if (flag[4]) snprintf(o->token, sizeof(o->token), "%s", flag[4]);
	*rc = 0;
	return 0;
}

static void limits_from_options(const struct options *o, struct sess_limits *lim)
{
	memset(lim, 0, sizeof(*lim));
	lim->max_sessions = o->max_sessions;
	lim->max_clients = o->max_clients;
	lim->max_clients_per_session = o->max_clients_per_session;
	lim->session_idle_s = o->session_idle_s;
	lim->ws.max_message = o->max_ws_message_bytes;
	lim->ws.max_queue_bytes = o->send_queue_bytes;
	lim->ws.max_queue_frames = o->send_queue_frames;
	lim->ws.hard_queue_bytes = o->send_queue_bytes * 4 + 1024 * 1024;
	lim->ws.slow_close_s = o->slow_client_close_s;
	lim->ws.idle_timeout_s = o->ws_idle_timeout_s;
	lim->ws.sndbuf = o->send_queue_bytes;
}

/* Start everything, run the loop until a signal, free everything. Returns the exit code. */
static int serve(const struct options *o, const char *host, int port, double start)
{
	struct server srv = { 0 };
	struct plugin_registry *reg = NULL;
	struct sess_limits lim;
	struct http_opts hopts;
	char err[512];
	int rc = 1;

	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() < 0 || !(srv.base = event_base_new())) {
		fprintf(stderr, "herud: cannot create the event loop (libevent with pthreads)\n");
		return 1;
	}
	reg = plugin_registry_new(o->plugin_dir, &reg_host);
	if (!reg) {
		fprintf(stderr, "herud: out of memory loading plugins\n");
		goto out_base;
	}
	log_info("plugins: %zu loaded, %zu refused from %s", plugin_registry_count(reg),
		 plugin_registry_refused_count(reg), o->plugin_dir);
	limits_from_options(o, &lim);
	srv.mgr = sess_manager_new(srv.base, reg, &lim, o->session_defaults, start);
	if (!srv.mgr) {
		fprintf(stderr, "herud: out of memory creating sessions\n");
		goto out_reg;
	}
	memset(&hopts, 0, sizeof(hopts));
	hopts.host = host;
	hopts.port = port;
	hopts.web_root = o->web_root;
	hopts.token = o->token;
	hopts.origins = (const char *const *)o->origins;
	hopts.max_header_bytes = o->max_header_bytes;
	hopts.max_body_bytes = o->max_body_bytes;
	hopts.timeout_s = o->http_timeout_s;
	hopts.start_s = start;
	srv.http = http_server_new(srv.base, srv.mgr, reg, &hopts, err, sizeof(err));
	if (!srv.http) {
		fprintf(stderr, "herud: %s\n", err);
		goto out_mgr;
	}
	srv.sigint = evsignal_new(srv.base, SIGINT, signal_cb, &srv);
	srv.sigterm = evsignal_new(srv.base, SIGTERM, signal_cb, &srv);
	if (!srv.sigint || !srv.sigterm || event_add(srv.sigint, NULL) < 0 || event_add(srv.sigterm, NULL) < 0) {
		fprintf(stderr, "herud: cannot install signal handlers\n");
		goto out_http;
	}
	log_info("listening on http://%s%s%s:%d (web root %s)", strchr(host, ':') ? "[" : "", host,
		 strchr(host, ':') ? "]" : "", http_server_port(srv.http), o->web_root);
	event_base_dispatch(srv.base);
	log_info("stopped");
	rc = 0;
out_http:
	if (srv.grace)
		event_free(srv.grace);
	if (srv.sigint)
		event_free(srv.sigint);
	if (srv.sigterm)
		event_free(srv.sigterm);
out_mgr:
	sess_manager_free(srv.mgr); /* aborts remaining clients, joins workers (before evhttp_free) */
	http_server_free(srv.http);
out_reg:
	plugin_registry_free(reg);
out_base:
	event_base_free(srv.base);
	libevent_global_shutdown();
	return rc;
}

int main(int argc, char **argv)
{
	struct options o;
	enum log_level level;
	char host[256];
	int port, rc;
	double start = metrics_now();

	options_defaults(&o);
	if (parse_options(argc, argv, &o, &rc) != 0)
		goto out;
	rc = 1;
	if (log_parse_level(o.log_level, &level) < 0) {
		fprintf(stderr, "herud: --log-level must be error, warn, info or debug, not '%s'\n", o.log_level);
		goto out;
	}
	log_set_level(level);
	if (parse_listen(o.listen, host, sizeof(host), &port) < 0) {
		fprintf(stderr, "herud: --listen must be HOST:PORT (e.g. 127.0.0.1:8000), not '%s'\n", o.listen);
		goto out;
	}
	if (!is_loopback(host) && !o.token[0]) {
		fprintf(stderr, "herud: listening on %s (not loopback) requires --token\n", host);
		goto out;
	}
	rc = serve(&o, host, port, start);
out:
	options_release(&o);
	return rc;
}
