/*
 * cli_util.c: helpers of heru-smoke and heru-bench (see cli_util.h).
 */
#include "config.h"

#include "cli_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <turbojpeg.h>
#include <unistd.h>

/* ---- frames ---- */

int cli_make_jpeg(int w, int h, int t, uint8_t **jpeg, size_t *len, char *err, size_t errlen)
{
	unsigned char *rgb, *out = NULL;
	unsigned long outlen = 0;
	tjhandle tj;
	int x, y, cx, cy, r, bx, by;

	*jpeg = NULL;
	*len = 0;
	if (w < 8 || h < 8 || w > 8192 || h > 8192) {
		snprintf(err, errlen, "frame size %dx%d is outside 8..8192", w, h);
		return -1;
	}
	rgb = malloc((size_t)w * (size_t)h * 3);
	if (!rgb) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* a "face" circle moving on a circle, a box sliding left to right */
	cx = w / 2 + (int)((double)(w / 4) * ((t % 60) < 30 ? (t % 30) / 15.0 - 1 : 1 - (t % 30) / 15.0));
	cy = h / 2;
	r = (w < h ? w : h) / 6;
	bx = (t * 7) % (w > 40 ? w - 40 : 1);
	by = h * 3 / 4;
	for (y = 0; y < h; y++) {
		for (x = 0; x < w; x++) {
			unsigned char *p = rgb + ((size_t)y * (size_t)w + (size_t)x) * 3;
			int dx = x - cx, dy = y - cy;
			p[0] = (unsigned char)(40 + x * 150 / w);
			p[1] = (unsigned char)(60 + y * 120 / h);
			p[2] = (unsigned char)(150 - x * 60 / w + ((x / 16 + y / 16) % 2) * 20);
			if (dx * dx + dy * dy < r * r) {
				p[0] = 230;
				p[1] = 180;
				p[2] = 150;
			}
			if (x >= bx && x < bx + 40 && y >= by && y < by + 40 && y < h) {
				p[0] = 30;
				p[1] = 200;
				p[2] = 90;
			}
		}
	}
	tj = tjInitCompress();
	if (!tj) {
		free(rgb);
		snprintf(err, errlen, "cannot start the JPEG encoder");
		return -1;
	}
	if (tjCompress2(tj, rgb, w, 0, h, TJPF_RGB, &out, &outlen, TJSAMP_420, 85,
		    TJFLAG_FASTDCT) != 0) {
		snprintf(err, errlen, "JPEG encoding failed: %s", tjGetErrorStr2(tj));
		tjDestroy(tj);
		free(rgb);
		return -1;
	}
	tjDestroy(tj);
	free(rgb);
	*jpeg = malloc(outlen);
	if (!*jpeg) {
		tjFree(out);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(*jpeg, out, outlen);
	*len = outlen;
	tjFree(out);
	return 0;
}

void cli_frame_header(uint8_t out[CLI_FRAME_HEADER], uint32_t id, double ts_ms)
{
	uint64_t bits;
	int i;

	memcpy(out, "HRF1", 4);
	for (i = 0; i < 4; i++)
		out[4 + i] = (uint8_t)(id >> (24 - 8 * i));
	memcpy(&bits, &ts_ms, 8);
	for (i = 0; i < 8; i++)
		out[8 + i] = (uint8_t)(bits >> (56 - 8 * i));
}

int cli_send_frame(struct ws_client *ws, uint8_t *buf, uint32_t id, double ts_ms,
	const uint8_t *jpeg, size_t len, char *err, size_t errlen)
{
	cli_frame_header(buf, id, ts_ms);
	memcpy(buf + CLI_FRAME_HEADER, jpeg, len);
	return ws_client_send(ws, WS_BINARY, buf, len + CLI_FRAME_HEADER, err, errlen);
}

bool cli_parse_frame_header(const uint8_t *p, size_t len, uint32_t *id, double *ts_ms)
{
	uint64_t bits = 0;
	int i;

	if (len < CLI_FRAME_HEADER || memcmp(p, "HRF1", 4) != 0)
		return false;
	*id = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
	for (i = 0; i < 8; i++)
		bits = bits << 8 | p[8 + i];
	memcpy(ts_ms, &bits, 8);
	return true;
}

/* ---- starting herud ---- */

static bool is_loopback(const char *host)
{
	return strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0 ||
	       strcmp(host, "::1") == 0 || strncmp(host, "127.", 4) == 0;
}

static bool health_ok(const struct ws_url *url, const char *token, int timeout_ms)
{
	char *body = NULL, err[256];
	int status = 0;

	if (ws_http_request(url, "GET", "/api/health", NULL, token, timeout_ms, &status, &body,
		    err, sizeof(err)) != 0)
		return false;
	free(body);
	return status == 200;
}

/* The herud to start: $HERUD, the one beside this program, or "herud" (PATH). */
static void herud_path(char out[PATH_MAX], size_t outlen)
{
	const char *env = getenv("HERUD");
	char self[PATH_MAX - 16];
	ssize_t n;

	if (env && *env) {
		snprintf(out, outlen, "%s", env);
		return;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		char *slash;
		self[n] = 0;
		slash = strrchr(self, '/');
		if (slash) {
			*slash = 0;
			snprintf(out, outlen, "%s/herud", self);
			if (access(out, X_OK) == 0)
				return;
			/* in a build tree the CLIs live in server/, herud at the top */
			snprintf(out, outlen, "%s/../herud", self);
			if (access(out, X_OK) == 0)
				return;
		}
	}
	snprintf(out, outlen, "herud");
}

int cli_ensure_server(const struct ws_url *url, const char *token, const char *plugin_dir,
	const char *config, bool verbose, pid_t *started, char *err, size_t errlen)
{
	char herud[PATH_MAX], listen_arg[300], logpath[128];
	const char *argv[12];
	int argc = 0, fd, status;
	double deadline;
	pid_t pid;

	*started = 0;
	if (health_ok(url, token, 2000))
		return 0;
	if (!is_loopback(url->host)) {
		snprintf(err, errlen, "no Heru server answers at http://%s:%s/api/health", url->host,
			url->port);
		return -1;
	}
	herud_path(herud, sizeof(herud));
	snprintf(listen_arg, sizeof(listen_arg), "%s%s%s:%s", strchr(url->host, ':') ? "[" : "",
		url->host, strchr(url->host, ':') ? "]" : "", url->port);
	snprintf(logpath, sizeof(logpath), "/tmp/heru-cli-herud-%d.log", (int)getpid());
	argv[argc++] = herud;
	argv[argc++] = "--listen";
	argv[argc++] = listen_arg;
	if (plugin_dir) {
		argv[argc++] = "--plugin-dir";
		argv[argc++] = plugin_dir;
	}
	if (config) {
		argv[argc++] = "--config";
		argv[argc++] = config;
	}
	if (token) {
		argv[argc++] = "--token";
		argv[argc++] = token;
	}
	argv[argc] = NULL;
	if (verbose)
		fprintf(stderr, "no server at http://%s:%s: starting %s (log: %s)\n", url->host,
			url->port, herud, logpath);
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	pid = fork();
	if (pid < 0) {
		if (fd >= 0)
			close(fd);
		snprintf(err, errlen, "cannot start herud: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], (char *const *)argv);
		fprintf(stderr, "cannot run '%s': %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (fd >= 0)
		close(fd);
	deadline = ws_now_ms() + 20000;
	while (ws_now_ms() < deadline) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			snprintf(err, errlen, "herud ('%s') exited at startup; see %s", herud, logpath);
			return -1;
		}
		if (health_ok(url, token, 1000)) {
			*started = pid;
			return 0;
		}
		usleep(100000);
	}
	cli_stop_server(pid);
	snprintf(err, errlen, "herud ('%s') did not answer within 20 s; see %s", herud, logpath);
	return -1;
}

void cli_stop_server(pid_t pid)
{
	int status, i;

	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (i = 0; i < 50; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return;
		usleep(100000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
}

/* ---- /proc ---- */

/* Inode of a socket listening on `port` in /proc/net/tcp or tcp6, or 0. */
static unsigned long listen_inode(const char *table, unsigned port)
{
	char line[512];
	FILE *f = fopen(table, "r");
	unsigned long inode = 0;

	if (!f)
		return 0;
	if (!fgets(line, sizeof(line), f)) { /* header */
		fclose(f);
		return 0;
	}
	while (fgets(line, sizeof(line), f)) {
		char local[128], remote[128];
		unsigned st, lport, uid;
		unsigned long ino;
		char *colon;

		if (sscanf(line, " %*d: %127s %127s %x %*s %*s %*s %u %*d %lu", local, remote, &st,
			    &uid, &ino) != 5)
			continue;
		colon = strrchr(local, ':');
		if (!colon || sscanf(colon + 1, "%x", &lport) != 1)
			continue;
		if (st == 0x0A && lport == port) {
			inode = ino;
			break;
		}
	}
	fclose(f);
	return inode;
}

pid_t cli_find_listener(const char *port)
{
	unsigned p = (unsigned)strtoul(port, NULL, 10);
	unsigned long inode = listen_inode("/proc/net/tcp", p);
	char want[64], path[600], link[64];
	struct dirent *de;
	pid_t found = 0;
	DIR *proc;

	if (!inode)
		inode = listen_inode("/proc/net/tcp6", p);
	if (!inode)
		return 0;
	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	proc = opendir("/proc");
	if (!proc)
		return 0;
	while (!found && (de = readdir(proc)) != NULL) {
		struct dirent *fe;
		DIR *fds;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/fd", de->d_name);
		fds = opendir(path);
		if (!fds)
			continue;
		while ((fe = readdir(fds)) != NULL) {
			ssize_t n;
			if (fe->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/%s/fd/%s", de->d_name, fe->d_name);
			n = readlink(path, link, sizeof(link) - 1);
			if (n <= 0)
				continue;
			link[n] = 0;
			if (strcmp(link, want) == 0) {
				found = (pid_t)strtol(de->d_name, NULL, 10);
				break;
			}
		}
		closedir(fds);
	}
	closedir(proc);
	return found;
}

double cli_proc_cpu_seconds(pid_t pid)
{
	char path[64], buf[2048], *p;
	unsigned long long ut, st;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	p = strrchr(buf, ')'); /* the command name may contain spaces */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
			  &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

long cli_proc_rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double cli_percentile(double *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}
