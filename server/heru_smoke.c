/*
 * heru_smoke.c: heru-smoke, an end-to-end check of a running herud (or one it starts).
 *
 * DESIGN
 *
 * Like StreamDiffusionV2's smoke script, but against the real server protocol:
 *   1. GET /api/health (start a herud on a loopback URL when none answers);
 *   2. open WS /ws/session/{id}, read config.current, send one config.update with
 *      the model, topology, world size, steps and output size asked for;
 *   3. follow runtime_status through config.current and print every mode change
 *      with its time (mock -> core-imported -> core-warmup -> core-runtime-active, or
 *      the error sentence that ended it); during a warm-up mode it already sends frames
 *      at --fps (ids above N, not measured) since a streaming core leaves its warm-up
 *      only once frames flow, and prints when the first generated frame came back;
 *   4. with --require-core, fail unless the core became active;
 *   5. stream N generated JPEG frames as binary messages at --fps, match the answers
 *      by frame id and print `average latency per frame: X ms`.
 * Exit status: 0 ok, 1 the check failed (no frames back, core not active), 2 bad
 * usage or the server refused the config.
 */
#include "config.h"

#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_util.h"
#include "ws_client.h"

#define MAX_FRAMES 100000

struct smoke_opts {
	int frames, world_size, steps, width, height;
	double fps, timeout_s;
	const char *model, *topology, *save, *url, *session, *prompt, *backend, *token;
	const char *plugin_dir, *config;
	bool require_core, verbose;
};

struct smoke_state {
	double t0;
	char mode[64];
	char backend[128];
	char error[512];
	double progress;
	long long revision;
	char progression[1024];
	bool changed;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: heru-smoke [options]\n"
		"Drive a running herud (or start one) with generated frames and report the\n"
		"mode progression and the average latency per frame.\n\n"
		"  --frames N            frames to send (default 30)\n"
		"  --model M             wan-1.3b | wan-14b (default wan-1.3b)\n"
		"  --topology T          single | distributed (default single)\n"
		"  --world-size W        GPUs for the distributed topology (default 1)\n"
		"  --steps S             inference steps 1..8 (default 2)\n"
		"  --width W --height H  output size (default 512x512)\n"
		"  --require-core        fail unless the Wan core becomes active\n"
		"  --save FILE           write the last output frame (JPEG) to FILE\n"
		"  --url URL             server (default http://127.0.0.1:8000)\n"
		"  --backend ID          select a backend explicitly (e.g. mock) instead of the model\n"
		"  --prompt TEXT         prompt (default \"a watercolor painting of a lighthouse\")\n"
		"  --fps F               send rate (default 10)\n"
		"  --timeout S           seconds to wait for the core (default 900)\n"
		"  --session ID          session id (default smoke-PID)\n"
		"  --token T             bearer token\n"
		"  --plugin-dir DIR      plugin folder for a herud started by heru-smoke\n"
		"  --config FILE         config file for a herud started by heru-smoke\n"
		"  -v, --verbose         print every server message type received\n");
}

static int parse_opts(int argc, char **argv, struct smoke_opts *o)
{
	static const struct option longopts[] = {
		{ "frames", required_argument, NULL, 'n' },
		{ "model", required_argument, NULL, 'm' },
		{ "topology", required_argument, NULL, 't' },
		{ "world-size", required_argument, NULL, 'w' },
		{ "steps", required_argument, NULL, 's' },
		{ "width", required_argument, NULL, 'W' },
		{ "height", required_argument, NULL, 'H' },
		{ "require-core", no_argument, NULL, 'r' },
		{ "save", required_argument, NULL, 'o' },
		{ "url", required_argument, NULL, 'u' },
		{ "backend", required_argument, NULL, 'b' },
		{ "prompt", required_argument, NULL, 'p' },
		{ "fps", required_argument, NULL, 'f' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "session", required_argument, NULL, 'S' },
		{ "token", required_argument, NULL, 'k' },
		{ "plugin-dir", required_argument, NULL, 'P' },
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int c;
	char *end;

	while ((c = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'n': o->frames = (int)strtol(optarg, &end, 10); if (*end) o->frames = -1; break;
		case 'm': o->model = optarg; break;
		case 't': o->topology = optarg; break;
		case 'w': o->world_size = (int)strtol(optarg, &end, 10); if (*end) o->world_size = -1; break;
		case 's': o->steps = (int)strtol(optarg, &end, 10); if (*end) o->steps = -1; break;
		case 'W': o->width = (int)strtol(optarg, &end, 10); if (*end) o->width = -1; break;
		case 'H': o->height = (int)strtol(optarg, &end, 10); if (*end) o->height = -1; break;
		case 'r': o->require_core = true; break;
		case 'o': o->save = optarg; break;
		case 'u': o->url = optarg; break;
		case 'b': o->backend = optarg; break;
		case 'p': o->prompt = optarg; break;
		case 'f': o->fps = strtod(optarg, &end); if (*end) o->fps = -1; break;
		case 'T': o->timeout_s = strtod(optarg, &end); if (*end) o->timeout_s = -1; break;
		case 'S': o->session = optarg; break;
		case 'k': o->token = optarg; break;
		case 'P': o->plugin_dir = optarg; break;
		case 'c': o->config = optarg; break;
		case 'v': o->verbose = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "heru-smoke: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (o->frames < 1 || o->frames > MAX_FRAMES) {
		fprintf(stderr, "heru-smoke: --frames must be 1..%d\n", MAX_FRAMES);
		return -1;
	}
	if (strcmp(o->model, "wan-1.3b") != 0 && strcmp(o->model, "wan-14b") != 0) {
		fprintf(stderr, "heru-smoke: --model must be wan-1.3b or wan-14b, not '%s'\n", o->model);
		return -1;
	}
	if (strcmp(o->topology, "single") != 0 && strcmp(o->topology, "distributed") != 0) {
		fprintf(stderr, "heru-smoke: --topology must be single or distributed, not '%s'\n",
			o->topology);
		return -1;
	}
	if (o->world_size < 1 || o->world_size > 64 || o->steps < 1 || o->steps > 8 ||
	    o->width < 8 || o->width > 8192 || o->height < 8 || o->height > 8192 ||
	    !(o->fps > 0 && o->fps <= 240) || !(o->timeout_s > 0)) {
		fprintf(stderr, "heru-smoke: --world-size 1..64, --steps 1..8, --width/--height "
			"8..8192, --fps 0..240 and --timeout > 0 are required\n");
		return -1;
	}
	return 0;
}

/* Apply a config.current payload; prints mode changes. */
static void track_status(struct smoke_state *st, json_t *payload)
{
	json_t *rs = json_object_get(payload, "runtime_status");
	const char *mode = json_string_value(json_object_get(rs, "mode"));
	const char *backend = json_string_value(json_object_get(rs, "backend"));
	const char *error = json_string_value(json_object_get(rs, "error"));
	json_t *rev = json_object_get(payload, "revision");
	double progress = json_number_value(json_object_get(rs, "load_progress"));
	double t = (ws_now_ms() - st->t0) / 1000.0;

	if (json_is_integer(rev))
		st->revision = json_integer_value(rev);
	st->progress = progress;
	if (backend)
		snprintf(st->backend, sizeof(st->backend), "%s", backend);
	if (mode && strcmp(mode, st->mode) != 0) {
		size_t n = strlen(st->progression);
		printf("[%7.2f s] mode %s (backend %s, load %.0f%%)\n", t, mode,
			backend ? backend : "?", progress * 100.0);
		snprintf(st->mode, sizeof(st->mode), "%s", mode);
		snprintf(st->progression + n, sizeof(st->progression) - n, "%s%s", n ? " -> " : "",
			mode);
		st->changed = true;
	}
	if (error && strcmp(error, st->error) != 0) {
		printf("[%7.2f s] error: %s\n", t, error);
		snprintf(st->error, sizeof(st->error), "%s", error);
		st->changed = true;
	} else if (!error) {
		st->error[0] = 0;
	}
	fflush(stdout);
}

static bool core_active(const struct smoke_state *st)
{
	return strcmp(st->mode, "core-runtime-active") == 0 ||
	       strcmp(st->mode, "core-distributed-active") == 0;
}

/* Handle one text message. Returns -1 on an `error` message from the server. */
static int on_text(struct smoke_state *st, const struct ws_message *m, bool verbose)
{
	json_error_t jerr;
	json_t *j = json_loadb((const char *)m->data, m->len, 0, &jerr), *payload;
	const char *type;
	int rc = 0;

	if (!j) {
		fprintf(stderr, "heru-smoke: the server sent a text message that is not JSON: %s\n",
			jerr.text);
		return 0;
	}
	type = json_string_value(json_object_get(j, "type"));
	payload = json_object_get(j, "payload");
	if (verbose)
		fprintf(stderr, "<- %s\n", type ? type : "(no type)");
	if (type && strcmp(type, "config.current") == 0) {
		track_status(st, payload);
	} else if (type && strcmp(type, "error") == 0) {
		char *errs = json_dumps(json_object_get(payload, "errors"), JSON_COMPACT);
		fprintf(stderr, "heru-smoke: server error: %s%s%s\n",
			json_string_value(json_object_get(payload, "message")) ?
				json_string_value(json_object_get(payload, "message")) : "(no message)",
			errs ? " " : "", errs ? errs : "");
		free(errs);
		rc = -1;
	}
	json_decref(j);
	return rc;
}

static char *config_patch(const struct smoke_opts *o)
{
	json_t *p = json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:s}", "model_variant", o->model,
		"inference_topology", o->topology, "distributed_world_size", o->world_size,
		"inference_steps", o->steps, "output_width", o->width, "output_height", o->height,
		"prompt", o->prompt);
	json_t *msg;
	char *s;

	if (!p)
		return NULL;
	/* "auto": the server picks the Wan plugin for the model and topology */
	json_object_set_new(p, "backend", json_string(o->backend ? o->backend : "auto"));
	msg = json_pack("{s:s, s:o}", "type", "config.update", "payload", p);
	s = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
	json_decref(msg);
	return s;
}

struct pending {
	double sent_ms;
	bool answered;
};

int main(int argc, char **argv)
{
	struct smoke_opts o = {
		.frames = 30, .world_size = 1, .steps = 2, .width = 512, .height = 512, .fps = 10,
		.timeout_s = 900, .model = "wan-1.3b", .topology = "single",
		.url = "http://127.0.0.1:8000", .prompt = "a watercolor painting of a lighthouse",
	};
	struct smoke_state st = { 0 };
	struct ws_url url;
	struct ws_client *ws = NULL;
	struct ws_message m;
	struct pending *pend = NULL;
	uint8_t **jpegs = NULL, *msgbuf = NULL, *last = NULL;
	size_t *jlen = NULL, last_len = 0, maxlen = 0;
	double *lat = NULL, t_start, deadline, next_send, ack_ms = 0, warm_t0 = 0, first_ms = 0;
	char err[512], path[300], session[80];
	char *patch = NULL;
	int status = 1, received = 0, sent = 0, warm_sent = 0, nj, i, rc;
	long long rev0;
	pid_t started = 0;

	signal(SIGPIPE, SIG_IGN);
	if (parse_opts(argc, argv, &o) != 0)
		return 2;
	if (ws_url_parse(o.url, &url, err, sizeof(err)) != 0) {
		fprintf(stderr, "heru-smoke: %s\n", err);
		return 2;
	}
	if (!o.session) {
		snprintf(session, sizeof(session), "smoke-%d", (int)getpid());
		o.session = session;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (cli_ensure_server(&url, o.token, o.plugin_dir, o.config, true, &started, err,
		    sizeof(err)) != 0) {
		fprintf(stderr, "heru-smoke: %s\n", err);
		return 1;
	}
	/* generated frames, encoded once (cycled) */
	nj = o.frames < 60 ? o.frames : 60;
	jpegs = calloc((size_t)nj, sizeof(*jpegs));
	jlen = calloc((size_t)nj, sizeof(*jlen));
	pend = calloc((size_t)o.frames + 1, sizeof(*pend));
	lat = calloc((size_t)o.frames, sizeof(*lat));
	if (!jpegs || !jlen || !pend || !lat)
		goto oom;
	for (i = 0; i < nj; i++) {
		if (cli_make_jpeg(o.width, o.height, i, &jpegs[i], &jlen[i], err, sizeof(err)) != 0) {
			fprintf(stderr, "heru-smoke: %s\n", err);
			goto out;
		}
		if (jlen[i] > maxlen)
			maxlen = jlen[i];
	}
	msgbuf = malloc(maxlen + CLI_FRAME_HEADER);
	if (!msgbuf)
		goto oom;

	st.t0 = ws_now_ms();
	snprintf(path, sizeof(path), "/ws/session/%s", o.session);
	printf("heru-smoke: %s, session '%s', %s %s world %d, %d steps, %dx%d, %d frames\n",
		o.url, o.session, o.model, o.topology, o.world_size, o.steps, o.width, o.height,
		o.frames);
	ws = ws_client_connect(&url, path, o.token, 10000, err, sizeof(err));
	if (!ws) {
		fprintf(stderr, "heru-smoke: %s\n", err);
		goto out;
	}
	/* the initial config.current */
	while (st.revision == 0 && st.mode[0] == 0) {
		rc = ws_client_recv(ws, 10000, &m, err, sizeof(err));
		if (rc <= 0) {
			fprintf(stderr, "heru-smoke: no config.current from the server: %s\n",
				rc == 0 ? "timed out after 10 s" : err);
			goto out;
		}
		if (m.opcode == WS_TEXT)
			on_text(&st, &m, o.verbose);
	}
	rev0 = st.revision;
	patch = config_patch(&o);
	if (!patch)
		goto oom;
	if (ws_client_send(ws, WS_TEXT, patch, strlen(patch), err, sizeof(err)) != 0) {
		fprintf(stderr, "heru-smoke: %s\n", err);
		goto out;
	}

	/* follow the mode until the core is active, an error ends the load, or timeout; during
	 * a warm-up, frames go at --fps (ids above --frames, not measured): a streaming core
	 * (Wan) only leaves its warm-up once frames flow through it */
	deadline = ws_now_ms() + o.timeout_s * 1000.0;
	next_send = 0;
	for (;;) {
		bool settled = st.revision > rev0 &&
			(core_active(&st) || st.error[0] ||
			 (strcmp(st.mode, "mock") == 0 && o.backend && strcmp(o.backend, "mock") == 0));
		int left = (int)(deadline - ws_now_ms()), wait = left < 500 ? left : 500;

		if (settled || left <= 0)
			break;
		if (st.revision > rev0 && strstr(st.mode, "warmup")) {
			double now = ws_now_ms();
			if (warm_t0 == 0)
				warm_t0 = now;
			if (now >= next_send) {
				uint32_t id = (uint32_t)o.frames + 1 + (uint32_t)warm_sent;
				size_t k = (size_t)(warm_sent % nj);
				if (cli_send_frame(ws, msgbuf, id, now, jpegs[k], jlen[k], err,
						   sizeof(err)) != 0) {
					fprintf(stderr, "heru-smoke: %s\n", err);
					goto out;
				}
				warm_sent++;
				next_send = (next_send > 0 ? next_send : now) + 1000.0 / o.fps;
			}
			wait = (int)(next_send - ws_now_ms()) + 1;
			if (wait < 1)
				wait = 1;
			if (wait > left)
				wait = left;
		}
		rc = ws_client_recv(ws, wait, &m, err, sizeof(err));
		if (rc == 1 && m.opcode == WS_BINARY && warm_t0 > 0 && first_ms == 0) {
			first_ms = ws_now_ms();
			printf("[%7.2f s] first generated frame, %.2f s after the warm-up began "
			       "(%d frames sent)\n", (first_ms - st.t0) / 1000.0,
			       (first_ms - warm_t0) / 1000.0, warm_sent);
		}
		if (rc < 0) {
			fprintf(stderr, "heru-smoke: connection lost: %s\n", err);
			goto out;
		}
		if (rc == 1 && m.opcode == WS_TEXT && on_text(&st, &m, o.verbose) != 0) {
			status = 2;
			goto out;
		}
		if (rc == 1 && m.opcode == WS_CLOSE) {
			fprintf(stderr, "heru-smoke: the server closed the WebSocket (code %u)\n",
				m.close_code);
			goto out;
		}
		if (st.revision > rev0 && ack_ms == 0)
			ack_ms = ws_now_ms();
		if (ack_ms && ws_now_ms() - ack_ms > 5000 && strcmp(st.mode, "mock") == 0 &&
		    (!o.require_core || (o.backend && strcmp(o.backend, "mock") == 0)))
			break; /* nothing is loading: the backend is what it is */
	}
	if (st.revision <= rev0) {
		fprintf(stderr, "heru-smoke: the server did not acknowledge the config update\n");
		goto out;
	}
	if (o.require_core && !core_active(&st)) {
		printf("mode progression: %s\n", st.progression);
		fprintf(stderr, "heru-smoke: FAILED: the Wan core never became active (mode %s): %s\n",
			st.mode, st.error[0] ? st.error : "timed out");
		goto out;
	}

	/* stream */
	t_start = ws_now_ms();
	next_send = t_start;
	deadline = 0;
	while (received < o.frames) {
		double now = ws_now_ms();
		int wait;

		if (sent < o.frames && now >= next_send) {
			uint32_t id = (uint32_t)sent + 1;
			size_t k = (size_t)(sent % nj);
			if (cli_send_frame(ws, msgbuf, id, now, jpegs[k], jlen[k], err,
					   sizeof(err)) != 0) {
				fprintf(stderr, "heru-smoke: %s\n", err);
				goto out;
			}
			pend[id].sent_ms = now;
			sent++;
			next_send += 1000.0 / o.fps;
			if (sent == o.frames)
				deadline = ws_now_ms() + 10000.0; /* drain: up to 10 s for the rest */
			continue;
		}
		if (deadline && now >= deadline)
			break;
		wait = sent < o.frames ? (int)(next_send - now) + 1 : (int)(deadline - now) + 1;
		rc = ws_client_recv(ws, wait > 0 ? wait : 1, &m, err, sizeof(err));
		if (rc < 0) {
			fprintf(stderr, "heru-smoke: connection lost: %s\n", err);
			break;
		}
		if (rc == 0)
			continue;
		if (m.opcode == WS_TEXT) {
			on_text(&st, &m, o.verbose);
		} else if (m.opcode == WS_BINARY) {
			uint32_t id;
			double ts;
			if (!cli_parse_frame_header(m.data, m.len, &id, &ts) || id == 0 ||
			    id > (uint32_t)o.frames || pend[id].answered)
				continue;
			pend[id].answered = true;
			lat[received++] = ws_now_ms() - ts;
			if (o.save) {
				uint8_t *copy = realloc(last, m.len - CLI_FRAME_HEADER);
				if (copy) {
					last = copy;
					last_len = m.len - CLI_FRAME_HEADER;
					memcpy(last, m.data + CLI_FRAME_HEADER, last_len);
				}
			}
		} else if (m.opcode == WS_CLOSE) {
			fprintf(stderr, "heru-smoke: the server closed the WebSocket (code %u)\n",
				m.close_code);
			break;
		}
	}

	printf("mode progression: %s\n", st.progression);
	printf("backend: %s, mode: %s%s%s\n", st.backend[0] ? st.backend : "?", st.mode,
		st.error[0] ? ", error: " : "", st.error);
	printf("frames: sent %d, received %d, dropped %d, in %.2f s\n", sent, received,
		sent - received, (ws_now_ms() - t_start) / 1000.0);
	if (received > 0) {
		double sum = 0;
		for (i = 0; i < received; i++)
			sum += lat[i];
		printf("average latency per frame: %.1f ms\n", sum / received);
		printf("latency p50 %.1f ms, p95 %.1f ms, max %.1f ms\n",
			cli_percentile(lat, (size_t)received, 50), cli_percentile(lat, (size_t)received, 95),
			cli_percentile(lat, (size_t)received, 100));
	}
	if (o.save && last) {
		FILE *f = fopen(o.save, "wb");
		if (!f || fwrite(last, 1, last_len, f) != last_len) {
			fprintf(stderr, "heru-smoke: cannot write '%s'\n", o.save);
			if (f)
				fclose(f);
			goto out;
		}
		fclose(f);
		printf("saved the last output frame to %s\n", o.save);
	}
	if (received == 0) {
		fprintf(stderr, "heru-smoke: FAILED: no processed frame came back\n");
		goto out;
	}
	status = 0;
	goto out;

oom:
	fprintf(stderr, "heru-smoke: out of memory\n");
out:
	ws_client_close(ws, 1000);
	cli_stop_server(started);
	for (i = 0; jpegs && i < nj; i++)
		free(jpegs[i]);
	free(jpegs);
	free(jlen);
	free(pend);
	free(lat);
	free(msgbuf);
	free(last);
	free(patch);
	return status;
}
