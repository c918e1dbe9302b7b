/* metrics.h: per-session counters, latency percentiles and fps, and the Prometheus
 * text page. Loop thread only (workers report through pipeline events). */
#ifndef HERU_METRICS_H
#define HERU_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct evbuffer;

#define METRICS_WINDOW 1024 /* latency samples kept for percentiles */

struct metrics {
	uint64_t frames_in;	   /* frames accepted from clients */
	uint64_t frames_out;	   /* frames produced by the backend */
	uint64_t dropped_inbox;	   /* replaced in the inbox before processing */
	uint64_t dropped_send;	   /* replaced in a client's send queue */
	uint64_t frame_errors;	   /* frames refused (not JPEG, too large, decode failed) */
	double lat[METRICS_WINDOW]; /* last latencies, ms (ring) */
	size_t lat_n, lat_pos;
	double lat_sum;		   /* over all frames */
	uint64_t lat_count;
	uint64_t tick_in, tick_out; /* counters at the last tick */
	double tick_t;		    /* seconds (monotonic) of the last tick */
	double fps_in, fps_out;
};

void metrics_init(struct metrics *m, double now_s);
void metrics_latency(struct metrics *m, double ms);
/* Recompute fps over the time since the previous tick (call about once a second). */
void metrics_tick(struct metrics *m, double now_s);
/* Percentile P (0..100) of the latency window; 0 when empty. */
double metrics_percentile(const struct metrics *m, double p);

/* The stats object fields this module owns, added to OBJ (borrowed). */
void metrics_to_json(const struct metrics *m, json_t *obj);

struct metrics_row {
	const char *session;	  /* borrowed */
	const struct metrics *m;  /* borrowed */
	int clients;
	const char *backend;	  /* borrowed */
	const char *mode;	  /* borrowed */
};

/* Append the Prometheus text exposition (format 0.0.4) for ROWS to OUT. */
void metrics_prometheus(struct evbuffer *out, const struct metrics_row *rows, size_t n, double uptime_s,
			size_t plugins_loaded, size_t plugins_refused);

double metrics_now(void); /* monotonic seconds */

#endif
