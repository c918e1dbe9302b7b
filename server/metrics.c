/* metrics.c: counters and latency percentiles per session; Prometheus text output. */
#include "config.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics.h"

double metrics_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void metrics_init(struct metrics *m, double now_s)
{
	memset(m, 0, sizeof(*m));
	m->tick_t = now_s;
}

void metrics_latency(struct metrics *m, double ms)
{
	m->lat[m->lat_pos] = ms;
	m->lat_pos = (m->lat_pos + 1) % METRICS_WINDOW;
	if (m->lat_n < METRICS_WINDOW)
		m->lat_n++;
	m->lat_sum += ms;
	m->lat_count++;
}

void metrics_tick(struct metrics *m, double now_s)
{
	double dt = now_s - m->tick_t;
	if (dt < 0.2)
		return;
	m->fps_in = (double)(m->frames_in - m->tick_in) / dt;
	m->fps_out = (double)(m->frames_out - m->tick_out) / dt;
	m->tick_in = m->frames_in;
	m->tick_out = m->frames_out;
	m->tick_t = now_s;
}

static int metrics_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double metrics_percentile(const struct metrics *m, double p)
{
	double tmp[METRICS_WINDOW];
	size_t idx;

	if (m->lat_n == 0)
		return 0;
	memcpy(tmp, m->lat, m->lat_n * sizeof(double));
	qsort(tmp, m->lat_n, sizeof(double), metrics_cmp);
	/* nearest rank */
	idx = (size_t)(p / 100.0 * (double)m->lat_n + 0.999999);
	if (idx < 1)
		idx = 1;
	if (idx > m->lat_n)
		idx = m->lat_n;
	return tmp[idx - 1];
}

static double round2(double x) { return (double)(long long)(x * 100.0 + 0.5) / 100.0; }

void metrics_to_json(const struct metrics *m, json_t *o)
{
	json_object_set_new(o, "frames_in", json_integer((json_int_t)m->frames_in));
	json_object_set_new(o, "frames_out", json_integer((json_int_t)m->frames_out));
	json_object_set_new(o, "frames_dropped", json_integer((json_int_t)(m->dropped_inbox + m->dropped_send)));
	json_object_set_new(o, "dropped_inbox", json_integer((json_int_t)m->dropped_inbox));
	json_object_set_new(o, "dropped_send", json_integer((json_int_t)m->dropped_send));
	json_object_set_new(o, "frame_errors", json_integer((json_int_t)m->frame_errors));
	json_object_set_new(o, "fps_in", json_real(round2(m->fps_in)));
	json_object_set_new(o, "fps_out", json_real(round2(m->fps_out)));
	json_object_set_new(o, "avg_latency_ms", json_real(m->lat_count ? round2(m->lat_sum / (double)m->lat_count) : 0));
	json_object_set_new(o, "p50_ms", json_real(round2(metrics_percentile(m, 50))));
	json_object_set_new(o, "p95_ms", json_real(round2(metrics_percentile(m, 95))));
	json_object_set_new(o, "p99_ms", json_real(round2(metrics_percentile(m, 99))));
}

/* Session ids are [A-Za-z0-9_-] and backend/mode come from our own tables or plugin
 * ids ([a-z0-9_.-]), so no label escaping is needed beyond that guarantee. */
void metrics_prometheus(struct evbuffer *out, const struct metrics_row *rows, size_t n, double uptime_s,
			size_t plugins_loaded, size_t plugins_refused)
{
	static const struct {
		const char *name, *type, *help;
		int which;
	} defs[] = {
		{ "heru_frames_in_total", "counter", "Frames received from clients.", 0 },
		{ "heru_frames_out_total", "counter", "Frames produced by the backend.", 1 },
		{ "heru_frames_dropped_inbox_total", "counter", "Frames replaced in the session inbox before processing.", 2 },
		{ "heru_frames_dropped_send_total", "counter", "Output frames replaced in a slow client's send queue.", 3 },
		{ "heru_frame_errors_total", "counter", "Frames refused (not JPEG, too large, undecodable).", 4 },
		{ "heru_fps_in", "gauge", "Input frames per second.", 5 },
		{ "heru_fps_out", "gauge", "Output frames per second.", 6 },
		{ "heru_clients", "gauge", "Connected WebSocket clients.", 7 },
	};

	evbuffer_add_printf(out, "# HELP heru_uptime_seconds Seconds since herud started.\n"
				 "# TYPE heru_uptime_seconds gauge\nheru_uptime_seconds %.3f\n", uptime_s);
	evbuffer_add_printf(out, "# HELP heru_plugins Plugins by load state.\n# TYPE heru_plugins gauge\n"
				 "heru_plugins{state=\"loaded\"} %zu\nheru_plugins{state=\"refused\"} %zu\n",
			    plugins_loaded, plugins_refused);
	evbuffer_add_printf(out, "# HELP heru_sessions Sessions in memory.\n# TYPE heru_sessions gauge\n"
				 "heru_sessions %zu\n", n);
	for (size_t d = 0; d < sizeof(defs) / sizeof(defs[0]); d++) {
		evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", defs[d].name, defs[d].help, defs[d].name,
				    defs[d].type);
		for (size_t i = 0; i < n; i++) {
			const struct metrics *m = rows[i].m;
			double v = 0;
			switch (defs[d].which) {
			case 0: v = (double)m->frames_in; break;
			case 1: v = (double)m->frames_out; break;
			case 2: v = (double)m->dropped_inbox; break;
			case 3: v = (double)m->dropped_send; break;
			case 4: v = (double)m->frame_errors; break;
			case 5: v = m->fps_in; break;
			case 6: v = m->fps_out; break;
			case 7: v = rows[i].clients; break;
			}
			evbuffer_add_printf(out, "%s{session=\"%s\"} %.17g\n", defs[d].name, rows[i].session, v);
		}
	}
	evbuffer_add_printf(out, "# HELP heru_latency_ms Server-side frame latency (receive to send) over the last %d frames.\n"
				 "# TYPE heru_latency_ms summary\n", METRICS_WINDOW);
	for (size_t i = 0; i < n; i++) {
		const struct metrics *m = rows[i].m;
		static const double qs[] = { 0.5, 0.95, 0.99 };
		for (int q = 0; q < 3; q++)
			evbuffer_add_printf(out, "heru_latency_ms{session=\"%s\",quantile=\"%g\"} %.3f\n", rows[i].session,
					    qs[q], metrics_percentile(m, qs[q] * 100));
		evbuffer_add_printf(out, "heru_latency_ms_sum{session=\"%s\"} %.3f\nheru_latency_ms_count{session=\"%s\"} %llu\n",
				    rows[i].session, m->lat_sum, rows[i].session, (unsigned long long)m->lat_count);
	}
	evbuffer_add_printf(out, "# HELP heru_backend_info Backend and mode of each session.\n# TYPE heru_backend_info gauge\n");
	for (size_t i = 0; i < n; i++)
		evbuffer_add_printf(out, "heru_backend_info{session=\"%s\",backend=\"%s\",mode=\"%s\"} 1\n", rows[i].session,
				    rows[i].backend, rows[i].mode);
}
