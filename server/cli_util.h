/*
 * cli_util.h: what heru-smoke and heru-bench share: generated camera frames, the
 * binary frame header, starting a herud when none answers, and reading a server
 * process's CPU time and memory from /proc.
 */
#ifndef HERU_CLI_UTIL_H
#define HERU_CLI_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ws_client.h"

#define CLI_FRAME_HEADER 16 /* "HRF1", id u32 BE, ts f64 BE */

/*
 * A synthetic camera frame `t` of w x h (a gradient with moving shapes) as a new
 * JPEG in *jpeg (free()), quality 85. 0, or -1 with err.
 */
int cli_make_jpeg(int w, int h, int t, uint8_t **jpeg, size_t *len, char *err, size_t errlen);

/* Write the 16-byte binary frame header for (id, ts_ms) into out. */
void cli_frame_header(uint8_t out[CLI_FRAME_HEADER], uint32_t id, double ts_ms);

/*
 * Send one camera frame as a binary message: the header for (id, ts_ms), then the
 * `len` bytes of `jpeg`, assembled in `buf` (room for CLI_FRAME_HEADER + len bytes).
 * 0, or -1 with err.
 */
int cli_send_frame(struct ws_client *ws, uint8_t *buf, uint32_t id, double ts_ms,
	const uint8_t *jpeg, size_t len, char *err, size_t errlen);

/* Parse a binary frame header; false when len < 16 or the magic is wrong. */
bool cli_parse_frame_header(const uint8_t *p, size_t len, uint32_t *id, double *ts_ms);

/*
 * Make sure a herud answers GET /api/health at `url`. When nothing listens and the
 * host is a loopback address, start one (env HERUD, else the herud next to this
 * program or one folder up (a build tree), else `herud` on PATH) with --listen HOST:PORT and, when given,
 * --plugin-dir `plugin_dir` and --config `config`; its output goes to a log file
 * named in the messages. *started receives its pid (0 when a server was already
 * running). 0, or -1 with err.
 */
int cli_ensure_server(const struct ws_url *url, const char *token, const char *plugin_dir,
	const char *config, bool verbose, pid_t *started, char *err, size_t errlen);

/* Stop a herud started by cli_ensure_server (SIGTERM, then wait up to 5 s). */
void cli_stop_server(pid_t pid);

/* The pid of the process listening on TCP `port` on this machine, or 0. */
pid_t cli_find_listener(const char *port);

/* CPU seconds (user + system) used so far by `pid`, or -1. */
double cli_proc_cpu_seconds(pid_t pid);

/* Resident memory of `pid` in KiB (VmRSS), or -1. */
long cli_proc_rss_kb(pid_t pid);

/* The p-th percentile (0..100) of v[0..n) (sorts v in place); 0 when n == 0. */
double cli_percentile(double *v, size_t n, double p);

#endif /* HERU_CLI_UTIL_H */
