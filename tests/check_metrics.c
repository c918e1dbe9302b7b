/* check_metrics.c: latency percentiles, fps and the Prometheus page (server/metrics.c). */
#include "config.h"

#include <check.h>
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "check_util.h"
#include "metrics.h"

START_TEST(percentiles_nearest_rank)
{
	struct metrics m;
	metrics_init(&m, 0);
	ck_assert(metrics_percentile(&m, 50) == 0);
	for (int i = 100; i >= 1; i--) /* 1..100 ms, in reverse order */
		metrics_latency(&m, i);
	ck_assert(metrics_percentile(&m, 50) == 50);
	ck_assert(metrics_percentile(&m, 95) == 95);
	ck_assert(metrics_percentile(&m, 99) == 99);
	ck_assert(metrics_percentile(&m, 100) == 100);
	ck_assert(metrics_percentile(&m, 0) == 1);
}
END_TEST

START_TEST(window_keeps_the_latest)
{
	struct metrics m;
	metrics_init(&m, 0);
	for (int i = 0; i < METRICS_WINDOW; i++)
		metrics_latency(&m, 1000); /* old, slow */
	for (int i = 0; i < METRICS_WINDOW; i++)
		metrics_latency(&m, 5); /* recent, fast */
	ck_assert(metrics_percentile(&m, 99) == 5);
	ck_assert_uint_eq(m.lat_count, 2 * METRICS_WINDOW);
	json_t *o = json_object();
	metrics_to_json(&m, o);
	/* the average is over all frames, the percentiles over the window */
	ck_assert(json_real_value(json_object_get(o, "avg_latency_ms")) > 500);
	ck_assert(json_real_value(json_object_get(o, "p50_ms")) == 5);
	json_decref(o);
}
END_TEST

START_TEST(fps_per_tick)
{
	struct metrics m;
	metrics_init(&m, 10.0);
	m.frames_in = 30;
	m.frames_out = 15;
	metrics_tick(&m, 11.0);
	ck_assert(m.fps_in == 30);
	ck_assert(m.fps_out == 15);
	m.frames_in += 10;
	metrics_tick(&m, 11.1); /* too soon: unchanged */
	ck_assert(m.fps_in == 30);
	metrics_tick(&m, 13.0);
	ck_assert(m.fps_in == 5);
}
END_TEST

START_TEST(prometheus_page)
{
	struct metrics m;
	struct metrics_row row = { "main", &m, 2, "mock", "mock" };
	struct evbuffer *out = evbuffer_new();
	char *text;
	size_t n;

	metrics_init(&m, 0);
	m.frames_in = 7;
	m.dropped_send = 3;
	metrics_latency(&m, 12.5);
	metrics_prometheus(out, &row, 1, 42.0, 3, 1);
	n = evbuffer_get_length(out);
	text = malloc(n + 1);
	evbuffer_remove(out, text, n);
	text[n] = 0;
	ck_assert_ptr_nonnull(strstr(text, "# TYPE heru_frames_in_total counter\nheru_frames_in_total{session=\"main\"} 7\n"));
	ck_assert_ptr_nonnull(strstr(text, "heru_frames_dropped_send_total{session=\"main\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(text, "heru_latency_ms{session=\"main\",quantile=\"0.99\"} 12.500\n"));
	ck_assert_ptr_nonnull(strstr(text, "heru_latency_ms_count{session=\"main\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text, "heru_clients{session=\"main\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(text, "heru_plugins{state=\"refused\"} 1\n"));
	/* every line is a comment or "name{labels} number" */
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		if (line[0] == '#')
			continue;
		char *sp = strrchr(line, ' ');
		ck_assert_ptr_nonnull(sp);
		char *end;
		strtod(sp + 1, &end);
		ck_assert_msg(*end == 0, "not a number in '%s'", line);
	}
	free(text);
	evbuffer_free(out);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, percentiles_nearest_rank);
	tcase_add_test(tc, window_keeps_the_latest);
	tcase_add_test(tc, fps_per_tick);
	tcase_add_test(tc, prometheus_page);
	suite_add_tcase(s, tc);
	return check_run_suite(s);
}
