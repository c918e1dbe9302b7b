/* pipeline.h: backend instances, each on its own worker thread, with an inbox sized
 * to the backend's input chunk (one slot, newest frame wins, unless the backend
 * declares more; then the oldest gives way), and the event list that carries their results back to the
 * loop thread. */
#ifndef HERU_PIPELINE_H
#define HERU_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct plugin_registry;
struct pipeline;
struct pipe_instance;

/* The built-in backend used when no mock plugin is loaded: output = camera frame. */
#define PIPE_PASSTHROUGH "passthrough"

/* A camera frame waiting for a worker. */
struct pipe_job {
	uint8_t *jpeg;	    /* new (free()) */
	size_t len;
	int width, height;  /* from the header (already checked against the limits) */
	uint32_t id;
	double ts;	    /* client timestamp, ms */
	uint64_t client_id; /* who sent it (for errors) */
	double t_recv;	    /* monotonic seconds when it arrived */
};

enum pipe_ev_type {
	PIPE_EV_PROGRESS,    /* mode / progress while creating or running */
	PIPE_EV_READY,	     /* create succeeded: the instance serves frames */
	PIPE_EV_FAILED,	     /* create failed: msg says why; EXITED follows */
	PIPE_EV_FRAME,	     /* an output frame (jpeg) */
	PIPE_EV_FRAME_ERROR, /* a frame could not be processed: msg, client_id */
	PIPE_EV_RESTART,     /* update_config answered "restart required": msg */
	PIPE_EV_STATS,	     /* the backend's own stats: text (a JSON object) */
	PIPE_EV_EXITED,	     /* the thread ended; the instance is freed after this event */
};

struct pipe_event {
	struct pipe_event *next;
	enum pipe_ev_type type;
	char mode[32];	    /* PROGRESS: "" = unchanged */
	float progress;	    /* PROGRESS: < 0 = unchanged */
	char msg[256];
	uint8_t *jpeg;	    /* FRAME: owned by the event (freed after dispatch) */
	size_t len;
	int width, height;
	uint32_t id;
	double ts;
	double latency_ms;  /* FRAME: receive to encoded, ms */
	uint64_t client_id; /* FRAME_ERROR */
	char *text;	    /* STATS: owned by the event (freed after dispatch) */
};

/* Called on the loop thread for every event. OWNER is what pipeline_start was given;
 * INST is valid during the call (and until EXITED has been dispatched). The handler may
 * take ev->jpeg / ev->text (setting the field to NULL); whatever is left is freed. */
typedef void (*pipe_event_fn)(void *owner, struct pipe_instance *inst, struct pipe_event *ev);

/* BASE, REG: borrowed, outlive the pipeline. Returns new or NULL. */
struct pipeline *pipeline_new(struct event_base *base, const struct plugin_registry *reg, pipe_event_fn fn);
/* Cancel and join every instance (no more events are dispatched), free everything. */
void pipeline_free(struct pipeline *pl);

/* Start an instance of backend ID (a loaded backend plugin or PIPE_PASSTHROUGH) on a
 * new worker thread that first runs the plugin's create with CONFIG_JSON (borrowed).
 * Returns the instance (owned by the pipeline) or NULL with a sentence in ERR (plugin
 * not loaded, not a backend, thread failure). */
struct pipe_instance *pipeline_start(struct pipeline *pl, void *owner, const char *id, const char *config_json,
				     uint64_t revision, char *err, size_t errlen);

/* Ask the instance to stop (cancels a running create). EXITED follows. */
void pipe_instance_stop(struct pipe_instance *inst);

/* Hand a frame to the instance (JOB stolen), after those already waiting. Returns 1
 * when the inbox was full and its oldest unprocessed frame was dropped to make room
 * (the caller counts a drop), else 0. */
int pipe_instance_submit(struct pipe_instance *inst, struct pipe_job *job);

/* A new whole config (borrowed) for the running instance (live change). */
void pipe_instance_set_config(struct pipe_instance *inst, const char *config_json, uint64_t revision);

const char *pipe_instance_backend(const struct pipe_instance *inst); /* borrowed */
bool pipe_instance_needs_gpu(const struct pipe_instance *inst);
/* True once pipe_instance_stop was called. */
bool pipe_instance_stopped(const struct pipe_instance *inst);

void pipe_job_free(struct pipe_job *job);

#endif
