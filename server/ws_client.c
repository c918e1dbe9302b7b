/*
 * ws_client.c: blocking HTTP/1.1 and WebSocket client (RFC 6455, client side).
 *
 * DESIGN
 *
 * The CLIs need a client that behaves like a browser on the wire: masked frames, a
 * verified Sec-WebSocket-Accept, pings answered, fragmented messages reassembled,
 * close handshake. Everything is blocking on one socket with poll() timeouts, so a
 * caller owns one ws_client per thread and never needs an event loop. Sizes from the
 * server are bounded (headers 64 KiB, messages WS_CLIENT_MAX_MESSAGE).
 */
#include "config.h"

#include "ws_client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEADER_MAX 65536
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct ws_client {
	int fd;
	bool closed;          /* close frame received or connection failed */
	bool sent_close;
	uint8_t *buf;         /* new: bytes read, not yet consumed */
	size_t len, cap, off; /* valid bytes are buf[off..len) */
	uint8_t *msg;         /* new: the message being assembled */
	size_t msg_len, msg_cap;
	enum ws_opcode msg_op;
	bool in_fragment;
	uint64_t rng;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

double ws_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

double ws_epoch_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- URL ---- */

int ws_url_parse(const char *url, struct ws_url *out, char *err, size_t errlen)
{
	const char *p = url, *host_end, *path;
	size_t hlen;

	memset(out, 0, sizeof(*out));
	if (!url || !*url) {
		seterr(err, errlen, "empty URL");
		return -1;
	}
	if (strncmp(p, "http://", 7) == 0)
		p += 7;
	else if (strncmp(p, "ws://", 5) == 0)
		p += 5;
	else if (strstr(p, "://")) {
		seterr(err, errlen, "unsupported URL '%s' (use http://HOST:PORT)", url);
		return -1;
	}
	path = strchr(p, '/');
	if (!path)
		path = p + strlen(p);
	if (*p == '[') { /* [v6]:port */
		host_end = memchr(p, ']', (size_t)(path - p));
		if (!host_end) {
			seterr(err, errlen, "bad IPv6 address in URL '%s'", url);
			return -1;
		}
		hlen = (size_t)(host_end - p - 1);
		if (hlen >= sizeof(out->host))
			goto too_long;
		memcpy(out->host, p + 1, hlen);
		p = host_end + 1;
	} else {
		host_end = memchr(p, ':', (size_t)(path - p));
		if (!host_end)
			host_end = path;
		hlen = (size_t)(host_end - p);
		if (hlen >= sizeof(out->host))
			goto too_long;
		memcpy(out->host, p, hlen);
		p = host_end;
	}
	if (!out->host[0]) {
		seterr(err, errlen, "no host in URL '%s'", url);
		return -1;
	}
	if (*p == ':') {
		size_t plen = (size_t)(path - p - 1);
		if (plen == 0 || plen >= sizeof(out->port) || strspn(p + 1, "0123456789") < plen) {
			seterr(err, errlen, "bad port in URL '%s'", url);
			return -1;
		}
		memcpy(out->port, p + 1, plen);
	} else {
		snprintf(out->port, sizeof(out->port), "80");
	}
	if (strlen(path) >= sizeof(out->path))
		goto too_long;
	snprintf(out->path, sizeof(out->path), "%s", *path ? path : "/");
	return 0;

too_long:
	seterr(err, errlen, "URL '%.64s...' is too long", url);
	return -1;
}

/* ---- sockets ---- */

static int dial(const struct ws_url *url, int timeout_ms, char *err, size_t errlen)
{
	struct addrinfo hints = { 0 }, *res = NULL, *ai;
	int fd = -1, rc, one = 1;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(url->host, url->port, &hints, &res);
	if (rc != 0) {
		seterr(err, errlen, "cannot resolve '%s': %s", url->host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		struct pollfd pfd;
		int soerr = 0;
		socklen_t sl = sizeof(soerr);

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			ai->ai_protocol);
		if (fd < 0)
			continue;
		rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
		if (rc != 0 && errno == EINPROGRESS) {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			rc = poll(&pfd, 1, timeout_ms) == 1 &&
				getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0
				? 0 : -1;
			if (rc != 0)
				errno = soerr ? soerr : ETIMEDOUT;
		}
		if (rc == 0) {
			/* back to blocking; every read and write below polls first */
			fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			break;
		}
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		seterr(err, errlen, "cannot connect to %s:%s: %s", url->host, url->port,
			strerror(errno));
	freeaddrinfo(res);
	return fd;
}

static int write_all(int fd, const void *data, size_t len, int timeout_ms, char *err,
	size_t errlen)
{
	const uint8_t *p = data;

	while (len > 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		ssize_t n;

		if (poll(&pfd, 1, timeout_ms) != 1) {
			seterr(err, errlen, "timed out sending to the server");
			return -1;
		}
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			seterr(err, errlen, "send failed: %s", strerror(errno));
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read what is available (waiting up to timeout_ms) into buf. 1 bytes read, 0 timeout,
 * -1 error or EOF. */
static int fill(struct ws_client *c, int timeout_ms, char *err, size_t errlen)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	ssize_t n;
	int rc;

	if (c->off > 0 && c->off == c->len)
		c->off = c->len = 0;
	if (c->len + 65536 > c->cap) {
		size_t live = c->len - c->off;
		if (c->off > 0) {
			memmove(c->buf, c->buf + c->off, live);
			c->len = live;
			c->off = 0;
		}
		if (c->len + 65536 > c->cap) {
			size_t ncap = c->cap ? c->cap * 2 : 131072;
			uint8_t *nb;
			if (ncap > WS_CLIENT_MAX_MESSAGE + 131072u) {
				seterr(err, errlen, "the server sent an oversized message");
				return -1;
			}
			nb = realloc(c->buf, ncap);
			if (!nb) {
				seterr(err, errlen, "out of memory");
				return -1;
			}
			c->buf = nb;
			c->cap = ncap;
		}
	}
	rc = poll(&pfd, 1, timeout_ms);
	if (rc == 0)
		return 0;
	if (rc < 0) {
		if (errno == EINTR)
			return 0;
		seterr(err, errlen, "poll failed: %s", strerror(errno));
		return -1;
	}
	n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n == 0) {
		seterr(err, errlen, "the server closed the connection");
		return -1;
	}
	if (n < 0) {
		seterr(err, errlen, "receive failed: %s", strerror(errno));
		return -1;
	}
	c->len += (size_t)n;
	return 1;
}

/* ---- SHA-1 and base64 (for the handshake) ---- */

static uint32_t rol(uint32_t v, int s)
{
	return (v << s) | (v >> (32 - s));
}

static void sha1(const uint8_t *data, size_t len, uint8_t out[20])
{
	uint32_t h[5] = { 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0 };
	size_t total = ((len + 8) / 64 + 1) * 64, i;
	uint8_t block[64];

	for (size_t b = 0; b < total; b += 64) {
		uint32_t w[80], a, bb, cc, d, e, f, k, t;
		for (i = 0; i < 64; i++) {
			size_t j = b + i;
			if (j < len)
				block[i] = data[j];
			else if (j == len)
				block[i] = 0x80;
			else if (j >= total - 8)
				block[i] = (uint8_t)(((uint64_t)len * 8) >> (8 * (total - 1 - j)));
			else
				block[i] = 0;
		}
		for (i = 0; i < 16; i++)
			w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 |
			       (uint32_t)block[4 * i + 2] << 8 | block[4 * i + 3];
		for (i = 16; i < 80; i++)
			w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
		a = h[0]; bb = h[1]; cc = h[2]; d = h[3]; e = h[4];
		for (i = 0; i < 80; i++) {
			if (i < 20) {
				f = (bb & cc) | (~bb & d);
				k = 0x5A827999;
			} else if (i < 40) {
				f = bb ^ cc ^ d;
				k = 0x6ED9EBA1;
			} else if (i < 60) {
				f = (bb & cc) | (bb & d) | (cc & d);
				k = 0x8F1BBCDC;
			} else {
				f = bb ^ cc ^ d;
				k = 0xCA62C1D6;
			}
			t = rol(a, 5) + f + e + k + w[i];
			e = d; d = cc; cc = rol(bb, 30); bb = a; a = t;
		}
		h[0] += a; h[1] += bb; h[2] += cc; h[3] += d; h[4] += e;
	}
	for (i = 0; i < 5; i++) {
		out[4 * i] = (uint8_t)(h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(h[i] >> 8);
		out[4 * i + 3] = (uint8_t)h[i];
	}
}

static void base64(const uint8_t *in, size_t len, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0;

	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = tab[v >> 18];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = tab[(v >> 6) & 63];
		out[o++] = tab[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
		out[o++] = tab[v >> 18];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = 0;
}

void ws_accept_key(const char *key, char out[29])
{
	char cat[256];
	uint8_t digest[20];

	snprintf(cat, sizeof(cat), "%.200s%s", key, WS_GUID);
	sha1((const uint8_t *)cat, strlen(cat), digest);
	base64(digest, 20, out);
}

static uint64_t seed_rng(void)
{
	uint64_t s = 0;
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (read(fd, &s, sizeof(s)) != (ssize_t)sizeof(s))
			s = 0;
		close(fd);
	}
	return s ^ (uint64_t)(ws_now_ms() * 1000.0) ^ ((uint64_t)getpid() << 32) ^
	       0x9e3779b97f4a7c15ull;
}

static uint32_t next_rand(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return (uint32_t)(x >> 16);
}

/* ---- HTTP ---- */

/* Read an HTTP response head into c->buf; returns the head length (through the blank
 * line) or -1. */
static long read_head(struct ws_client *c, int timeout_ms, char *err, size_t errlen)
{
	double deadline = ws_now_ms() + timeout_ms;

	for (;;) {
		uint8_t *end = NULL;
		if (c->len >= 4) {
			for (size_t i = 0; i + 3 < c->len; i++)
				if (memcmp(c->buf + i, "\r\n\r\n", 4) == 0) {
					end = c->buf + i + 4;
					break;
				}
		}
		if (end)
			return (long)(end - c->buf);
		if (c->len > HEADER_MAX) {
			seterr(err, errlen, "the server sent over %d bytes of headers", HEADER_MAX);
			return -1;
		}
		int left = (int)(deadline - ws_now_ms());
		if (left <= 0) {
			seterr(err, errlen, "timed out waiting for the server's answer");
			return -1;
		}
		if (fill(c, left, err, errlen) < 0)
			return -1;
	}
}

/* Value of header `name` in the head (NUL-terminated copy into out), or false. */
static bool header_value(const char *head, const char *name, char *out, size_t outlen)
{
	size_t nlen = strlen(name);
	const char *p = strstr(head, "\r\n");

	while (p && p[2] != '\r') {
		const char *line = p + 2, *eol = strstr(line, "\r\n");
		if (!eol)
			break;
		if ((size_t)(eol - line) > nlen && strncasecmp(line, name, nlen) == 0 &&
		    line[nlen] == ':') {
			const char *v = line + nlen + 1;
			size_t vl;
			while (*v == ' ' || *v == '\t')
				v++;
			vl = (size_t)(eol - v);
			while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
				vl--;
			if (vl >= outlen)
				vl = outlen - 1;
			memcpy(out, v, vl);
			out[vl] = 0;
			return true;
		}
		p = eol;
	}
	return false;
}

static int parse_status(const char *head)
{
	int major, minor, status;
	if (sscanf(head, "HTTP/%d.%d %d", &major, &minor, &status) != 3)
		return -1;
	return status;
}

static void client_free(struct ws_client *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	free(c->msg);
	free(c);
}

static struct ws_client *client_new(int fd)
{
	struct ws_client *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return NULL;
	}
	c->fd = fd;
	c->rng = seed_rng();
	return c;
}

int ws_http_request(const struct ws_url *url, const char *method, const char *path,
	const char *body, const char *token, int timeout_ms, int *status, char **resp,
	char *err, size_t errlen)
{
	char req[4096], clen[64], te[64];
	struct ws_client *c = NULL;
	size_t blen = body ? strlen(body) : 0, want;
	double deadline = ws_now_ms() + timeout_ms;
	long head;
	int fd, n;

	*resp = NULL;
	fd = dial(url, timeout_ms, err, errlen);
	if (fd < 0)
		return -1;
	c = client_new(fd);
	if (!c) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	n = snprintf(req, sizeof(req),
		"%s %s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\nAccept: application/json\r\n"
		"%s%s%s%s%zu\r\n\r\n", method, path, url->host, url->port,
		token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "",
		body ? "Content-Type: application/json\r\nContent-Length: " : "Content-Length: ",
		blen);
	if (n < 0 || (size_t)n >= sizeof(req)) {
		seterr(err, errlen, "request path is too long");
		goto fail;
	}
	if (write_all(fd, req, (size_t)n, timeout_ms, err, errlen) != 0 ||
	    (blen && write_all(fd, body, blen, timeout_ms, err, errlen) != 0))
		goto fail;
	head = read_head(c, timeout_ms, err, errlen);
	if (head < 0)
		goto fail;
	c->buf[head - 1] = 0; /* terminate the head (the last '\n') for string parsing */
	*status = parse_status((const char *)c->buf);
	if (*status < 100) {
		seterr(err, errlen, "the server answered something that is not HTTP");
		goto fail;
	}
	if (header_value((const char *)c->buf, "Transfer-Encoding", te, sizeof(te)) &&
	    strcasecmp(te, "identity") != 0) {
		seterr(err, errlen, "chunked HTTP answers are not supported by this client");
		goto fail;
	}
	want = (size_t)-1;
	if (header_value((const char *)c->buf, "Content-Length", clen, sizeof(clen)))
		want = (size_t)strtoull(clen, NULL, 10);
	if (want != (size_t)-1 && want > WS_CLIENT_MAX_MESSAGE) {
		seterr(err, errlen, "the server's answer is too large (%zu bytes)", want);
		goto fail;
	}
	c->off = (size_t)head;
	while (want == (size_t)-1 || c->len - c->off < want) {
		int left = (int)(deadline - ws_now_ms()), rc;
		if (left <= 0) {
			seterr(err, errlen, "timed out reading the server's answer");
			goto fail;
		}
		rc = fill(c, left, err, errlen);
		if (rc < 0) {
			if (want == (size_t)-1)
				break; /* body ends at EOF */
			goto fail;
		}
	}
	if (want == (size_t)-1)
		want = c->len - c->off;
	*resp = malloc(want + 1);
	if (!*resp) {
		seterr(err, errlen, "out of memory");
		goto fail;
	}
	memcpy(*resp, c->buf + c->off, want);
	(*resp)[want] = 0;
	client_free(c);
	return 0;

fail:
	client_free(c);
	return -1;
}

/* ---- WebSocket ---- */

struct ws_client *ws_client_connect(const struct ws_url *url, const char *path,
	const char *token, int timeout_ms, char *err, size_t errlen)
{
	char req[4096], key[32], expect[32], accept[128];
	uint8_t raw[16];
	struct ws_client *c;
	long head;
	int fd, n, status, i;

	fd = dial(url, timeout_ms, err, errlen);
	if (fd < 0)
		return NULL;
	c = client_new(fd);
	if (!c) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	for (i = 0; i < 16; i++)
		raw[i] = (uint8_t)next_rand(&c->rng);
	base64(raw, 16, key);
	n = snprintf(req, sizeof(req),
		"GET %s%s%s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
		"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
		"Origin: http://%s:%s\r\n%s%s%s\r\n",
		path, token ? (strchr(path, '?') ? "&token=" : "?token=") : "", token ? token : "",
		url->host, url->port, key, url->host, url->port,
		token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(req)) {
		seterr(err, errlen, "WebSocket path is too long");
		goto fail;
	}
	if (write_all(fd, req, (size_t)n, timeout_ms, err, errlen) != 0)
		goto fail;
	head = read_head(c, timeout_ms, err, errlen);
	if (head < 0)
		goto fail;
	c->buf[head - 1] = 0;
	status = parse_status((const char *)c->buf);
	if (status != 101) {
		const char *body = (const char *)c->buf + head;
		size_t blen = c->len - (size_t)head;
		seterr(err, errlen, "the server refused the WebSocket upgrade of '%s' with HTTP %d%s%.*s",
			path, status, blen ? ": " : "", (int)(blen > 200 ? 200 : blen), body);
		goto fail;
	}
	ws_accept_key(key, expect);
	if (!header_value((const char *)c->buf, "Sec-WebSocket-Accept", accept, sizeof(accept)) ||
	    strcmp(accept, expect) != 0) {
		seterr(err, errlen, "the server's Sec-WebSocket-Accept is missing or wrong");
		goto fail;
	}
	c->off = (size_t)head; /* frames may already follow the head */
	return c;

fail:
	client_free(c);
	return NULL;
}

int ws_client_send(struct ws_client *c, enum ws_opcode opcode, const void *data, size_t len,
	char *err, size_t errlen)
{
	uint8_t hdr[14], mask[4], chunk[16384];
	const uint8_t *p = data;
	size_t h = 0, i, done;
	uint32_t m;

	if (c->closed || c->sent_close) {
		seterr(err, errlen, "the WebSocket is closed");
		return -1;
	}
	hdr[h++] = (uint8_t)(0x80 | opcode);
	if (len < 126) {
		hdr[h++] = (uint8_t)(0x80 | len);
	} else if (len <= 0xffff) {
		hdr[h++] = 0x80 | 126;
		hdr[h++] = (uint8_t)(len >> 8);
		hdr[h++] = (uint8_t)len;
	} else {
		hdr[h++] = 0x80 | 127;
		for (i = 0; i < 8; i++)
			hdr[h++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
	}
	m = next_rand(&c->rng);
	memcpy(mask, &m, 4);
	memcpy(hdr + h, mask, 4);
	h += 4;
	if (write_all(c->fd, hdr, h, 10000, err, errlen) != 0)
		goto broken;
	for (done = 0; done < len;) {
		size_t n = len - done < sizeof(chunk) ? len - done : sizeof(chunk);
		for (i = 0; i < n; i++)
			chunk[i] = p[done + i] ^ mask[(done + i) & 3];
		if (write_all(c->fd, chunk, n, 10000, err, errlen) != 0)
			goto broken;
		done += n;
	}
	if (opcode == WS_CLOSE)
		c->sent_close = true;
	return 0;

broken:
	c->closed = true;
	return -1;
}

/* Parse one frame at buf[off..len). 1 parsed (fields out), 0 need more, -1 protocol error. */
static int parse_frame(struct ws_client *c, bool *fin, int *op, const uint8_t **payload,
	size_t *plen, size_t *consumed, char *err, size_t errlen)
{
	const uint8_t *b = c->buf + c->off;
	size_t avail = c->len - c->off, h = 2;
	uint64_t n;

	if (avail < 2)
		return 0;
	*fin = (b[0] & 0x80) != 0;
	*op = b[0] & 0x0f;
	if (b[0] & 0x70) {
		seterr(err, errlen, "the server set reserved WebSocket bits");
		return -1;
	}
	if (b[1] & 0x80) {
		seterr(err, errlen, "the server sent a masked frame");
		return -1;
	}
	n = b[1] & 0x7f;
	if (n == 126) {
		if (avail < 4)
			return 0;
		n = (uint64_t)b[2] << 8 | b[3];
		h = 4;
	} else if (n == 127) {
		if (avail < 10)
			return 0;
		n = 0;
		for (int i = 0; i < 8; i++)
			n = n << 8 | b[2 + i];
		h = 10;
	}
	if (n > WS_CLIENT_MAX_MESSAGE) {
		seterr(err, errlen, "the server sent a %llu-byte frame", (unsigned long long)n);
		return -1;
	}
	if (avail < h + n)
		return 0;
	*payload = b + h;
	*plen = (size_t)n;
	*consumed = h + (size_t)n;
	return 1;
}

static int append_msg(struct ws_client *c, const uint8_t *p, size_t n, char *err, size_t errlen)
{
	if (c->msg_len + n > WS_CLIENT_MAX_MESSAGE) {
		seterr(err, errlen, "the server sent an oversized message");
		return -1;
	}
	if (c->msg_len + n > c->msg_cap) {
		size_t ncap = (c->msg_len + n) * 2;
		uint8_t *nm = realloc(c->msg, ncap);
		if (!nm) {
			seterr(err, errlen, "out of memory");
			return -1;
		}
		c->msg = nm;
		c->msg_cap = ncap;
	}
	memcpy(c->msg + c->msg_len, p, n);
	c->msg_len += n;
	return 0;
}

int ws_client_recv(struct ws_client *c, int timeout_ms, struct ws_message *msg, char *err,
	size_t errlen)
{
	double deadline = ws_now_ms() + timeout_ms;

	if (c->closed) {
		seterr(err, errlen, "the WebSocket is closed");
		return -1;
	}
	for (;;) {
		const uint8_t *payload;
		size_t plen, consumed;
		bool fin;
		int op, rc, left;

		rc = parse_frame(c, &fin, &op, &payload, &plen, &consumed, err, errlen);
		if (rc < 0)
			goto broken;
		if (rc == 1) {
			c->off += consumed;
			if (op == 9) { /* ping -> pong */
				uint8_t copy[125];
				size_t n = plen > sizeof(copy) ? sizeof(copy) : plen;
				memcpy(copy, payload, n);
				if (ws_client_send(c, 10, copy, n, err, errlen) != 0)
					goto broken;
				continue;
			}
			if (op == 10)
				continue;
			if (op == WS_CLOSE) {
				uint16_t code = plen >= 2 ? (uint16_t)(payload[0] << 8 | payload[1]) : 1005;
				if (!c->sent_close) {
					uint8_t body[2] = { (uint8_t)(code >> 8), (uint8_t)code };
					if (code == 1005)
						ws_client_send(c, WS_CLOSE, NULL, 0, NULL, 0);
					else
						ws_client_send(c, WS_CLOSE, body, 2, NULL, 0);
				}
				c->msg_len = 0;
				if (plen > 2 && append_msg(c, payload + 2, plen - 2, err, errlen) != 0)
					goto broken;
				c->closed = true;
				msg->opcode = WS_CLOSE;
				msg->data = c->msg;
				msg->len = c->msg_len;
				msg->close_code = code;
				return 1;
			}
			if (op == 1 || op == 2) {
				if (c->in_fragment) {
					seterr(err, errlen, "the server started a message inside another");
					goto broken;
				}
				c->msg_len = 0;
				c->msg_op = (enum ws_opcode)op;
				c->in_fragment = true;
			} else if (op != 0 || !c->in_fragment) {
				seterr(err, errlen, "the server sent WebSocket opcode %d out of place", op);
				goto broken;
			}
			if (append_msg(c, payload, plen, err, errlen) != 0)
				goto broken;
			if (fin) {
				c->in_fragment = false;
				msg->opcode = c->msg_op;
				msg->data = c->msg;
				msg->len = c->msg_len;
				msg->close_code = 0;
				return 1;
			}
			continue;
		}
		left = (int)(deadline - ws_now_ms());
		if (left <= 0)
			return 0;
		rc = fill(c, left, err, errlen);
		if (rc < 0)
			goto broken;
	}

broken:
	c->closed = true;
	return -1;
}

void ws_client_close(struct ws_client *c, uint16_t code)
{
	struct ws_message m;
	double deadline;

	if (!c)
		return;
	if (!c->closed && !c->sent_close) {
		uint8_t body[2] = { (uint8_t)(code >> 8), (uint8_t)code };
		if (ws_client_send(c, WS_CLOSE, body, 2, NULL, 0) == 0) {
			deadline = ws_now_ms() + 1000;
			while (!c->closed && ws_now_ms() < deadline) {
				int left = (int)(deadline - ws_now_ms());
				if (ws_client_recv(c, left > 0 ? left : 1, &m, NULL, 0) != 1)
					break;
			}
		}
	}
	client_free(c);
}
