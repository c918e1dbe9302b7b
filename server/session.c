/* session.c: sessions, their clients, config and backend.
 *
 * DESIGN
 * All state here belongs to the loop thread. A session is created on the first use
 * of its id (REST or WebSocket). A session without clients is evicted after
 * session_idle_s, or at once when a new one needs its place under max_sessions (the
 * least recently used goes). An evicted session stops its instances and stays in a
 * `dying` list until their workers have exited (their events name it), then is freed.
 *
 * Backend and hot swap (architecture.md §4). A session has at most two instances:
 * `cur`, which serves frames, and `pending`, being created on its own worker
 * thread. A change of a restart field starts a new pending instance (cancelling an
 * older pending one); frames keep flowing through `cur`. READY makes pending the new
 * cur and stops the old one; FAILED leaves cur in place and puts the plugin's one
 * sentence in runtime_status.error. A session without any instance (its first
 * backend failed) falls back to the mock plugin, and to the built-in passthrough
 * when mock is not loaded either, so frames always flow.
 *
 * Drain first. Two backends flagged NEEDS_GPU cannot be assumed to fit in GPU memory
 * together, so a swap from one to another goes through mock: mock is built and takes
 * over, the old GPU instance is destroyed (its worker exits), and only then is the
 * new GPU instance created. runtime_status.note says so meanwhile. runtime_status.mode shows
 * the pending instance's reported mode while it loads, and the serving one's
 * otherwise. No WebSocket is touched by any of this.
 *
 * Frames. A frame message is parsed and its JPEG header checked (limits) here, on
 * the loop thread, so bad input is answered at once; the job then goes to cur's
 * inbox (pipeline.c: one slot where the newest frame wins, or as many frames as the
 * backend consumes per step, oldest dropped beyond that). Outputs are sent to every client of the session, binary or JSON
 * depending on what that client last sent. */
#include "config.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "jpeg.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "plugin.h"
#include "protocol.h"
#include "session.h"

struct sess_client {
	struct sess_client *next;
	struct session *s;	/* borrowed */
	struct ws_conn *ws;	/* owned by ws.c; valid until on_closed */
	uint64_t id;
	bool json_frames;	/* last frame it sent was JSON */
};

#define SESS_OUTQ 8 /* output frames waiting for their paced slot */

struct sess_out {
	uint8_t *jpeg;	   /* new */
	size_t len;
	int width, height;
	uint32_t id;
	double ts;
	double latency_ms; /* at arrival from the worker */
	double t_arrived;  /* monotonic seconds */
};

struct session {
	struct session *next;
	struct sess_manager *mgr;
	char id[65];
	json_t *cfg;			/* new */
	uint64_t revision;
	char mode[32];			/* shown */
	char cur_mode[32];		/* of the serving instance */
	char backend[64];		/* serving backend id */
	char loading[64];		/* pending backend id, "" when none */
	char error[256];		/* "" = null */
	double progress;
	struct pipe_instance *cur;	/* serving (owned by the pipeline) */
	struct pipe_instance *pending;	/* being created */
	struct pipe_job *waiting;	/* new: newest frame while no instance serves yet */
	size_t n_draining;		/* GPU instances stopped, not yet exited */
	char after_drain[64];		/* GPU backend to start once n_draining is 0 */
	char note[200];			/* runtime_status.note, "" = null */
	json_t *backend_stats;		/* new: the serving backend's own stats, or NULL */
	struct sess_out outq[SESS_OUTQ];	/* output pacing ring */
	size_t out_head, out_n;
	struct event *pace;		/* new: fires at next_send */
	size_t n_instances;		/* started, not yet exited */
	bool dying;			/* evicted: freed once n_instances is 0 */
	double last_used;		/* monotonic: last REST use or client */
	double next_send, last_arrival, dt_ema;
	struct metrics m;
	struct sess_client *clients;
	size_t n_clients;
};

struct sess_manager {
	struct event_base *base;	    /* borrowed */
	const struct plugin_registry *reg;  /* borrowed */
	struct pipeline *pl;		    /* new */
	struct sess_limits lim;
	json_t *defaults;		    /* new: config of a new session */
	struct session *sessions;
	size_t n_sessions, n_clients;
	struct session *dying;		    /* evicted sessions waiting for their workers */
	struct event *tick;		    /* new */
	struct jpeg_codec *jc;		    /* new: header checks on the loop thread */
	uint64_t next_client;
	double start_s;
};

static void sess_on_event(void *owner, struct pipe_instance *inst, struct pipe_event *ev);
static void sess_dying_event(struct session *s, struct pipe_instance *inst, const struct pipe_event *ev);

/* ---- helpers -------------------------------------------------------------------------- */

bool sess_valid_id(const char *id)
{
	size_t n = strlen(id);
	if (n < 1 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static void sess_send_all(struct session *s, const char *text, size_t len)
{
	for (struct sess_client *c = s->clients; c; c = c->next)
		ws_send_text(c->ws, text, len);
}

static void sess_send_error(struct sess_client *c, const char *message, json_t *errors)
{
	size_t len;
	char *text = proto_error(message, errors, &len);
	if (text)
		ws_send_text(c->ws, text, len);
	free(text);
}

static void sess_broadcast_config(struct session *s)
{
	size_t len;
	char *text;
	if (!s->clients)
		return;
	text = proto_message("config.current", sess_config_json(s), &len);
	if (text)
		sess_send_all(s, text, len);
	free(text);
}

static bool sess_is_mock(const char *id) { return strcmp(id, "mock") == 0 || strcmp(id, PIPE_PASSTHROUGH) == 0; }

/* ---- backend lifecycle ------------------------------------------------------------------ */

static void sess_start_backend(struct session *s, const char *id);

static void sess_fallback(struct session *s, const char *failed_id)
{
	if (s->cur || s->pending)
		return;
	if (strcmp(failed_id, "mock") != 0 && strcmp(failed_id, PIPE_PASSTHROUGH) != 0)
		sess_start_backend(s, "mock");
	else if (strcmp(failed_id, "mock") == 0)
		sess_start_backend(s, PIPE_PASSTHROUGH);
}

/* Stop an instance the session no longer wants; GPU ones are counted until they exit. */
static void sess_stop(struct session *s, struct pipe_instance *pi)
{
	if (pipe_instance_needs_gpu(pi) && !pipe_instance_stopped(pi))
		s->n_draining++;
	pipe_instance_stop(pi);
}

static bool sess_id_needs_gpu(const struct session *s, const char *id)
{
	const struct heru_plugin_entry *e = s->mgr->reg ? plugin_registry_find(s->mgr->reg, id) : NULL;
	return e && (e->flags & HERU_FLAG_NEEDS_GPU);
}

static void sess_start_backend(struct session *s, const char *id)
{
	char err[256];
	char *text;
	struct pipe_instance *pi;

	s->after_drain[0] = 0;
	if (sess_id_needs_gpu(s, id) && s->cur && pipe_instance_needs_gpu(s->cur)) {
		/* drain first: mock takes over, the old GPU instance goes, then the new one */
		snprintf(s->after_drain, sizeof(s->after_drain), "%s", id);
		snprintf(s->note, sizeof(s->note),
			 "releasing %s before loading %s (two GPU backends may not fit in GPU memory); mock serves meanwhile",
			 pipe_instance_backend(s->cur), id);
		log_info("session %s: %s", s->id, s->note);
		id = s->mgr->reg && plugin_registry_find(s->mgr->reg, "mock") ? "mock" : PIPE_PASSTHROUGH;
	} else if (sess_id_needs_gpu(s, id) &&
		   (s->n_draining > 0 || (s->pending && pipe_instance_needs_gpu(s->pending)))) {
		if (s->pending) {
			sess_stop(s, s->pending);
			s->pending = NULL;
		}
		snprintf(s->after_drain, sizeof(s->after_drain), "%s", id);
		snprintf(s->note, sizeof(s->note), "waiting for the previous GPU backend to release the GPU before loading %s", id);
		return;
	}
	text = json_dumps(s->cfg, JSON_COMPACT | JSON_REAL_PRECISION(10));
	if (s->pending) {
		sess_stop(s, s->pending);
		s->pending = NULL;
	}
	pi = text ? pipeline_start(s->mgr->pl, s, id, text, s->revision, err, sizeof(err)) : NULL;
	if (!text)
		snprintf(err, sizeof(err), "out of memory");
	free(text);
	if (!pi) {
		log_warn("session %s: %s", s->id, err);
		snprintf(s->error, sizeof(s->error), "%s", err);
		s->loading[0] = 0;
		snprintf(s->mode, sizeof(s->mode), "%s", s->cur_mode);
		sess_fallback(s, id);
		return;
	}
	s->pending = pi;
	s->n_instances++;
	snprintf(s->loading, sizeof(s->loading), "%s", id);
	s->progress = 0;
	log_info("session %s: starting backend %s", s->id, id);
}

static void sess_ready(struct session *s, struct pipe_instance *inst)
{
	struct pipe_instance *old = s->cur;
	const char *id = pipe_instance_backend(inst);

	s->cur = inst;
	s->pending = NULL;
	s->loading[0] = 0;
	json_decref(s->backend_stats);
	s->backend_stats = NULL;
	snprintf(s->backend, sizeof(s->backend), "%s", id);
	if (sess_is_mock(id))
		snprintf(s->cur_mode, sizeof(s->cur_mode), "mock");
	else if (strcmp(s->mode, "core-warmup") == 0 || strcmp(s->mode, "core-distributed-warmup") == 0)
		/* the instance said it still warms up (a Wan stream needs its first chunk): it
		 * reports the active mode itself (plugins/wan/wan_pipeline_backend.c) */
		snprintf(s->cur_mode, sizeof(s->cur_mode), "%s", s->mode);
	else if (strcmp(s->mode, "core-distributed-active") == 0 ||
		 strcmp(cfg_str(s->cfg, "inference_topology"), "distributed") == 0)
		snprintf(s->cur_mode, sizeof(s->cur_mode), "core-distributed-active");
	else
		snprintf(s->cur_mode, sizeof(s->cur_mode), "core-runtime-active");
	snprintf(s->mode, sizeof(s->mode), "%s", s->cur_mode);
	s->progress = 1;
	/* a failure that led to this fallback stays visible; a chosen backend clears it */
	if (strcmp(id, cfg_backend_id(s->cfg)) == 0)
		s->error[0] = 0;
	if (!s->after_drain[0])
		s->note[0] = 0;
	if (old)
		sess_stop(s, old);
	if (s->waiting) {
		s->m.dropped_inbox += (uint64_t)pipe_instance_submit(inst, s->waiting);
		s->waiting = NULL;
	}
	log_info("session %s: backend %s active (mode %s)", s->id, id, s->mode);
	sess_broadcast_config(s);
}

static void sess_output(struct session *s, const struct sess_out *ev)
{
	uint8_t *bin = NULL;
	char *json = NULL;
	size_t json_len = 0;

	s->m.frames_out++;
	metrics_latency(&s->m, ev->latency_ms + (metrics_now() - ev->t_arrived) * 1000.0);
	for (struct sess_client *c = s->clients; c; c = c->next) {
		if (ws_is_closing(c->ws))
			continue;
		if (!c->json_frames) {
			if (!bin) {
				bin = malloc(PROTO_BIN_HEADER + ev->len);
				if (!bin)
					continue;
				proto_write_binary_header(bin, ev->id, ev->ts);
				memcpy(bin + PROTO_BIN_HEADER, ev->jpeg, ev->len);
			}
			s->m.dropped_send += (uint64_t)ws_send_frame(c->ws, true, bin, PROTO_BIN_HEADER + ev->len);
		} else {
			if (!json) {
				char *b64 = proto_base64_encode(ev->jpeg, ev->len, NULL);
				json_t *p;
				if (!b64)
					continue;
				size_t n = strlen(b64);
				char *url = malloc(n + 24);
				if (!url) {
					free(b64);
					continue;
				}
				memcpy(url, "data:image/jpeg;base64,", 23);
				memcpy(url + 23, b64, n + 1);
				free(b64);
				p = json_pack("{s:I,s:f,s:s,s:i,s:i}", "id", (json_int_t)ev->id, "ts", ev->ts, "image", url,
					      "width", ev->width, "height", ev->height);
				free(url);
				json = proto_message("frame.processed", p, &json_len);
				if (!json)
					continue;
			}
			s->m.dropped_send += (uint64_t)ws_send_frame(c->ws, false, (const uint8_t *)json, json_len);
		}
	}
	free(bin);
	free(json);
}

/* Output pacing: send queued frames no faster than target_fps, and spread a burst
 * (a chunked video model emits several frames at once) over the measured interval
 * between arrivals, so clients see a steady stream. */
static void sess_pace(struct session *s)
{
	double now = metrics_now(), fps = cfg_num(s->cfg, "target_fps");
	double interval = 1.0 / (fps >= 1 ? fps : 30);

	if (s->dt_ema * 0.95 > interval)
		interval = s->dt_ema * 0.95;
	/* half an interval of slack absorbs arrival jitter; next_send advances one interval
	 * per frame, so the rate stays <= target_fps */
	while (s->out_n > 0 && now >= s->next_send - interval / 2) {
		struct sess_out *o = &s->outq[s->out_head];
		s->out_head = (s->out_head + 1) % SESS_OUTQ;
		s->out_n--;
		sess_output(s, o);
		free(o->jpeg);
		o->jpeg = NULL;
		s->next_send = (s->next_send < now - interval ? now : s->next_send) + interval;
	}
	if (s->out_n > 0) {
		double d = s->next_send - interval / 2 - now;
		if (d < 0)
			d = 0;
		struct timeval tv = { (time_t)d, (suseconds_t)((d - (double)(time_t)d) * 1e6) };
		evtimer_add(s->pace, &tv);
	}
}

static void sess_pace_cb(evutil_socket_t fd, short what, void *arg)
{
	sess_pace(arg);
}

static void sess_queue_output(struct session *s, struct pipe_event *ev)
{
	double now = metrics_now();
	struct sess_out *o;

	if (s->last_arrival > 0) {
		double dt = now - s->last_arrival;
		s->dt_ema = s->dt_ema > 0 ? 0.9 * s->dt_ema + 0.1 * dt : dt;
		if (s->dt_ema > 1.0)
			s->dt_ema = 1.0;
	}
	s->last_arrival = now;
	if (s->out_n == SESS_OUTQ) { /* the oldest waiting frame gives way */
		free(s->outq[s->out_head].jpeg);
		s->outq[s->out_head].jpeg = NULL;
		s->out_head = (s->out_head + 1) % SESS_OUTQ;
		s->out_n--;
		s->m.dropped_inbox++;
	}
	o = &s->outq[(s->out_head + s->out_n) % SESS_OUTQ];
	o->jpeg = ev->jpeg;
	ev->jpeg = NULL;
	o->len = ev->len;
	o->width = ev->width;
	o->height = ev->height;
	o->id = ev->id;
	o->ts = ev->ts;
	o->latency_ms = ev->latency_ms;
	o->t_arrived = now;
	s->out_n++;
	sess_pace(s);
}

static void sess_on_event(void *owner, struct pipe_instance *inst, struct pipe_event *ev)
{
	struct session *s = owner;
	bool is_cur = inst == s->cur, is_pending = inst == s->pending;

	if (s->dying) {
		sess_dying_event(s, inst, ev);
		return;
	}
	if (ev->type == PIPE_EV_EXITED)
		s->n_instances--;

	switch (ev->type) {
	case PIPE_EV_PROGRESS:
		if (!is_cur && !is_pending)
			return;
		if (ev->mode[0])
			snprintf(s->mode, sizeof(s->mode), "%s", ev->mode);
		if (is_cur && ev->mode[0])
			snprintf(s->cur_mode, sizeof(s->cur_mode), "%s", ev->mode);
		if (ev->progress >= 0)
			s->progress = ev->progress;
		sess_broadcast_config(s);
		return;
	case PIPE_EV_READY:
		if (is_pending)
			sess_ready(s, inst);
		else if (!is_cur)
			sess_stop(s, inst);
		return;
	case PIPE_EV_FAILED:
		if (!is_pending)
			return;
		log_warn("session %s: backend %s failed: %s", s->id, pipe_instance_backend(inst), ev->msg);
		s->pending = NULL;
		s->loading[0] = 0;
		if (!s->after_drain[0])
			s->note[0] = 0;
		snprintf(s->error, sizeof(s->error), "%s", ev->msg);
		snprintf(s->mode, sizeof(s->mode), "%s", s->cur_mode);
		s->progress = s->cur ? 1 : 0;
		sess_fallback(s, pipe_instance_backend(inst));
		sess_broadcast_config(s);
		return;
	case PIPE_EV_FRAME:
		if (ev->jpeg)
			sess_queue_output(s, ev);
		return;
	case PIPE_EV_STATS:
		if (is_cur && ev->text) {
			json_t *j = json_loads(ev->text, 0, NULL);
			if (json_is_object(j)) {
				json_decref(s->backend_stats);
				s->backend_stats = j;
			} else
				json_decref(j);
		}
		return;
	case PIPE_EV_FRAME_ERROR:
		s->m.frame_errors++;
		for (struct sess_client *c = s->clients; c; c = c->next)
			if (c->id == ev->client_id)
				sess_send_error(c, ev->msg, NULL);
		return;
	case PIPE_EV_RESTART:
		if (is_cur && !s->pending) {
			log_info("session %s: %s asks for a restart (%s)", s->id, pipe_instance_backend(inst), ev->msg);
			sess_start_backend(s, pipe_instance_backend(inst));
			sess_broadcast_config(s);
		}
		return;
	case PIPE_EV_EXITED:
		if (!is_cur && !is_pending && pipe_instance_needs_gpu(inst) && pipe_instance_stopped(inst) &&
		    s->n_draining > 0 && --s->n_draining == 0 && s->after_drain[0]) {
			char next[64];
			snprintf(next, sizeof(next), "%s", s->after_drain);
			s->after_drain[0] = 0;
			log_info("session %s: GPU released; loading %s", s->id, next);
			sess_start_backend(s, next);
			sess_broadcast_config(s);
		}
		if (is_cur) {
			s->cur = NULL;
			s->backend[0] = 0;
			sess_fallback(s, "");
		}
		if (is_pending)
			s->pending = NULL;
		return;
	}
}

/* ---- sessions ---------------------------------------------------------------------------- */

static void sess_free(struct session *s)
{
	pipe_job_free(s->waiting);
	json_decref(s->backend_stats);
	for (size_t i = 0; i < SESS_OUTQ; i++)
		free(s->outq[i].jpeg);
	if (s->pace)
		event_free(s->pace);
	json_decref(s->cfg);
	free(s);
}

static void sess_unlink(struct session **list, struct session *s)
{
	for (struct session **pp = list; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			return;
		}
}

/* Drop a session that has no clients: stop its instances; free it once they exit. */
static void sess_evict(struct sess_manager *mgr, struct session *s, const char *why)
{
	log_info("session %s evicted (%s)", s->id, why);
	sess_unlink(&mgr->sessions, s);
	mgr->n_sessions--;
	s->dying = true;
	if (s->cur)
		pipe_instance_stop(s->cur);
	if (s->pending)
		pipe_instance_stop(s->pending);
	s->cur = s->pending = NULL;
	s->after_drain[0] = 0;
	event_del(s->pace);
	if (s->n_instances == 0) {
		sess_free(s);
		return;
	}
	s->next = mgr->dying;
	mgr->dying = s;
}

/* The dying session's instance INST sent EV. */
static void sess_dying_event(struct session *s, struct pipe_instance *inst, const struct pipe_event *ev)
{
	if (ev->type == PIPE_EV_READY)
		pipe_instance_stop(inst);
	if (ev->type == PIPE_EV_EXITED && --s->n_instances == 0) {
		sess_unlink(&s->mgr->dying, s);
		sess_free(s);
	}
}

struct session *sess_get(struct sess_manager *mgr, const char *id, char *err, size_t errlen, int *status)
{
	struct session *s;
	json_t *errors;

	if (!sess_valid_id(id)) {
		snprintf(err, errlen, "session id must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -");
		*status = 400;
		return NULL;
	}
	for (s = mgr->sessions; s; s = s->next)
		if (strcmp(s->id, id) == 0) {
			s->last_used = metrics_now();
			return s;
		}
	if (mgr->n_sessions >= mgr->lim.max_sessions) {
		struct session *lru = NULL;
		for (s = mgr->sessions; s; s = s->next)
			if (s->n_clients == 0 && (!lru || s->last_used < lru->last_used))
				lru = s;
		if (!lru) {
			snprintf(err, errlen, "too many sessions with clients (limit %zu)", mgr->lim.max_sessions);
			*status = 503;
			return NULL;
		}
		sess_evict(mgr, lru, "the session limit needs its place");
	}
	s = calloc(1, sizeof(*s));
	errors = json_array();
	if (!s || !errors)
		goto nomem;
	s->mgr = mgr;
	snprintf(s->id, sizeof(s->id), "%s", id);
	s->cfg = cfg_defaults();
	if (!s->cfg)
		goto nomem;
	if (mgr->defaults) {
		json_t *merged;
		if (cfg_merge(s->cfg, mgr->defaults, &merged, errors) == 0) {
			json_decref(s->cfg);
			s->cfg = merged;
		}
	}
	json_decref(errors);
	errors = NULL;
	s->pace = evtimer_new(mgr->base, sess_pace_cb, s);
	if (!s->pace)
		goto nomem;
	s->revision = 1;
	s->last_used = metrics_now();
	snprintf(s->mode, sizeof(s->mode), "mock");
	snprintf(s->cur_mode, sizeof(s->cur_mode), "mock");
	metrics_init(&s->m, metrics_now());
	s->next = mgr->sessions;
	mgr->sessions = s;
	mgr->n_sessions++;
	log_info("session %s created", s->id);
	sess_start_backend(s, cfg_backend_id(s->cfg));
	return s;
nomem:
	json_decref(errors);
	if (s) {
		json_decref(s->cfg);
		if (s->pace)
			event_free(s->pace);
	}
	free(s);
	snprintf(err, errlen, "out of memory creating a session");
	*status = 503;
	return NULL;
}

/* A JSON string of TEXT; a plugin's sentence that is not UTF-8 keeps its printable ASCII. */
static json_t *sess_json_text(const char *text)
{
	json_t *j = json_string(text);
	char buf[256];
	size_t i;

	if (j)
		return j;
	for (i = 0; text[i] && i + 1 < sizeof(buf); i++)
		buf[i] = (text[i] >= 0x20 && text[i] < 0x7f) ? text[i] : '?';
	buf[i] = 0;
	return json_string(buf);
}

json_t *sess_config_json(const struct session *s)
{
	json_t *o = json_deep_copy(s->cfg);
	json_t *rs;

	if (!o)
		return NULL;
	json_object_set_new(o, "revision", json_integer((json_int_t)s->revision));
	rs = json_pack("{s:s,s:s,s:f}", "mode", s->mode, "backend", s->backend[0] ? s->backend : "none",
		       "load_progress", s->progress);
	json_object_set_new(rs, "error", s->error[0] ? sess_json_text(s->error) : json_null());
	json_object_set_new(rs, "loading", s->after_drain[0]  ? json_string(s->after_drain)
					   : s->loading[0] ? json_string(s->loading)
							   : json_null());
	json_object_set_new(rs, "note", s->note[0] ? sess_json_text(s->note) : json_null());
	json_object_set_new(o, "runtime_status", rs);
	return o;
}

json_t *sess_stats_json(const struct session *s)
{
	json_t *o = json_object();
	metrics_to_json(&s->m, o);
	json_object_set_new(o, "clients", json_integer((json_int_t)s->n_clients));
	json_object_set_new(o, "backend", json_string(s->backend[0] ? s->backend : "none"));
	json_object_set_new(o, "mode", json_string(s->mode));
	json_object_set_new(o, "session", json_string(s->id));
	json_object_set_new(o, "backend_stats", s->backend_stats ? json_deep_copy(s->backend_stats) : json_null());
	return o;
}

int sess_patch(struct session *s, const json_t *patch, json_t *errors)
{
	json_t *next;
	char *text;

	if (cfg_merge(s->cfg, patch, &next, errors) < 0)
		return -1;
	if (json_equal(next, s->cfg)) { /* nothing changed: no new revision */
		json_decref(next);
		return 0;
	}
	bool restart = cfg_restart_changed(s->cfg, next);
	json_decref(s->cfg);
	s->cfg = next;
	s->revision++;
	if (restart) {
		sess_start_backend(s, cfg_backend_id(s->cfg));
	} else if ((text = json_dumps(s->cfg, JSON_COMPACT | JSON_REAL_PRECISION(10)))) {
		if (s->cur)
			pipe_instance_set_config(s->cur, text, s->revision);
		if (s->pending)
			pipe_instance_set_config(s->pending, text, s->revision);
		free(text);
	}
	sess_broadcast_config(s);
	return 0;
}

/* ---- WebSocket clients ------------------------------------------------------------------------ */

static void sess_frame(struct sess_client *c, const uint8_t *jpeg, size_t len, uint32_t id, double ts, bool owned)
{
	struct session *s = c->s;
	struct pipe_job *job;
	char err[200], msg[260];
	int w, h;

	if (jpeg_probe(s->mgr->jc, jpeg, len, &w, &h, err, sizeof(err)) < 0) {
		snprintf(msg, sizeof(msg), "frame %u refused: %s", id, err);
		s->m.frame_errors++;
		sess_send_error(c, msg, NULL);
		goto out;
	}
	job = calloc(1, sizeof(*job));
	if (!job)
		goto out;
	if (owned) {
		job->jpeg = (uint8_t *)jpeg;
		jpeg = NULL;
	} else if (!(job->jpeg = malloc(len))) {
		free(job);
		goto out;
	} else
		memcpy(job->jpeg, jpeg, len);
	job->len = len;
	job->width = w;
	job->height = h;
	job->id = id;
	job->ts = ts;
	job->client_id = c->id;
	job->t_recv = metrics_now();
	s->m.frames_in++;
	if (!s->cur) { /* the first backend is still starting: keep the newest frame */
		if (s->waiting)
			s->m.dropped_inbox++;
		pipe_job_free(s->waiting);
		s->waiting = job;
	} else
		s->m.dropped_inbox += (uint64_t)pipe_instance_submit(s->cur, job);
out:
	if (owned)
		free((uint8_t *)jpeg);
}

static void sess_text(struct sess_client *c, const char *text, size_t len)
{
	struct proto_msg msg;
	char err[256];
	json_t *errors, *patch = NULL;

	if (proto_parse_message(text, len, &msg, err, sizeof(err)) < 0) {
		sess_send_error(c, err, NULL);
		return;
	}
	errors = json_array();
	switch (msg.type) {
	case PROTO_CONFIG_UPDATE:
		if (sess_patch(c->s, msg.payload, errors) < 0) {
			sess_send_error(c, "config.update refused; nothing changed", errors);
			errors = NULL;
		}
		break;
	case PROTO_PRESET_APPLY:
		if (cfg_preset_patch(c->s->cfg, msg.payload, &patch, errors) < 0 || sess_patch(c->s, patch, errors) < 0) {
			sess_send_error(c, "preset.apply refused; nothing changed", errors);
			errors = NULL;
		}
		break;
	case PROTO_FRAME: {
		uint8_t *jpeg;
		size_t jlen;
		uint32_t id;
		double ts;
		if (proto_parse_frame(msg.payload, &id, &ts, &jpeg, &jlen, err, sizeof(err)) < 0) {
			c->s->m.frame_errors++;
			sess_send_error(c, err, NULL);
			break;
		}
		c->json_frames = true;
		sess_frame(c, jpeg, jlen, id, ts, true);
		break;
	}
	}
	json_decref(patch);
	json_decref(errors);
	proto_msg_release(&msg);
}

static void sess_ws_message(struct ws_conn *ws, void *ud, bool binary, const uint8_t *data, size_t len)
{
	struct sess_client *c = ud;
	if (binary) {
		uint32_t id;
		double ts;
		const uint8_t *jpeg;
		size_t jlen;
		char err[200];
		if (proto_parse_binary(data, len, &id, &ts, &jpeg, &jlen, err, sizeof(err)) < 0) {
			c->s->m.frame_errors++;
			sess_send_error(c, err, NULL);
			return;
		}
		c->json_frames = false;
		sess_frame(c, jpeg, jlen, id, ts, false);
	} else {
		sess_text(c, (const char *)data, len);
	}
}

static void sess_ws_closed(struct ws_conn *ws, void *ud)
{
	struct sess_client *c = ud;
	struct session *s = c->s;
	for (struct sess_client **pp = &s->clients; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	s->n_clients--;
	s->mgr->n_clients--;
	s->last_used = metrics_now();
	log_info("session %s: client %llu left (%zu left)", s->id, (unsigned long long)c->id, s->n_clients);
	free(c);
}

int sess_ws_accept(struct session *s, struct evhttp_request *req, const char *subprotocol, char *err, size_t errlen)
{
	static const struct ws_handlers h = { sess_ws_message, sess_ws_closed };
	struct sess_client *c;
	size_t len;
	char *text;

	if (s->n_clients >= s->mgr->lim.max_clients_per_session) {
		snprintf(err, errlen, "session '%s' already has %zu clients (the limit)", s->id, s->n_clients);
		return 503;
	}
	if (s->mgr->n_clients >= s->mgr->lim.max_clients) {
		snprintf(err, errlen, "the server already has %zu clients (the limit)", s->mgr->n_clients);
		return 503;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return 503;
	}
	c->s = s;
	c->id = ++s->mgr->next_client;
	c->ws = ws_accept(req, subprotocol, &s->mgr->lim.ws, &h, c, err, errlen);
	if (!c->ws) {
		free(c);
		return 503;
	}
	c->next = s->clients;
	s->clients = c;
	s->n_clients++;
	s->mgr->n_clients++;
	log_info("session %s: client %llu joined (%zu clients)", s->id, (unsigned long long)c->id, s->n_clients);
	text = proto_message("config.current", sess_config_json(s), &len);
	if (text)
		ws_send_text(c->ws, text, len);
	free(text);
	return 0;
}

/* ---- the manager ----------------------------------------------------------------------------- */

static void sess_tick(evutil_socket_t fd, short what, void *arg)
{
	struct sess_manager *mgr = arg;
	double now = metrics_now();

	for (struct session *s = mgr->sessions, *next; s; s = next) {
		next = s->next;
		if (s->n_clients == 0 && now - s->last_used > mgr->lim.session_idle_s) {
			sess_evict(mgr, s, "idle");
			continue;
		}
		metrics_tick(&s->m, now);
		if (s->clients) {
			size_t len;
			char *text = proto_message("stats", sess_stats_json(s), &len);
			if (text)
				sess_send_all(s, text, len);
			free(text);
		}
		for (struct sess_client *c = s->clients; c; c = c->next)
			ws_tick(c->ws, now);
	}
}

struct sess_manager *sess_manager_new(struct event_base *base, const struct plugin_registry *reg,
				      const struct sess_limits *lim, const json_t *defaults, double start_s)
{
	struct sess_manager *mgr = calloc(1, sizeof(*mgr));
	struct timeval one = { 1, 0 };

	if (!mgr)
		return NULL;
	mgr->base = base;
	mgr->reg = reg;
	mgr->lim = *lim;
	mgr->start_s = start_s;
	mgr->defaults = defaults ? json_deep_copy(defaults) : NULL;
	mgr->pl = pipeline_new(base, reg, sess_on_event);
	mgr->jc = jpeg_codec_new();
	mgr->tick = event_new(base, -1, EV_PERSIST, sess_tick, mgr);
	if (!mgr->pl || !mgr->jc || !mgr->tick || event_add(mgr->tick, &one) < 0) {
		sess_manager_free(mgr);
		return NULL;
	}
	return mgr;
}

void sess_manager_close_all(struct sess_manager *mgr, uint16_t code, const char *reason)
{
	for (struct session *s = mgr->sessions; s; s = s->next)
		for (struct sess_client *c = s->clients; c; c = c->next)
			ws_close(c->ws, code, reason);
}

size_t sess_manager_clients(const struct sess_manager *mgr) { return mgr->n_clients; }

void sess_manager_free(struct sess_manager *mgr)
{
	struct session *s, *next;

	if (!mgr)
		return;
	for (s = mgr->sessions; s; s = s->next)
		while (s->clients)
			ws_abort(s->clients->ws);
	pipeline_free(mgr->pl); /* joins every worker; no more events */
	for (s = mgr->sessions; s; s = next) {
		next = s->next;
		sess_free(s);
	}
	for (s = mgr->dying; s; s = next) {
		next = s->next;
		sess_free(s);
	}
	if (mgr->tick)
		event_free(mgr->tick);
	jpeg_codec_free(mgr->jc);
	json_decref(mgr->defaults);
	free(mgr);
}

void sess_prometheus(const struct sess_manager *mgr, struct evbuffer *out, size_t plugins_loaded,
		     size_t plugins_refused)
{
	struct metrics_row *rows = calloc(mgr->n_sessions + 1, sizeof(*rows));
	size_t n = 0;
	if (!rows)
		return;
	for (const struct session *s = mgr->sessions; s; s = s->next, n++) {
		rows[n].session = s->id;
		rows[n].m = &s->m;
		rows[n].clients = (int)s->n_clients;
		rows[n].backend = s->backend[0] ? s->backend : "none";
		rows[n].mode = s->mode;
	}
	metrics_prometheus(out, rows, n, metrics_now() - mgr->start_s, plugins_loaded, plugins_refused);
	free(rows);
}

json_t *sess_ids(const struct sess_manager *mgr)
{
	json_t *a = json_array();
	for (const struct session *s = mgr->sessions; s; s = s->next)
		json_array_append_new(a, json_string(s->id));
	return a;
}
