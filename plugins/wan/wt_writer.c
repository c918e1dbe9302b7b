/* wt_writer.c: the safetensors writer. Tensors are laid out in the order they were added,
 * back to back (as the format requires); the JSON header is padded with spaces to a multiple
 * of 8 bytes. Fill tensors are generated at save time in blocks, by a few threads, so a 28 GB
 * checkpoint streams to disk through a bounded buffer. The file is written under a temporary
 * name and renamed over the destination only when complete.
 *
 * DESIGN: wt_writer_save owns its worker threads for the duration of the call: the main
 * thread cuts the byte stream into buffer-sized windows, workers fill disjoint ranges of a
 * window, the main thread writes it, then the next window starts. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "wt_internal.h"

#define WINDOW_BYTES (64u << 20)
#define MAX_THREADS 16

struct wentry {
	char *name;            /* new */
	enum wt_dtype dtype;
	int ndim;
	int64_t shape[WT_MAX_DIMS];
	uint64_t nbytes, offset;
	void *data;            /* new copy, or NULL for a fill tensor */
	wt_fill_fn fill;
	void *ctx;             /* borrowed */
};

struct wt_writer {
	struct wentry *e;      /* new */
	size_t count, cap;
	json_t *meta;          /* new, NULL when none */
	int nthreads;
};

struct wt_writer *wt_writer_new(void)
{
	struct wt_writer *w = calloc(1, sizeof *w);
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (w)
		w->nthreads = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
	return w;
}

void wt_writer_set_threads(struct wt_writer *w, int nthreads)
{
	w->nthreads = nthreads < 1 ? 1 : nthreads > MAX_THREADS ? MAX_THREADS : nthreads;
}

void wt_writer_free(struct wt_writer *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->count; i++) {
		free(w->e[i].name);
		free(w->e[i].data);
	}
	free(w->e);
	json_decref(w->meta);
	free(w);
}

static struct wentry *add_entry(struct wt_writer *w, const char *name, enum wt_dtype dtype,
				int ndim, const int64_t *shape, char *err, size_t errlen)
{
	struct wentry *e;
	uint64_t n = 1;

	if (!name || !*name || strlen(name) > WT_MAX_NAME || !strcmp(name, "__metadata__")) {
		wt_seterr(err, errlen, "invalid tensor name '%s'", name ? name : "(null)");
		return NULL;
	}
	if (wt_dtype_size(dtype) == 0 || ndim < 0 || ndim > WT_MAX_DIMS) {
		wt_seterr(err, errlen, "tensor '%s': invalid dtype or rank", name);
		return NULL;
	}
	for (int i = 0; i < ndim; i++)
		if (shape[i] < 0 || !wt_mul_ok(n, (uint64_t)shape[i], &n)) {
			wt_seterr(err, errlen, "tensor '%s': invalid shape", name);
			return NULL;
		}
	if (!wt_mul_ok(n, wt_dtype_size(dtype), &n) || n > (uint64_t)SIZE_MAX / 2) {
		wt_seterr(err, errlen, "tensor '%s' is too large", name);
		return NULL;
	}
	for (size_t i = 0; i < w->count; i++)
		if (!strcmp(w->e[i].name, name)) {
			wt_seterr(err, errlen, "tensor '%s' was added twice", name);
			return NULL;
		}
	if (w->count == w->cap) {
		size_t ncap = w->cap ? 2 * w->cap : 64;
		struct wentry *ne = realloc(w->e, ncap * sizeof *ne);

		if (!ne)
			goto oom;
		w->e = ne;
		w->cap = ncap;
	}
	e = &w->e[w->count];
	memset(e, 0, sizeof *e);
	e->name = strdup(name);
	if (!e->name)
		goto oom;
	e->dtype = dtype;
	e->ndim = ndim;
	if (ndim)
		memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
	e->nbytes = n;
	return e;
oom:
	wt_seterr(err, errlen, "out of memory adding tensor '%s'", name);
	return NULL;
}

int wt_writer_add(struct wt_writer *w, const char *name, enum wt_dtype dtype, int ndim,
		  const int64_t *shape, const void *data, char *err, size_t errlen)
{
	struct wentry *e = add_entry(w, name, dtype, ndim, shape, err, errlen);

	if (!e)
		return -1;
	e->data = malloc(e->nbytes ? (size_t)e->nbytes : 1);
	if (!e->data) {
		free(e->name);
		wt_seterr(err, errlen, "out of memory adding tensor '%s'", name);
		return -1;
	}
	if (e->nbytes)
		memcpy(e->data, data, (size_t)e->nbytes);
	w->count++;
	return 0;
}

int wt_writer_add_fill(struct wt_writer *w, const char *name, enum wt_dtype dtype, int ndim,
		       const int64_t *shape, wt_fill_fn fill, void *ctx, char *err, size_t errlen)
{
	struct wentry *e = add_entry(w, name, dtype, ndim, shape, err, errlen);

	if (!e)
		return -1;
	e->fill = fill;
	e->ctx = ctx;
	w->count++;
	return 0;
}

int wt_writer_set_metadata(struct wt_writer *w, const char *key, const char *value,
			   char *err, size_t errlen)
{
	if (!w->meta && !(w->meta = json_object())) {
		wt_seterr(err, errlen, "out of memory");
		return -1;
	}
	if (json_object_set_new(w->meta, key, json_string(value)) < 0) {
		wt_seterr(err, errlen, "invalid metadata '%s' (keys and values must be UTF-8)", key);
		return -1;
	}
	return 0;
}

static char *build_header(struct wt_writer *w, size_t *len, char *err, size_t errlen)
{
	json_t *root = json_object();
	uint64_t off = 0;
	char *text = NULL, *padded = NULL;
	size_t n, plen;

	if (!root)
		goto oom;
	if (w->meta && json_object_set(root, "__metadata__", w->meta) < 0)
		goto oom;
	for (size_t i = 0; i < w->count; i++) {
		struct wentry *e = &w->e[i];
		json_t *shape = json_array(), *ent;

		if (!shape)
			goto oom;
		for (int d = 0; d < e->ndim; d++)
			json_array_append_new(shape, json_integer(e->shape[d]));
		e->offset = off;
		ent = json_pack("{s:s, s:o, s:[I,I]}", "dtype", wt_dtype_name(e->dtype), "shape", shape,
				"data_offsets", (json_int_t)off, (json_int_t)(off + e->nbytes));
		if (!ent || json_object_set_new(root, e->name, ent) < 0) {
			wt_seterr(err, errlen, "cannot encode tensor name '%s' (must be UTF-8)", e->name);
			json_decref(root);
			return NULL;
		}
		off += e->nbytes;
	}
	text = json_dumps(root, JSON_COMPACT);
	if (!text)
		goto oom;
	n = strlen(text);
	plen = (n + 7) & ~(size_t)7;
	padded = malloc(plen);
	if (!padded)
		goto oom;
	memcpy(padded, text, n);
	memset(padded + n, ' ', plen - n);
	*len = plen;
	free(text);
	json_decref(root);
	return padded;
oom:
	free(text);
	json_decref(root);
	wt_seterr(err, errlen, "out of memory building the safetensors header");
	return NULL;
}

static int write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n) {
		ssize_t k = write(fd, p, n > (1u << 30) ? (1u << 30) : n);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* One piece of work: fill elements [first, first+count) of entry E into DST. */
struct piece {
	const struct wentry *e;
	int64_t first, count;
	unsigned char *dst;
};

struct pool {
	struct piece *pieces;
	size_t npieces, next;
	int failed;  /* out of memory in a worker */
	pthread_mutex_t lock;
};

static void *worker(void *arg)
{
	struct pool *p = arg;
	void *scratch = NULL;
	size_t scratch_cap = 0, es;

	for (;;) {
		struct piece *pc;

		pthread_mutex_lock(&p->lock);
		pc = p->next < p->npieces ? &p->pieces[p->next++] : NULL;
		pthread_mutex_unlock(&p->lock);
		if (!pc) {
			free(scratch);
			return NULL;
		}
		es = wt_dtype_size(pc->e->dtype);
		if ((uintptr_t)pc->dst % es == 0) {
			pc->e->fill(pc->e->ctx, pc->first, pc->count, pc->dst);
			continue;
		}
		/* a tensor at an unaligned file offset: fill an aligned scratch, then copy */
		if (scratch_cap < (size_t)pc->count * es) {
			free(scratch);
			scratch_cap = (size_t)pc->count * es;
			scratch = malloc(scratch_cap);
			if (!scratch) {
				scratch_cap = 0;
				p->failed = 1;
				continue;
			}
		}
		pc->e->fill(pc->e->ctx, pc->first, pc->count, scratch);
		memcpy(pc->dst, scratch, (size_t)pc->count * es);
	}
}

/* Fills WINDOW with bytes [wbeg, wend) of the data block. Copied tensors are memcpy'd; fill
 * tensors are cut into pieces of whole elements (at most 1M each) handed to the threads; an
 * element straddling a window edge is generated alone into a scratch word. */
static int fill_window(struct wt_writer *w, unsigned char *window, uint64_t wbeg, uint64_t wend,
		       struct piece *pieces, size_t maxpieces)
{
	struct pool pool = { .pieces = pieces };
	pthread_t th[MAX_THREADS];
	int nth = 0;

	for (size_t i = 0; i < w->count; i++) {
		const struct wentry *e = &w->e[i];
		uint64_t b = e->offset, end = e->offset + e->nbytes, lo, hi;
		size_t es = wt_dtype_size(e->dtype);

		if (end <= wbeg || b >= wend || !e->nbytes)
			continue;
		lo = b > wbeg ? b : wbeg;
		hi = end < wend ? end : wend;
		if (e->data) {
			memcpy(window + (lo - wbeg), (const unsigned char *)e->data + (lo - b), hi - lo);
			continue;
		}
		{
			uint64_t first = (lo - b + es - 1) / es, last = (hi - b) / es;
			uint64_t step = (1u << 20);

			/* partial element at a window edge: generate it into a scratch word */
			if ((lo - b) % es) {
				unsigned char tmp[8];
				uint64_t el = (lo - b) / es, off = (lo - b) % es;
				uint64_t take = es - off < hi - lo ? es - off : hi - lo;

				e->fill(e->ctx, (int64_t)el, 1, tmp);
				memcpy(window + (lo - wbeg), tmp + off, take);
			}
			if ((hi - b) % es && (hi - b) / es >= first) {
				unsigned char tmp[8];
				uint64_t el = (hi - b) / es;
				uint64_t start = b + el * es;

				if (start >= lo) {
					e->fill(e->ctx, (int64_t)el, 1, tmp);
					memcpy(window + (start - wbeg), tmp, hi - start);
				}
			}
			for (uint64_t f0 = first; f0 < last; f0 += step) {
				uint64_t c = last - f0 < step ? last - f0 : step;

				if (pool.npieces == maxpieces)
					return -1;
				pieces[pool.npieces++] = (struct piece){
					e, (int64_t)f0, (int64_t)c, window + (b + f0 * es - wbeg) };
			}
		}
	}
	if (!pool.npieces)
		return 0;
	pthread_mutex_init(&pool.lock, NULL);
	for (nth = 0; nth < w->nthreads - 1 && (size_t)nth + 1 < pool.npieces; nth++)
		if (pthread_create(&th[nth], NULL, worker, &pool))
			break;
	worker(&pool);
	for (int i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&pool.lock);
	return pool.failed ? -2 : 0;
}

int wt_writer_save(struct wt_writer *w, const char *path, char *err, size_t errlen)
{
	char *header = NULL, *tmp = NULL;
	unsigned char *window = NULL, lenbuf[8];
	struct piece *pieces = NULL;
	size_t hlen = 0, maxpieces;
	uint64_t total = 0;
	int fd = -1, rc = -1;

	header = build_header(w, &hlen, err, errlen);
	if (!header)
		return -1;
	for (size_t i = 0; i < w->count; i++)
		total += w->e[i].nbytes;
	tmp = malloc(strlen(path) + 32);
	window = malloc(WINDOW_BYTES);
	/* pieces per window: at most one per 1M elements per tensor, plus one per tensor */
	maxpieces = w->count + (WINDOW_BYTES >> 20) + 16;
	pieces = malloc(maxpieces * sizeof *pieces);
	if (!tmp || !window || !pieces) {
		wt_seterr(err, errlen, "out of memory saving '%s'", path);
		goto done;
	}
	sprintf(tmp, "%s.tmp%ld", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		wt_seterr(err, errlen, "cannot create '%s': %s", tmp, strerror(errno));
		goto done;
	}
	for (int i = 0; i < 8; i++)
		lenbuf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
	if (write_all(fd, lenbuf, 8) < 0 || write_all(fd, header, hlen) < 0)
		goto ioerr;
	for (uint64_t wb = 0; wb < total; wb += WINDOW_BYTES) {
		uint64_t we = total - wb < WINDOW_BYTES ? total : wb + WINDOW_BYTES;

		int fr = fill_window(w, window, wb, we, pieces, maxpieces);

		if (fr < 0) {
			wt_seterr(err, errlen, "%s saving '%s'", fr == -2 ? "out of memory" :
				  "internal error: too many pieces", path);
			goto done;
		}
		if (write_all(fd, window, (size_t)(we - wb)) < 0)
			goto ioerr;
	}
	if (fsync(fd) < 0 && errno != EINVAL)
		goto ioerr;
	if (close(fd) < 0) {
		fd = -1;
		goto ioerr;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		wt_seterr(err, errlen, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
		goto done;
	}
	rc = 0;
	goto done;
ioerr:
	wt_seterr(err, errlen, "cannot write '%s': %s", tmp, strerror(errno));
done:
	if (fd >= 0)
		close(fd);
	if (rc && tmp)
		unlink(tmp);
	free(pieces);
	free(window);
	free(tmp);
	free(header);
	return rc;
}
