/*
 * heru_bench.c: heru-bench, a load generator for herud.
 *
 * DESIGN
 *
 * C client threads, each with its own WebSocket (and, unless --shared, its own
 * session), select the mock backend (or --backend), wait on a barrier, then send
 * pre-encoded JPEG frames as binary messages at F frames/s for T seconds and match
 * the answers by frame id (the client index is in the id's top byte, so clients of a
 * shared session only count their own frames). Latency = answer time - send time,
 * measured on one monotonic clock. Frames that never come back (dropped by the server's
 * session inbox: newest wins, or the oldest gives way in a chunk-sized inbox; or replaced
 * in a slow client's send queue) are drops. The server's CPU time and resident memory come from /proc/PID of the
 * process listening on the port (or --server-pid), sampled at the start and end of
 * the measured window. The sessions' own stats (GET /api/session/{id}/stats) are
 * summed as the server's view.
 */
#include "config.h"

#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli_util.h"
#include "ws_client.h"

#define MAX_CLIENTS 255
#define JPEG_SET 30

struct bench_opts {
	int clients, width, height;
	double fps, seconds, drain_s;
	const char *url, *prompt, *backend, *token, *plugin_dir, *config;
	bool shared, json;
	pid_t server_pid;
};

struct bench {
	struct bench_opts o;
	struct ws_url url;
	uint8_t *jpeg[JPEG_SET];
	size_t jlen[JPEG_SET], maxlen;
	pthread_barrier_t ready;
	double t_start, t_end; /* written by the main thread between the two barrier waits */
	pthread_barrier_t go;
	char run_id[32];
};

struct client {
	struct bench *b;
	int index;
	pthread_t thread;
	char session[80];
	uint64_t sent, received, others;
	double *lat;
	size_t nlat, cap;
	double *sent_at; /* per sequence number */
	size_t max_seq;
	bool failed;
	char err[512];
	/* the session's stats from the server, after the run */
	json_t *stats;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: heru-bench [options]\n"
		"Stream generated frames from C clients at F fps for T seconds and report\n"
		"delivered frames/s, drops, latency p50/p95/p99 and the server's CPU and memory.\n\n"
		"  --clients C      concurrent WebSocket clients (default 1, max %d)\n"
		"  --fps F          frames per second per client (default 30)\n"
		"  --seconds T      measured duration (default 10)\n"
		"  --size WxH       frame size (default 512x512)\n"
		"  --url URL        server (default http://127.0.0.1:8000; started when absent)\n"
		"  --shared         all clients in one session (default: one session each)\n"
		"  --backend ID     backend to select (default mock)\n"
		"  --prompt TEXT    prompt (default \"comic cartoon city\")\n"
		"  --drain S        seconds to wait for late answers after the run (default 2)\n"
		"  --server-pid P   measure this process (default: the one listening on the port)\n"
		"  --token T        bearer token\n"
		"  --plugin-dir D   plugin folder for a herud started by heru-bench\n"
		"  --config FILE    config file for a herud started by heru-bench\n"
		"  --json           print one JSON object instead of text\n", MAX_CLIENTS);
}

static int parse_opts(int argc, char **argv, struct bench_opts *o)
{
	static const struct option longopts[] = {
		{ "clients", required_argument, NULL, 'c' },
		{ "fps", required_argument, NULL, 'f' },
		{ "seconds", required_argument, NULL, 't' },
		{ "size", required_argument, NULL, 's' },
		{ "url", required_argument, NULL, 'u' },
		{ "shared", no_argument, NULL, 'S' },
		{ "backend", required_argument, NULL, 'b' },
		{ "prompt", required_argument, NULL, 'p' },
		{ "drain", required_argument, NULL, 'd' },
		{ "server-pid", required_argument, NULL, 'P' },
		{ "token", required_argument, NULL, 'k' },
		{ "plugin-dir", required_argument, NULL, 'D' },
		{ "config", required_argument, NULL, 'C' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': o->clients = (int)strtol(optarg, &end, 10); if (*end) o->clients = -1; break;
		case 'f': o->fps = strtod(optarg, &end); if (*end) o->fps = -1; break;
		case 't': o->seconds = strtod(optarg, &end); if (*end) o->seconds = -1; break;
		case 's':
			if (sscanf(optarg, "%dx%d", &o->width, &o->height) != 2)
				o->width = -1;
			break;
		case 'u': o->url = optarg; break;
		case 'S': o->shared = true; break;
		case 'b': o->backend = optarg; break;
		case 'p': o->prompt = optarg; break;
		case 'd': o->drain_s = strtod(optarg, &end); if (*end) o->drain_s = -1; break;
		case 'P': o->server_pid = (pid_t)strtol(optarg, &end, 10); if (*end) o->server_pid = -1; break;
		case 'k': o->token = optarg; break;
		case 'D': o->plugin_dir = optarg; break;
		case 'C': o->config = optarg; break;
		case 'j': o->json = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "heru-bench: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (o->clients < 1 || o->clients > MAX_CLIENTS || !(o->fps > 0 && o->fps <= 240) ||
	    !(o->seconds > 0 && o->seconds <= 86400) || o->width < 8 || o->width > 8192 ||
	    o->height < 8 || o->height > 8192 || !(o->drain_s >= 0 && o->drain_s <= 60) ||
	    o->server_pid < 0) {
		fprintf(stderr, "heru-bench: need --clients 1..%d, --fps 0..240, --seconds > 0, "
			"--size WxH within 8..8192, --drain 0..60\n", MAX_CLIENTS);
		return -1;
	}
	return 0;
}

/* Wait for a config.current (revision > after). Returns its revision or -1. */
static long long wait_config(struct client *c, struct ws_client *ws, long long after,
	int timeout_ms)
{
	double deadline = ws_now_ms() + timeout_ms;
	struct ws_message m;

	for (;;) {
		int left = (int)(deadline - ws_now_ms()), rc;
		if (left <= 0) {
			snprintf(c->err, sizeof(c->err), "no config.current within %d ms", timeout_ms);
			return -1;
		}
		rc = ws_client_recv(ws, left, &m, c->err, sizeof(c->err));
		if (rc < 0)
			return -1;
		if (rc == 1 && m.opcode == WS_TEXT) {
			json_t *j = json_loadb((const char *)m.data, m.len, 0, NULL);
			const char *type = json_string_value(json_object_get(j, "type"));
			long long rev = -1;
			if (type && strcmp(type, "error") == 0) {
				snprintf(c->err, sizeof(c->err), "server error: %s",
					json_string_value(json_object_get(json_object_get(j, "payload"),
						"message")) ?: "(no message)");
				json_decref(j);
				return -1;
			}
			if (type && strcmp(type, "config.current") == 0)
				rev = json_integer_value(json_object_get(json_object_get(j, "payload"),
					"revision"));
			json_decref(j);
			if (rev > after || (after < 0 && rev >= 0))
				return rev;
		} else if (rc == 1 && m.opcode == WS_CLOSE) {
			snprintf(c->err, sizeof(c->err), "the server closed the WebSocket (code %u)",
				m.close_code);
			return -1;
		}
	}
}

static void on_binary(struct client *c, const struct ws_message *m, double now)
{
	uint32_t id, seq;
	double ts;

	if (!cli_parse_frame_header(m->data, m->len, &id, &ts))
		return;
	if ((int)(id >> 24) != c->index) {
		c->others++;
		return;
	}
	seq = id & 0xffffff;
	if (seq == 0 || seq > c->max_seq || c->sent_at[seq] <= 0)
		return;
	c->sent_at[seq] = -1; /* answered */
	c->received++;
	if (c->nlat < c->cap)
		c->lat[c->nlat++] = now - ts;
}

static json_t *fetch_stats(struct bench *b, const char *session)
{
	char path[160], err[256], *body = NULL;
	int status = 0;
	json_t *j;

	snprintf(path, sizeof(path), "/api/session/%s/stats", session);
	if (ws_http_request(&b->url, "GET", path, NULL, b->o.token, 5000, &status, &body, err,
		    sizeof(err)) != 0 || status != 200) {
		free(body);
		return NULL;
	}
	j = json_loads(body, 0, NULL);
	free(body);
	return j;
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	struct bench *b = c->b;
	struct ws_client *ws = NULL;
	uint8_t *buf = NULL;
	char path[160];
	double next, drain_end, now;
	long long rev;
	uint32_t seq = 0;
	json_t *patch = NULL;
	char *text = NULL;

	buf = malloc(b->maxlen + CLI_FRAME_HEADER);
	if (!buf) {
		snprintf(c->err, sizeof(c->err), "out of memory");
		goto fail_ready;
	}
	snprintf(path, sizeof(path), "/ws/session/%s", c->session);
	ws = ws_client_connect(&b->url, path, b->o.token, 10000, c->err, sizeof(c->err));
	if (!ws)
		goto fail_ready;
	rev = wait_config(c, ws, -1, 10000);
	if (rev < 0)
		goto fail_ready;
	if (!b->o.shared || c->index == 0) {
		patch = json_pack("{s:s, s:{s:s, s:s, s:i, s:i, s:i}}", "type", "config.update",
			"payload", "backend", b->o.backend, "prompt", b->o.prompt, "output_width",
			b->o.width, "output_height", b->o.height, "target_fps",
			(int)(b->o.fps < 5 ? 5 : b->o.fps > 60 ? 60 : b->o.fps));
		text = patch ? json_dumps(patch, JSON_COMPACT) : NULL;
		if (!text || ws_client_send(ws, WS_TEXT, text, strlen(text), c->err,
				     sizeof(c->err)) != 0)
			goto fail_ready;
		if (wait_config(c, ws, rev, 30000) < 0)
			goto fail_ready;
	}
	pthread_barrier_wait(&b->ready);
	pthread_barrier_wait(&b->go);

	/* stagger the clients over one frame interval */
	next = b->t_start + (1000.0 / b->o.fps) * c->index / b->o.clients;
	while ((now = ws_now_ms()) < b->t_end) {
		struct ws_message m;
		int rc, wait;

		if (now >= next) {
			size_t k = seq % JPEG_SET;
			seq++;
			if (seq > c->max_seq)
				break;
			if (cli_send_frame(ws, buf, (uint32_t)c->index << 24 | seq, now, b->jpeg[k],
					   b->jlen[k], c->err, sizeof(c->err)) != 0)
				goto fail;
			c->sent_at[seq] = now;
			c->sent++;
			next += 1000.0 / b->o.fps;
			if (next < now - 1000.0)
				next = now; /* we fell far behind: do not burst */
			continue;
		}
		wait = (int)(next - now) + 1;
		rc = ws_client_recv(ws, wait, &m, c->err, sizeof(c->err));
		if (rc < 0)
			goto fail;
		if (rc == 1 && m.opcode == WS_BINARY)
			on_binary(c, &m, ws_now_ms());
		else if (rc == 1 && m.opcode == WS_CLOSE) {
			snprintf(c->err, sizeof(c->err), "the server closed the WebSocket (code %u)",
				m.close_code);
			goto fail;
		}
	}
	drain_end = ws_now_ms() + b->o.drain_s * 1000.0;
	while ((now = ws_now_ms()) < drain_end && c->received < c->sent) {
		struct ws_message m;
		int rc = ws_client_recv(ws, (int)(drain_end - now) + 1, &m, c->err, sizeof(c->err));
		if (rc < 0)
			goto fail;
		if (rc == 1 && m.opcode == WS_BINARY)
			on_binary(c, &m, ws_now_ms());
	}
	if (!b->o.shared || c->index == 0)
		c->stats = fetch_stats(b, c->session);
	ws_client_close(ws, 1000);
	free(buf);
	free(text);
	json_decref(patch);
	return NULL;

fail_ready:
	c->failed = true;
	pthread_barrier_wait(&b->ready);
	pthread_barrier_wait(&b->go);
	goto out;
fail:
	c->failed = true;
out:
	ws_client_close(ws, 1000);
	free(buf);
	free(text);
	json_decref(patch);
	return NULL;
}

/* CPU seconds used by this process (all client threads). */
static double self_cpu_seconds(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double stat_num(json_t *stats, const char *key)
{
	return json_number_value(json_object_get(stats, key));
}

int main(int argc, char **argv)
{
	struct bench *b = calloc(1, sizeof(*b));
	struct client *clients = NULL;
	double *all = NULL, cpu0 = -1, cpu1 = -1, elapsed, self0, self1;
	uint64_t sent = 0, received = 0, others = 0;
	double srv_in = 0, srv_out = 0, srv_drop = 0;
	size_t nall = 0;
	pid_t started = 0, pid;
	long rss;
	char err[512];
	int i, failed = 0, status = 1;

	signal(SIGPIPE, SIG_IGN);
	if (!b)
		return 1;
	b->o = (struct bench_opts){
		.clients = 1, .width = 512, .height = 512, .fps = 30, .seconds = 10, .drain_s = 2,
		.url = "http://127.0.0.1:8000", .prompt = "comic cartoon city", .backend = "mock",
	};
	if (parse_opts(argc, argv, &b->o) != 0) {
		free(b);
		return 2;
	}
	if (ws_url_parse(b->o.url, &b->url, err, sizeof(err)) != 0) {
		fprintf(stderr, "heru-bench: %s\n", err);
		free(b);
		return 2;
	}
	if (cli_ensure_server(&b->url, b->o.token, b->o.plugin_dir, b->o.config, !b->o.json,
		    &started, err, sizeof(err)) != 0) {
		fprintf(stderr, "heru-bench: %s\n", err);
		free(b);
		return 1;
	}
	pid = b->o.server_pid ? b->o.server_pid : started ? started : cli_find_listener(b->url.port);
	for (i = 0; i < JPEG_SET; i++) {
		if (cli_make_jpeg(b->o.width, b->o.height, i, &b->jpeg[i], &b->jlen[i], err,
			    sizeof(err)) != 0) {
			fprintf(stderr, "heru-bench: %s\n", err);
			goto out;
		}
		if (b->jlen[i] > b->maxlen)
			b->maxlen = b->jlen[i];
	}
	snprintf(b->run_id, sizeof(b->run_id), "%d", (int)getpid());
	clients = calloc((size_t)b->o.clients, sizeof(*clients));
	if (!clients)
		goto out;
	pthread_barrier_init(&b->ready, NULL, (unsigned)b->o.clients + 1);
	pthread_barrier_init(&b->go, NULL, (unsigned)b->o.clients + 1);
	for (i = 0; i < b->o.clients; i++) {
		struct client *c = &clients[i];
		c->b = b;
		c->index = i;
		c->max_seq = (size_t)(b->o.fps * b->o.seconds) + 16;
		c->cap = c->max_seq;
		c->lat = calloc(c->cap, sizeof(double));
		c->sent_at = calloc(c->max_seq + 1, sizeof(double));
		if (b->o.shared)
			snprintf(c->session, sizeof(c->session), "bench-%s", b->run_id);
		else
			snprintf(c->session, sizeof(c->session), "bench-%s-%d", b->run_id, i);
		if (!c->lat || !c->sent_at ||
		    pthread_create(&c->thread, NULL, client_main, c) != 0) {
			fprintf(stderr, "heru-bench: cannot start client %d\n", i);
			/* let the started ones through the barriers is not possible: abort */
			exit(1);
		}
	}
	pthread_barrier_wait(&b->ready);
	b->t_start = ws_now_ms() + 200.0;
	b->t_end = b->t_start + b->o.seconds * 1000.0;
	pthread_barrier_wait(&b->go);
	while (ws_now_ms() < b->t_start)
		usleep(1000);
	cpu0 = pid > 0 ? cli_proc_cpu_seconds(pid) : -1;
	self0 = self_cpu_seconds();
	while (ws_now_ms() < b->t_end)
		usleep(10000);
	cpu1 = pid > 0 ? cli_proc_cpu_seconds(pid) : -1;
	self1 = self_cpu_seconds();
	rss = pid > 0 ? cli_proc_rss_kb(pid) : -1;
	elapsed = (b->t_end - b->t_start) / 1000.0;
	for (i = 0; i < b->o.clients; i++)
		pthread_join(clients[i].thread, NULL);

	all = calloc((size_t)b->o.clients * clients[0].cap + 1, sizeof(double));
	if (!all)
		goto out;
	for (i = 0; i < b->o.clients; i++) {
		struct client *c = &clients[i];
		if (c->failed) {
			failed++;
			fprintf(stderr, "heru-bench: client %d: %s\n", i, c->err);
		}
		sent += c->sent;
		received += c->received;
		others += c->others;
		memcpy(all + nall, c->lat, c->nlat * sizeof(double));
		nall += c->nlat;
		if (c->stats) {
			srv_in += stat_num(c->stats, "frames_in");
			srv_out += stat_num(c->stats, "frames_out");
			srv_drop += stat_num(c->stats, "frames_dropped");
		}
	}
	{
		double p50 = cli_percentile(all, nall, 50), p95 = cli_percentile(all, nall, 95);
		double p99 = cli_percentile(all, nall, 99);
		double cpu = cpu0 >= 0 && cpu1 >= 0 ? (cpu1 - cpu0) / elapsed * 100.0 : -1;
		double drops = sent ? (double)(sent - received) : 0;
		double self_cpu = (self1 - self0) / elapsed * 100.0;
		double load[1] = { -1 };

		if (b->o.json) {
			json_t *j = json_pack("{s:i, s:f, s:f, s:i, s:i, s:b, s:I, s:I, s:f, s:I, s:f, "
				"s:f, s:f, s:f, s:f, s:f, s:I, s:i, s:{s:f, s:f, s:f}, s:f, s:f}",
				"clients", b->o.clients, "fps", b->o.fps, "seconds", elapsed,
				"width", b->o.width, "height", b->o.height, "shared", b->o.shared,
				"sent", (json_int_t)sent, "delivered", (json_int_t)received,
				"delivered_fps", (double)received / elapsed,
				"dropped", (json_int_t)(sent - received),
				"drop_rate", sent ? drops / (double)sent : 0.0,
				"latency_p50_ms", p50, "latency_p95_ms", p95, "latency_p99_ms", p99,
				"server_cpu_percent", cpu, "cpu_cores", (double)sysconf(_SC_NPROCESSORS_ONLN),
				"server_rss_kb", (json_int_t)rss, "failed_clients", failed,
				"server_stats", "frames_in", srv_in, "frames_out", srv_out,
				"frames_dropped", srv_drop, "bench_cpu_percent", self_cpu,
				"load_average", getloadavg(load, 1) == 1 ? load[0] : -1.0);
			char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
			if (s)
				printf("%s\n", s);
			free(s);
			json_decref(j);
		} else {
			printf("heru-bench: %d client%s x %.0f fps, %dx%d, %.1f s, %s, backend %s, server pid %d\n",
				b->o.clients, b->o.clients == 1 ? "" : "s", b->o.fps, b->o.width, b->o.height,
				elapsed, b->o.shared ? "one shared session" : "one session per client",
				b->o.backend, (int)pid);
			printf("  sent        %llu frames (%.1f/s)\n", (unsigned long long)sent,
				(double)sent / elapsed);
			printf("  delivered   %llu frames (%.1f/s)%s\n", (unsigned long long)received,
				(double)received / elapsed, b->o.shared ? " of their own" : "");
			if (b->o.shared)
				printf("  also got    %llu frames answering other clients\n",
					(unsigned long long)others);
			printf("  dropped     %llu (%.1f%%)\n", (unsigned long long)(sent - received),
				sent ? 100.0 * drops / (double)sent : 0.0);
			printf("  latency     p50 %.1f ms, p95 %.1f ms, p99 %.1f ms\n", p50, p95, p99);
			if (cpu >= 0)
				printf("  server CPU  %.0f%% of one core (%ld cores here), RSS %.1f MiB\n",
					cpu, sysconf(_SC_NPROCESSORS_ONLN), (double)rss / 1024.0);
			else
				printf("  server CPU  unknown (no server process found; use --server-pid)\n");
			printf("  bench CPU   %.0f%% of one core (these client threads), load average %.1f\n",
				self_cpu, getloadavg(load, 1) == 1 ? load[0] : -1.0);
			if (srv_in > 0)
				printf("  server view frames_in %.0f, frames_out %.0f, frames_dropped %.0f\n",
					srv_in, srv_out, srv_drop);
			if (failed)
				printf("  %d client%s failed (see above)\n", failed, failed == 1 ? "" : "s");
		}
	}
	status = failed == b->o.clients ? 1 : 0;
out:
	if (clients) {
		for (i = 0; i < b->o.clients; i++) {
			free(clients[i].lat);
			free(clients[i].sent_at);
			json_decref(clients[i].stats);
		}
		pthread_barrier_destroy(&b->ready);
		pthread_barrier_destroy(&b->go);
	}
	free(clients);
	free(all);
	for (i = 0; i < JPEG_SET; i++)
		free(b->jpeg[i]);
	cli_stop_server(started);
	free(b);
	return status;
}
