/* wt_torchzip.c: torch.save checkpoints (PyTorch >= 1.6 zip format): a zip reader with zip64
 * (end of central directory, zip64 locator and record, zip64 extra fields) over the mmapped
 * file. torch writes every entry stored (uncompressed, data aligned to 64 bytes); compressed
 * entries are refused. The archive holds PREFIX/data.pkl (the pickled object, read by
 * wt_unpickle.c) and one PREFIX/data/KEY entry per storage. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wt_internal.h"

struct wt_zentry {
	const char *name;      /* borrowed from the mapping (not NUL-terminated) */
	size_t namelen;
	uint64_t data_off;     /* start of the entry's bytes in the file */
	uint64_t size;         /* uncompressed size */
	uint64_t csize;
	int method;            /* 0 = stored */
	int encrypted;
};

struct wt_zip {
	const char *path;      /* borrowed */
	const uint8_t *base;   /* borrowed mapping */
	uint64_t size;
	struct wt_zentry *e;   /* new, sorted by name */
	size_t n;
};

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct wt_zentry *x = a, *y = b;
	size_t n = x->namelen < y->namelen ? x->namelen : y->namelen;
	int c = memcmp(x->name, y->name, n);

	if (c)
		return c;
	return x->namelen < y->namelen ? -1 : x->namelen > y->namelen;
}

static const struct wt_zentry *zfind(const struct wt_zip *z, const char *name)
{
	struct wt_zentry key = { .name = name, .namelen = strlen(name) };

	return bsearch(&key, z->e, z->n, sizeof *z->e, cmp_entry);
}

int wt_zip_entry(const struct wt_zip *z, const char *name, const uint8_t **data, size_t *size)
{
	const struct wt_zentry *e = zfind(z, name);

	if (!e)
		return -1;
	if (e->method != 0 || e->encrypted || e->csize != e->size)
		return -2;
	*data = z->base + e->data_off;
	*size = (size_t)e->size;
	return 0;
}

/* Reads the zip64 extra field (id 1) of a central directory entry: each of uncompressed
 * size, compressed size, local header offset is present only when its 32-bit field is
 * 0xffffffff, in that order. */
static int zip64_extra(const uint8_t *x, size_t xlen, uint64_t *usize, uint64_t *csize,
		       uint64_t *lho, int need_u, int need_c, int need_o)
{
	while (xlen >= 4) {
		uint16_t id = rd16(x), len = rd16(x + 2);
		const uint8_t *p = x + 4;
		size_t k = 0;

		if ((size_t)len + 4 > xlen)
			return -1;
		if (id == 1) {
			if (need_u) {
				if (k + 8 > len)
					return -1;
				*usize = rd64(p + k);
				k += 8;
			}
			if (need_c) {
				if (k + 8 > len)
					return -1;
				*csize = rd64(p + k);
				k += 8;
			}
			if (need_o) {
				if (k + 8 > len)
					return -1;
				*lho = rd64(p + k);
			}
			return 0;
		}
		x += 4 + len;
		xlen -= 4 + (size_t)len;
	}
	return need_u || need_c || need_o ? -1 : 0;
}

static int zip_open(struct wt_zip *z, char *err, size_t errlen)
{
	const uint8_t *b = z->base;
	uint64_t size = z->size, eocd = 0, cd_off, cd_size, count, pos;
	int found = 0;

	if (size < 22)
		goto trunc;
	/* end of central directory: 22 bytes plus a comment of at most 65535 */
	for (uint64_t i = size - 22 + 1; i-- > 0 && size - i <= 22 + 65535;) {
		if (rd32(b + i) == 0x06054b50 && i + 22 + rd16(b + i + 20) == size) {
			eocd = i;
			found = 1;
			break;
		}
	}
	if (!found)
		goto trunc;
	count = rd16(b + eocd + 10);
	cd_size = rd32(b + eocd + 12);
	cd_off = rd32(b + eocd + 16);
	if (rd16(b + eocd + 4) != 0 || rd16(b + eocd + 6) != 0) {
		wt_seterr(err, errlen, "'%s': multi-disk zip archives are not supported", z->path);
		return -1;
	}
	if (count == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu) {
		uint64_t z64;

		if (eocd < 20 || rd32(b + eocd - 20) != 0x07064b50)
			goto corrupt;
		z64 = rd64(b + eocd - 20 + 8);
		if (z64 > size - 56 || rd32(b + z64) != 0x06064b50)
			goto corrupt;
		count = rd64(b + z64 + 32);
		cd_size = rd64(b + z64 + 40);
		cd_off = rd64(b + z64 + 48);
	}
	if (cd_off > size || cd_size > size - cd_off || count > cd_size / 46 ||
	    count > 2 * (uint64_t)WT_MAX_TENSORS + 64)
		goto corrupt;
	z->e = calloc(count ? (size_t)count : 1, sizeof *z->e);
	if (!z->e) {
		wt_seterr(err, errlen, "'%s': out of memory", z->path);
		return -1;
	}
	pos = cd_off;
	for (uint64_t i = 0; i < count; i++) {
		const uint8_t *c = b + pos;
		struct wt_zentry *e = &z->e[i];
		uint64_t usize, csize, lho, nl, xl, cl, lh_n, lh_x, end;

		if (cd_off + cd_size - pos < 46 || rd32(c) != 0x02014b50)
			goto corrupt;
		nl = rd16(c + 28);
		xl = rd16(c + 30);
		cl = rd16(c + 32);
		if (46 + nl + xl + cl > cd_off + cd_size - pos)
			goto corrupt;
		usize = rd32(c + 24);
		csize = rd32(c + 20);
		lho = rd32(c + 42);
		if (zip64_extra(c + 46 + nl, (size_t)xl, &usize, &csize, &lho, usize == 0xffffffffu,
				csize == 0xffffffffu, lho == 0xffffffffu) < 0)
			goto corrupt;
		e->name = (const char *)c + 46;
		e->namelen = (size_t)nl;
		e->method = rd16(c + 10);
		e->encrypted = rd16(c + 8) & 1;
		e->size = usize;
		e->csize = csize;
		/* local header: 30 bytes + its own name and extra lengths */
		if (lho > size || size - lho < 30 || rd32(b + lho) != 0x04034b50)
			goto corrupt;
		lh_n = rd16(b + lho + 26);
		lh_x = rd16(b + lho + 28);
		e->data_off = lho + 30 + lh_n + lh_x;
		if (!wt_add_ok(e->data_off, csize, &end) || end > size) {
			wt_seterr(err, errlen, "'%s': zip entry '%.*s' extends past the end of the file: "
				  "truncated or corrupt", z->path, (int)(nl > 200 ? 200 : nl), e->name);
			return -1;
		}
		pos += 46 + nl + xl + cl;
		z->n++;
	}
	qsort(z->e, z->n, sizeof *z->e, cmp_entry);
	return 0;
trunc:
	wt_seterr(err, errlen, "'%s' is a truncated or corrupt zip (torch.save) file: no end of "
		  "central directory", z->path);
	return -1;
corrupt:
	wt_seterr(err, errlen, "'%s' is a corrupt zip (torch.save) file: bad central directory",
		  z->path);
	return -1;
}

int wt_load_torchzip(struct wt_file *f, char *err, size_t errlen)
{
	struct wt_zip z = { .path = f->path, .base = f->map, .size = f->map_size };
	const struct wt_zentry *pkl = NULL;
	const uint8_t *data;
	char prefix[256], name[300];
	size_t size;
	int rc = -1, r;

	if (zip_open(&z, err, errlen) < 0)
		goto done;
	for (size_t i = 0; i < z.n; i++) {
		const struct wt_zentry *e = &z.e[i];
		const char *slash = memchr(e->name, '/', e->namelen);

		if (slash && (size_t)(slash - e->name) + 1 + 8 == e->namelen &&
		    !memcmp(slash + 1, "data.pkl", 8)) {
			if (pkl) {
				wt_seterr(err, errlen, "'%s' holds several data.pkl records", f->path);
				goto done;
			}
			pkl = e;
		}
	}
	if (!pkl) {
		wt_seterr(err, errlen, "'%s' is a zip file but not a torch.save checkpoint (no "
			  "PREFIX/data.pkl)", f->path);
		goto done;
	}
	if (pkl->namelen - 9 >= sizeof prefix) {
		wt_seterr(err, errlen, "'%s': archive name is too long", f->path);
		goto done;
	}
	memcpy(prefix, pkl->name, pkl->namelen - 9);
	prefix[pkl->namelen - 9] = 0;
	snprintf(name, sizeof name, "%s/byteorder", prefix);
	if (!wt_zip_entry(&z, name, &data, &size) && size >= 3 && !memcmp(data, "big", 3)) {
		wt_seterr(err, errlen, "'%s' was saved on a big-endian machine, which is not "
			  "supported", f->path);
		goto done;
	}
	snprintf(name, sizeof name, "%s/data.pkl", prefix);
	r = wt_zip_entry(&z, name, &data, &size);
	if (r == -2) {
		wt_seterr(err, errlen, "'%s': zip entry '%s' is compressed (method %d); torch.save "
			  "stores entries uncompressed: re-save the checkpoint with torch.save",
			  f->path, name, pkl->method);
		goto done;
	}
	if (size > WT_MAX_PICKLE) {
		wt_seterr(err, errlen, "'%s': data.pkl is larger than %u bytes", f->path, WT_MAX_PICKLE);
		goto done;
	}
	rc = wt_unpickle_state_dict(f, &z, prefix, data, size, err, errlen);
done:
	free(z.e);
	return rc;
}
