/* pipeline.c: one worker thread per backend instance; results back to the loop.
 *
 * DESIGN
 * Threads. Each backend instance owns one worker thread for its whole life: the
 * thread first runs the plugin's `create` (which may take minutes: weights, CUDA
 * warm-up), then serves frames, then runs `destroy`. Running create/destroy on the
 * worker satisfies both rules of include/heru/plugin.h (thread-affine plugins keep
 * every call on one thread; others may be created off the loop on any thread) and
 * makes the hot swap of architecture.md §4 simple: the loop starts a new instance
 * while the old one keeps serving, and repoints the session when READY arrives.
 * Conditioner instances are created on the same worker and run on every frame.
 *
 * Frames. The loop appends a job to the instance's inbox, which holds as many frames
 * as one step of the backend consumes (heru_backend_vtable.input_chunk: 4 for a Wan
 * chunk, 1 for a backend that says nothing). Beyond that the OLDEST unprocessed job
 * gives way (the caller counts the drop), so with one slot the newest frame wins and
 * a chunked model gets every frame that arrives while it computes a chunk, in order
 * and without gaps. The worker
 * decodes (its own TurboJPEG handles), runs conditioners and the backend, scales each
 * emitted frame to output_width x output_height, encodes it and posts a FRAME event at
 * once. It takes jobs no faster than target_fps on average (input pacing: it never
 * works on frames nobody will see), with a burst of up to inbox-size jobs back to back
 * so a chunked backend catches up on the frames that queued during its last chunk
 * instead of waiting a slot for each; spreading a chunked model's bursts evenly is the loop's
 * job (session.c), so the worker never sleeps while its device could compute.
 *
 * Events. Workers never touch libevent objects other than event_active() on one
 * event (safe after evthread_use_pthreads()); the loop drains the list in order and
 * calls the owner's handler. EXITED is the last event of an instance: after its
 * dispatch the loop joins the (finished) thread and frees the instance. */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "heru/plugin.h"
#include "jpeg.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "plugin.h"

#define PIPE_MAX_CONDITIONERS 8
#define PIPE_RECENT 32 /* ids remembered for latency of buffered outputs */

struct pipe_cond {
	const struct heru_plugin_entry *entry; /* borrowed from the registry */
	void *inst;			       /* new: the conditioner instance */
};

struct pipe_instance {
	struct pipeline *pl;			/* borrowed */
	void *owner;				/* borrowed */
	const struct heru_plugin_entry *entry;	/* borrowed; NULL for passthrough */
	char id[64];
	struct heru_host host;			/* per instance; host_data = this */
	pthread_t thread;
	bool thread_started;
	struct pipe_instance *next;		/* pipeline's list */

	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* inbox: a ring of up to in_cap jobs in arrival order, each new (guarded by mu) */
	struct pipe_job *inbox[HERU_INPUT_CHUNK_MAX];
	size_t in_head, in_n;
	size_t in_cap;				/* 1..HERU_INPUT_CHUNK_MAX, set at start */
	char *cfg_json;				/* new: pending config (guarded by mu) */
	uint64_t cfg_rev;
	atomic_bool stop;
	atomic_bool cancelled;

	/* worker-thread only */
	void *inst;				/* new: the plugin instance */
	json_t *cfg;				/* new: parsed current config */
	uint64_t rev;
	struct heru_params params;
	struct pipe_cond conds[PIPE_MAX_CONDITIONERS];
	size_t n_conds;
	struct jpeg_codec *jc;			/* new */
	double next_take;			/* input pacing: next job not before (monotonic s) */
	double last_stats;			/* when vtable->stats last ran */
	struct { uint32_t id; double t_recv; } recent[PIPE_RECENT];
	size_t recent_pos;
};

struct pipeline {
	struct event_base *base;	      /* borrowed */
	const struct plugin_registry *reg;    /* borrowed */
	pipe_event_fn fn;
	struct event *wake;		      /* new */
	pthread_mutex_t mu;
	struct pipe_event *head, *tail;	      /* guarded by mu */
	struct pipe_instance *instances;      /* loop thread */
};

/* ---- events ---------------------------------------------------------------------- */

static void pipe_post(struct pipe_instance *pi, struct pipe_event *ev)
{
	struct pipeline *pl = pi->pl;
	ev->next = NULL; /* ev is the head of a struct pipe_event_box, which names the instance */
	pthread_mutex_lock(&pl->mu);
	if (pl->tail)
		pl->tail->next = ev;
	else
		pl->head = ev;
	pl->tail = ev;
	pthread_mutex_unlock(&pl->mu);
	event_active(pl->wake, EV_READ, 1);
}

struct pipe_event_box {
	struct pipe_event ev; /* first: the list links through ev.next */
	struct pipe_instance *inst;
};

static struct pipe_event *pipe_event_new(struct pipe_instance *pi, enum pipe_ev_type type)
{
	struct pipe_event_box *box = calloc(1, sizeof(*box));
	if (!box)
		return NULL;
	box->ev.type = type;
	box->ev.progress = -1;
	box->inst = pi;
	return &box->ev;
}

static void pipe_post_simple(struct pipe_instance *pi, enum pipe_ev_type type, const char *msg)
{
	struct pipe_event *ev = pipe_event_new(pi, type);
	if (!ev) {
		log_error("out of memory posting an event of backend '%s'", pi->id);
		return;
	}
	if (msg)
		snprintf(ev->msg, sizeof(ev->msg), "%s", msg);
	pipe_post(pi, ev);
}

static void pipe_instance_destroy(struct pipe_instance *pi);

static void pipe_drain(evutil_socket_t fd, short what, void *arg)
{
	struct pipeline *pl = arg;
	struct pipe_event *list, *next;

	pthread_mutex_lock(&pl->mu);
	list = pl->head;
	pl->head = pl->tail = NULL;
	pthread_mutex_unlock(&pl->mu);
	for (; list; list = next) {
		struct pipe_event_box *box = (struct pipe_event_box *)list;
		next = list->next;
		pl->fn(box->inst->owner, box->inst, list);
		if (list->type == PIPE_EV_EXITED) {
			struct pipe_instance **pp;
			for (pp = &pl->instances; *pp; pp = &(*pp)->next)
				if (*pp == box->inst) {
					*pp = box->inst->next;
					break;
				}
			pipe_instance_destroy(box->inst);
		}
		free(list->jpeg);
		free(list->text);
		free(box);
	}
}

/* ---- host callbacks (any thread of this instance) ----------------------------------- */

static void pipe_host_log(const struct heru_host *host, int level, const char *msg)
{
	const struct pipe_instance *pi = host->host_data;
	if (level < HERU_LOG_ERROR || level > HERU_LOG_DEBUG)
		level = HERU_LOG_INFO;
	log_msg((enum log_level)level, "%s: %s", pi->id, msg ? msg : "(null)");
}

static void pipe_host_report(const struct heru_host *host, const char *mode, float progress)
{
	static const char *const modes[] = { "core-imported", "core-warmup", "core-runtime-active",
					     "core-distributed-warmup", "core-distributed-active" };
	struct pipe_instance *pi = host->host_data;
	struct pipe_event *ev;
	size_t i = 0;

	if (mode) { /* only the documented modes reach clients and /metrics labels */
		for (i = 0; i < sizeof(modes) / sizeof(modes[0]) && strcmp(mode, modes[i]) != 0; i++)
			;
		if (i == sizeof(modes) / sizeof(modes[0])) {
			log_warn("%s reported an unknown mode; ignored", pi->id);
			mode = NULL;
		}
	}
	if (!(progress >= 0) && !mode) /* NaN or "keep" with no mode: nothing to say */
		return;
	ev = pipe_event_new(pi, PIPE_EV_PROGRESS);
	if (!ev)
		return;
	if (mode)
		snprintf(ev->mode, sizeof(ev->mode), "%s", mode);
	ev->progress = progress >= 0 ? progress : -1;
	if (ev->progress > 1)
		ev->progress = 1;
	pipe_post(pi, ev);
}

static bool pipe_host_cancelled(const struct heru_host *host)
{
	const struct pipe_instance *pi = host->host_data;
	return atomic_load(&((struct pipe_instance *)pi)->cancelled);
}

/* ---- the worker -------------------------------------------------------------------- */

/* Read the live parameters out of the parsed config. */
static void pipe_params_from_cfg(struct pipe_instance *pi)
{
	json_t *c = pi->cfg;
	struct heru_params *p = &pi->params;

	memset(p, 0, sizeof(*p));
	p->struct_size = sizeof(*p);
	p->revision = pi->rev;
	p->prompt = json_string_value(json_object_get(c, "prompt"));
	if (!p->prompt)
		p->prompt = "";
	p->prompt_dominance = (float)json_number_value(json_object_get(c, "prompt_dominance"));
	p->pose_lock = (float)json_number_value(json_object_get(c, "pose_lock"));
	p->depth_lock = (float)json_number_value(json_object_get(c, "depth_lock"));
	p->seg_lock = (float)json_number_value(json_object_get(c, "seg_lock"));
	p->motion_lock = (float)json_number_value(json_object_get(c, "motion_lock"));
	p->inference_steps = (int32_t)json_number_value(json_object_get(c, "inference_steps"));
	p->output_width = (int32_t)json_number_value(json_object_get(c, "output_width"));
	p->output_height = (int32_t)json_number_value(json_object_get(c, "output_height"));
	p->seed = (uint64_t)json_number_value(json_object_get(c, "seed"));
	if (p->output_width < 16 || p->output_width > JPEG_MAX_DIM)
		p->output_width = 512;
	if (p->output_height < 16 || p->output_height > JPEG_MAX_DIM)
		p->output_height = 512;
}

static int pipe_set_cfg(struct pipe_instance *pi, const char *text, uint64_t rev)
{
	json_t *c = json_loads(text, 0, NULL);
	if (!c)
		return -1;
	json_decref(pi->cfg);
	pi->cfg = c;
	pi->rev = rev;
	pipe_params_from_cfg(pi);
	return 0;
}

/* Wait on the instance's condition (mu held) at most until the monotonic time T. */
static void pipe_wait_until(struct pipe_instance *pi, double t)
{
	struct timespec ts;
	double d = t - metrics_now();

	if (d <= 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)d;
	ts.tv_nsec += (long)((d - floor(d)) * 1e9);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&pi->cv, &pi->mu, &ts);
}

struct pipe_emit_ctx {
	struct pipe_instance *pi;
	const struct pipe_job *job;
};

/* heru_emit_fn: scale, encode, pace, post. FRAME is stolen. */
static int pipe_emit(void *ctx, struct heru_frame *frame)
{
	struct pipe_emit_ctx *ec = ctx;
	struct pipe_instance *pi = ec->pi;
	struct pipe_event *ev = NULL;
	uint8_t *packed = NULL, *scaled = NULL;
	const uint8_t *src;
	int ow = pi->params.output_width, oh = pi->params.output_height;
	char err[200];
	double t_recv;
	int rc = HERU_EINVAL;

	if (!frame || frame->format != HERU_FORMAT_RGB8 || frame->width < 1 || frame->height < 1 ||
	    frame->width > 16384 || frame->height > 16384 || frame->stride < frame->width * 3) {
		log_warn("%s: emitted a frame that is not valid RGB8; ignored", pi->id);
		goto out;
	}
	rc = HERU_ENOMEM;
	src = frame->data;
	if (frame->stride != frame->width * 3) {
		packed = malloc((size_t)frame->width * frame->height * 3);
		if (!packed)
			goto out;
		for (int y = 0; y < frame->height; y++)
			memcpy(packed + (size_t)y * frame->width * 3, heru_frame_row(frame, y), (size_t)frame->width * 3);
		src = packed;
	}
	if (frame->width != ow || frame->height != oh) {
		scaled = malloc((size_t)ow * oh * 3);
		if (!scaled)
			goto out;
		jpeg_resize_rgb(src, frame->width, frame->height, scaled, ow, oh);
		src = scaled;
	}
	ev = pipe_event_new(pi, PIPE_EV_FRAME);
	if (!ev)
		goto out;
	if (jpeg_encode(pi->jc, src, ow, oh, 80, &ev->jpeg, &ev->len, err, sizeof(err)) < 0) {
		log_warn("%s: %s", pi->id, err);
		rc = HERU_EINTERNAL;
		goto out;
	}
	ev->width = ow;
	ev->height = oh;
	ev->id = (uint32_t)frame->id;
	ev->ts = frame->ts_ms;
	/* latency from when the input with this id arrived */
	t_recv = ec->job ? ec->job->t_recv : metrics_now();
	for (size_t i = 0; i < PIPE_RECENT; i++)
		if (pi->recent[i].id == ev->id && pi->recent[i].t_recv > 0) {
			t_recv = pi->recent[i].t_recv;
			break;
		}
	ev->latency_ms = (metrics_now() - t_recv) * 1000.0;
	pipe_post(pi, ev);
	ev = NULL;
	rc = 0;
out:
	if (ev) {
		free(ev->jpeg);
		free(ev);
	}
	free(packed);
	free(scaled);
	heru_frame_release(frame);
	return rc;
}

static void pipe_frame_error(struct pipe_instance *pi, const struct pipe_job *job, const char *msg)
{
	struct pipe_event *ev = pipe_event_new(pi, PIPE_EV_FRAME_ERROR);
	if (!ev)
		return;
	snprintf(ev->msg, sizeof(ev->msg), "%s", msg);
	ev->client_id = job->client_id;
	ev->id = job->id;
	pipe_post(pi, ev);
}

static void pipe_process_job(struct pipe_instance *pi, struct pipe_job *job)
{
	struct heru_frame *frame;
	struct heru_map maps[PIPE_MAX_CONDITIONERS];
	struct heru_frame *map_frames[PIPE_MAX_CONDITIONERS];
	uint32_t n_maps = 0;
	char err[256], msg[512];
	struct pipe_emit_ctx ec = { pi, job };

	frame = plugin_frame_new(HERU_FORMAT_RGB8, job->width, job->height);
	if (!frame) {
		snprintf(msg, sizeof(msg), "frame %u: out of memory for a %dx%d image", job->id, job->width, job->height);
		pipe_frame_error(pi, job, msg);
		return;
	}
	if (jpeg_decode_into(pi->jc, job->jpeg, job->len, frame->data, frame->width, frame->stride, frame->height, err,
			     sizeof(err)) < 0) {
		snprintf(msg, sizeof(msg), "frame %u: %s", job->id, err);
		pipe_frame_error(pi, job, msg);
		heru_frame_release(frame);
		return;
	}
	frame->id = job->id;
	frame->ts_ms = job->ts;
	pi->recent[pi->recent_pos].id = job->id;
	pi->recent[pi->recent_pos].t_recv = job->t_recv;
	pi->recent_pos = (pi->recent_pos + 1) % PIPE_RECENT;

	for (size_t i = 0; i < pi->n_conds; i++) {
		struct heru_frame *out = NULL;
		const struct heru_conditioner_vtable *vt = pi->conds[i].entry->conditioner;
		err[0] = 0;
		if (vt->process(pi->conds[i].inst, frame, &out, err, sizeof(err)) == 0 && out &&
		    out->format == HERU_FORMAT_F32) {
			maps[n_maps].capability = pi->conds[i].entry->capabilities ? pi->conds[i].entry->capabilities[0] : "";
			maps[n_maps].map = out;
			map_frames[n_maps++] = out;
		} else {
			heru_frame_release(out);
			log_debug("%s: conditioner %s: %s", pi->id, pi->conds[i].entry->id, err);
		}
	}

	if (!pi->entry) {
		pipe_emit(&ec, heru_frame_retain(frame));
	} else {
		struct heru_process_args args = {
			.struct_size = sizeof(args),
			.n_maps = n_maps,
			.frame = frame,
			.maps = maps,
			.params = &pi->params,
			.emit = pipe_emit,
			.emit_ctx = &ec,
		};
		err[0] = 0;
		if (pi->entry->backend->process(pi->inst, &args, err, sizeof(err)) < 0) {
			snprintf(msg, sizeof(msg), "frame %u: backend %s failed: %s", job->id, pi->id,
				 err[0] ? err : "no reason given");
			pipe_frame_error(pi, job, msg);
		}
	}
	for (uint32_t i = 0; i < n_maps; i++)
		heru_frame_release(map_frames[i]);
	heru_frame_release(frame);
}

static void pipe_apply_config(struct pipe_instance *pi, char *text, uint64_t rev)
{
	char err[256] = "";
	int rc = 0;

	if (pi->entry) {
		const struct heru_backend_vtable *vt = pi->entry->backend;
		if (!vt->update_config)
			rc = HERU_ERESTART;
		else
			rc = vt->update_config(pi->inst, text, err, sizeof(err));
	}
	if (rc == HERU_ERESTART) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", err[0] ? err : "restart required");
		pipe_post_simple(pi, PIPE_EV_RESTART, msg);
	} else if (rc < 0) {
		log_warn("%s refused config revision %llu: %s", pi->id, (unsigned long long)rev, err);
	}
	if (rc == 0 && pipe_set_cfg(pi, text, rev) < 0)
		log_error("%s: cannot parse config revision %llu", pi->id, (unsigned long long)rev);
}

static void pipe_create_conditioners(struct pipe_instance *pi, const char *cfg_text)
{
	const struct plugin_registry *reg = pi->pl->reg;
	size_t n = reg ? plugin_registry_count(reg) : 0;

	for (size_t i = 0; i < n && pi->n_conds < PIPE_MAX_CONDITIONERS; i++) {
		const struct heru_plugin_entry *e = plugin_registry_at(reg, i);
		char err[256] = "";
		void *ci;
		if (e->kind != HERU_KIND_CONDITIONER || !e->conditioner)
			continue;
		ci = e->conditioner->create(&pi->host, cfg_text, err, sizeof(err));
		if (!ci) {
			log_warn("%s: conditioner %s not available: %s", pi->id, e->id, err);
			continue;
		}
		pi->conds[pi->n_conds].entry = e;
		pi->conds[pi->n_conds++].inst = ci;
	}
}

/* About once a second, between frames: the backend's own stats, to the session. */
static void pipe_backend_stats(struct pipe_instance *pi)
{
	char buf[4096];
	struct pipe_event *ev;
	int n;

	if (!pi->entry || !pi->entry->backend->stats || metrics_now() - pi->last_stats < 1.0)
		return;
	pi->last_stats = metrics_now();
	n = pi->entry->backend->stats(pi->inst, buf, sizeof(buf));
	if (n < 0 || (size_t)n >= sizeof(buf))
		return;
	buf[n] = 0;
	ev = pipe_event_new(pi, PIPE_EV_STATS);
	if (!ev)
		return;
	ev->text = strdup(buf);
	if (!ev->text) {
		free(ev);
		return;
	}
	pipe_post(pi, ev);
}

static void *pipe_worker(void *arg)
{
	struct pipe_instance *pi = arg;
	char err[256] = "";
	char *text;

	pthread_mutex_lock(&pi->mu);
	text = pi->cfg_json;
	pi->cfg_json = NULL;
	pthread_mutex_unlock(&pi->mu);

	pi->jc = jpeg_codec_new();
	if (!pi->jc || !text || pipe_set_cfg(pi, text, pi->cfg_rev) < 0) {
		pipe_post_simple(pi, PIPE_EV_FAILED, "cannot start a backend worker: out of memory");
		goto exit;
	}
	if (pi->entry) {
		pi->inst = pi->entry->backend->create(&pi->host, text, err, sizeof(err));
		if (!pi->inst) {
			char msg[512];
			if (atomic_load(&pi->cancelled))
				snprintf(msg, sizeof(msg), "creation of %s was cancelled", pi->id);
			else
				snprintf(msg, sizeof(msg), "%s", err[0] ? err : "the backend failed to start (no reason given)");
			pipe_post_simple(pi, PIPE_EV_FAILED, msg);
			goto exit;
		}
	}
	pipe_create_conditioners(pi, text);
	free(text);
	text = NULL;
	pipe_post_simple(pi, PIPE_EV_READY, NULL);

	for (;;) {
		struct pipe_job *job;
		char *cfg;
		uint64_t rev;

		/* Take a frame no faster than target_fps (newer ones replace it meanwhile);
		 * a config change is taken at once. */
		double fps = json_number_value(json_object_get(pi->cfg, "target_fps"));
		double slot = 1.0 / (fps >= 1 ? fps : 30);
		/* half a slot of slack: an early frame is not held back by arrival jitter, and
		 * since next_take advances one slot per job the rate still stays <= fps */
		double ready_at = pi->next_take - slot / 2;
		pthread_mutex_lock(&pi->mu);
		for (;;) {
			if (atomic_load(&pi->stop) || pi->cfg_json)
				break;
			if (pi->in_n && metrics_now() >= ready_at)
				break;
			if (pi->in_n)
				pipe_wait_until(pi, ready_at);
			else
				pthread_cond_wait(&pi->cv, &pi->mu);
		}
		if (atomic_load(&pi->stop)) {
			pthread_mutex_unlock(&pi->mu);
			break;
		}
		job = pi->in_n && metrics_now() >= ready_at ? pi->inbox[pi->in_head] : NULL;
		if (job) {
			/* a token bucket of in_cap slots: after a long step the worker may lag
			 * up to in_cap - 1 slots behind and takes the queued jobs at once */
			double now = metrics_now();
			double floor_t = now - (double)(pi->in_cap - 1) * slot;
			pi->next_take = (pi->next_take < floor_t - slot ? floor_t : pi->next_take) + slot;
			pi->inbox[pi->in_head] = NULL;
			pi->in_head = (pi->in_head + 1) % HERU_INPUT_CHUNK_MAX;
			pi->in_n--;
		}
		cfg = pi->cfg_json;
		pi->cfg_json = NULL;
		rev = pi->cfg_rev;
		pthread_mutex_unlock(&pi->mu);

		if (cfg) {
			pipe_apply_config(pi, cfg, rev);
			free(cfg);
		}
		if (job) {
			pipe_process_job(pi, job);
			pipe_job_free(job);
		}
		pipe_backend_stats(pi);
	}
exit:
	free(text);
	for (size_t i = 0; i < pi->n_conds; i++)
		pi->conds[i].entry->conditioner->destroy(pi->conds[i].inst);
	pi->n_conds = 0;
	if (pi->inst)
		pi->entry->backend->destroy(pi->inst);
	pi->inst = NULL;
	jpeg_codec_free(pi->jc);
	pi->jc = NULL;
	json_decref(pi->cfg);
	pi->cfg = NULL;
	pipe_post_simple(pi, PIPE_EV_EXITED, NULL);
	return NULL;
}

/* ---- loop-thread API ---------------------------------------------------------------- */

struct pipeline *pipeline_new(struct event_base *base, const struct plugin_registry *reg, pipe_event_fn fn)
{
	struct pipeline *pl = calloc(1, sizeof(*pl));
	if (!pl)
		return NULL;
	pl->base = base;
	pl->reg = reg;
	pl->fn = fn;
	pthread_mutex_init(&pl->mu, NULL);
	pl->wake = event_new(base, -1, 0, pipe_drain, pl);
	if (!pl->wake) {
		pthread_mutex_destroy(&pl->mu);
		free(pl);
		return NULL;
	}
	return pl;
}

static void pipe_instance_destroy(struct pipe_instance *pi)
{
	if (pi->thread_started)
		pthread_join(pi->thread, NULL);
	for (size_t i = 0; i < pi->in_n; i++)
		pipe_job_free(pi->inbox[(pi->in_head + i) % HERU_INPUT_CHUNK_MAX]);
	free(pi->cfg_json);
	pthread_mutex_destroy(&pi->mu);
	pthread_cond_destroy(&pi->cv);
	free(pi);
}

void pipeline_free(struct pipeline *pl)
{
	struct pipe_instance *pi, *next;
	struct pipe_event *ev, *enext;

	if (!pl)
		return;
	for (pi = pl->instances; pi; pi = pi->next)
		pipe_instance_stop(pi);
	for (pi = pl->instances; pi; pi = next) {
		next = pi->next;
		pipe_instance_destroy(pi);
	}
	for (ev = pl->head; ev; ev = enext) {
		enext = ev->next;
		free(ev->jpeg);
		free(ev->text);
		free(ev);
	}
	event_free(pl->wake);
	pthread_mutex_destroy(&pl->mu);
	free(pl);
}

struct pipe_instance *pipeline_start(struct pipeline *pl, void *owner, const char *id, const char *config_json,
				     uint64_t revision, char *err, size_t errlen)
{
	const struct heru_plugin_entry *e = NULL;
	struct pipe_instance *pi;

	if (strcmp(id, PIPE_PASSTHROUGH) != 0) {
		e = pl->reg ? plugin_registry_find(pl->reg, id) : NULL;
		if (!e) {
			snprintf(err, errlen, "backend plugin '%s' is not loaded (see GET /api/plugins)", id);
			return NULL;
		}
		if (e->kind != HERU_KIND_BACKEND || !e->backend) {
			snprintf(err, errlen, "plugin '%s' is a conditioner, not a backend", id);
			return NULL;
		}
	}
	pi = calloc(1, sizeof(*pi));
	if (!pi)
		goto nomem;
	pi->pl = pl;
	pi->owner = owner;
	pi->entry = e;
	pi->in_cap = e ? plugin_backend_input_chunk(e) : 1;
	snprintf(pi->id, sizeof(pi->id), "%s", id);
	pi->host.struct_size = sizeof(pi->host);
	pi->host.abi_major = HERU_ABI_MAJOR;
	pi->host.abi_minor = HERU_ABI_MINOR;
	pi->host.name = "herud";
	pi->host.version = PACKAGE_VERSION;
	pi->host.host_data = pi;
	pi->host.log = pipe_host_log;
	pi->host.report = pipe_host_report;
	pi->host.is_cancelled = pipe_host_cancelled;
	pi->host.frame_new = plugin_host_frame_new;
	pthread_mutex_init(&pi->mu, NULL);
	{
		pthread_condattr_t ca; /* timed waits use CLOCK_MONOTONIC deadlines */
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&pi->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	pi->cfg_json = strdup(config_json);
	pi->cfg_rev = revision;
	if (!pi->cfg_json) {
		pipe_instance_destroy(pi);
		goto nomem;
	}
	if (pthread_create(&pi->thread, NULL, pipe_worker, pi) != 0) {
		snprintf(err, errlen, "cannot start a worker thread for '%s': %s", id, strerror(errno));
		pipe_instance_destroy(pi);
		return NULL;
	}
	pi->thread_started = true;
	pi->next = pl->instances;
	pl->instances = pi;
	return pi;
nomem:
	snprintf(err, errlen, "out of memory starting backend '%s'", id);
	return NULL;
}

void pipe_instance_stop(struct pipe_instance *pi)
{
	pthread_mutex_lock(&pi->mu);
	atomic_store(&pi->stop, true);
	atomic_store(&pi->cancelled, true);
	pthread_cond_broadcast(&pi->cv);
	pthread_mutex_unlock(&pi->mu);
}

int pipe_instance_submit(struct pipe_instance *pi, struct pipe_job *job)
{
	struct pipe_job *old = NULL;

	pthread_mutex_lock(&pi->mu);
	if (pi->in_n == pi->in_cap) { /* full: the oldest unprocessed job gives way */
		old = pi->inbox[pi->in_head];
		pi->inbox[pi->in_head] = NULL;
		pi->in_head = (pi->in_head + 1) % HERU_INPUT_CHUNK_MAX;
		pi->in_n--;
	}
	pi->inbox[(pi->in_head + pi->in_n) % HERU_INPUT_CHUNK_MAX] = job;
	pi->in_n++;
	pthread_cond_signal(&pi->cv);
	pthread_mutex_unlock(&pi->mu);
	if (old) {
		pipe_job_free(old);
		return 1;
	}
	return 0;
}

void pipe_instance_set_config(struct pipe_instance *pi, const char *config_json, uint64_t revision)
{
	char *copy = strdup(config_json);
	if (!copy)
		return;
	pthread_mutex_lock(&pi->mu);
	free(pi->cfg_json);
	pi->cfg_json = copy;
	pi->cfg_rev = revision;
	pthread_cond_signal(&pi->cv);
	pthread_mutex_unlock(&pi->mu);
}

const char *pipe_instance_backend(const struct pipe_instance *pi) { return pi->id; }

bool pipe_instance_needs_gpu(const struct pipe_instance *pi)
{
	return pi->entry && (pi->entry->flags & HERU_FLAG_NEEDS_GPU);
}

bool pipe_instance_stopped(const struct pipe_instance *pi)
{
	return atomic_load(&((struct pipe_instance *)pi)->stop);
}

void pipe_job_free(struct pipe_job *job)
{
	if (!job)
		return;
	free(job->jpeg);
	free(job);
}
