/* wt_safetensors.c: the safetensors reader (single file, mmapped) and the sharded form (a
 * *.safetensors.index.json whose "weight_map" names the shard of every tensor).
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
 * then the data block; offsets are relative to the start of the data block. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "wt_internal.h"

/* A JSON integer (or an integral real) in [0, INT64_MAX]. */
static int json_u64(const json_t *v, uint64_t *out)
{
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);

		if (i < 0)
			return -1;
		*out = (uint64_t)i;
		return 0;
	}
	return -1;
}

static int parse_entry(struct wt_file *f, const char *name, json_t *e, uint64_t data_size,
		       const uint8_t *data, char *err, size_t errlen)
{
	json_t *jd = json_object_get(e, "dtype"), *js = json_object_get(e, "shape"),
	       *jo = json_object_get(e, "data_offsets"), *v;
	struct wt_tensor *t;
	enum wt_dtype dt;
	uint64_t numel = 1, nbytes, begin, end;
	int64_t shape[WT_MAX_DIMS];
	size_t ndim, i;

	if (!json_is_object(e) || !json_is_string(jd) || !json_is_array(js) || !json_is_array(jo) ||
	    json_array_size(jo) != 2) {
		wt_seterr(err, errlen, "'%s': header entry for tensor '%s' is malformed (needs dtype, "
			  "shape, data_offsets)", f->path, name);
		return -1;
	}
	if (wt_dtype_parse(json_string_value(jd), &dt) < 0) {
		wt_seterr(err, errlen, "'%s': tensor '%s' has unsupported dtype '%s'", f->path, name,
			  json_string_value(jd));
		return -1;
	}
	ndim = json_array_size(js);
	if (ndim > WT_MAX_DIMS) {
		wt_seterr(err, errlen, "'%s': tensor '%s' has %zu dimensions (at most %d)", f->path,
			  name, ndim, WT_MAX_DIMS);
		return -1;
	}
	json_array_foreach(js, i, v) {
		uint64_t d;

		if (json_u64(v, &d) < 0 || d > INT64_MAX || !wt_mul_ok(numel, d, &numel)) {
			wt_seterr(err, errlen, "'%s': tensor '%s' has an invalid shape", f->path, name);
			return -1;
		}
		shape[i] = (int64_t)d;
	}
	if (!wt_mul_ok(numel, wt_dtype_size(dt), &nbytes) ||
	    json_u64(json_array_get(jo, 0), &begin) < 0 || json_u64(json_array_get(jo, 1), &end) < 0) {
		wt_seterr(err, errlen, "'%s': tensor '%s' has invalid data offsets or size", f->path,
			  name);
		return -1;
	}
	if (begin > end || end > data_size) {
		wt_seterr(err, errlen, "'%s': tensor '%s' lies outside the file (offsets %llu..%llu, "
			  "data block %llu bytes): truncated or corrupt", f->path, name,
			  (unsigned long long)begin, (unsigned long long)end,
			  (unsigned long long)data_size);
		return -1;
	}
	if (end - begin != nbytes) {
		wt_seterr(err, errlen, "'%s': tensor '%s' spans %llu bytes but its dtype and shape need "
			  "%llu", f->path, name, (unsigned long long)(end - begin),
			  (unsigned long long)nbytes);
		return -1;
	}
	t = wt_add_tensor(f, name, strlen(name), err, errlen);
	if (!t)
		return -1;
	t->dtype = dt;
	t->ndim = (int)ndim;
	memcpy(t->shape, shape, ndim * sizeof shape[0]);
	t->data = data + begin;
	t->nbytes = (size_t)nbytes;
	return 0;
}

static int cmp_offset(const void *a, const void *b)
{
	const struct wt_tensor *x = a, *y = b;
	const char *px = x->data, *py = y->data;

	if (px != py)
		return px < py ? -1 : 1;
	return strcmp(x->name, y->name);
}

int wt_load_safetensors(struct wt_file *f, char *err, size_t errlen)
{
	const uint8_t *base = f->map;
	uint64_t hlen = 0;
	json_t *root = NULL, *e;
	json_error_t jerr;
	const char *name;
	int rc = -1;

	if (f->map_size < 8) {
		wt_seterr(err, errlen, "'%s' is too short to be a safetensors file (%zu bytes)",
			  f->path, f->map_size);
		return -1;
	}
	for (int i = 7; i >= 0; i--)
		hlen = hlen << 8 | base[i];
	if (hlen < 2 || hlen > WT_MAX_HEADER) {
		wt_seterr(err, errlen, "'%s' is not a safetensors file (header length %llu; expected "
			  "2..%u)", f->path, (unsigned long long)hlen, WT_MAX_HEADER);
		return -1;
	}
	if (hlen > f->map_size - 8) {
		wt_seterr(err, errlen, "'%s' is truncated: its safetensors header needs %llu bytes, "
			  "the file has %zu", f->path, (unsigned long long)hlen + 8, f->map_size);
		return -1;
	}
	root = json_loadb((const char *)base + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
	if (!root || !json_is_object(root)) {
		wt_seterr(err, errlen, "'%s': safetensors header is not a JSON object: %s", f->path,
			  root ? "wrong type" : jerr.text);
		goto done;
	}
	json_object_foreach(root, name, e) {
		if (!strcmp(name, "__metadata__"))
			continue;
		if (parse_entry(f, name, e, f->map_size - 8 - hlen, base + 8 + hlen, err, errlen) < 0)
			goto done;
	}
	qsort(f->tensors, f->count, sizeof *f->tensors, cmp_offset);
	rc = 0;
done:
	json_decref(root);
	return rc;
}

/* The shard names of an index are plain file names next to the index. */
static int shard_name_ok(const char *s)
{
	return *s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

int wt_load_index(struct wt_file *f, char *err, size_t errlen)
{
	json_t *root = NULL, *map, *v;
	json_error_t jerr;
	const char *name, *slash;
	char **shard_names = NULL;
	size_t nshards = 0, dirlen;
	char *p = NULL, suberr[512];
	int rc = -1;
	FILE *fp;
	long sz;

	fp = fopen(f->path, "rb");
	if (!fp) {
		wt_seterr(err, errlen, "cannot open shard index '%s': %s", f->path, strerror(errno));
		return -1;
	}
	if (fseek(fp, 0, SEEK_END) < 0 || (sz = ftell(fp)) < 0 || sz > (long)WT_MAX_HEADER ||
	    fseek(fp, 0, SEEK_SET) < 0) {
		wt_seterr(err, errlen, "shard index '%s' is unreadable or larger than %u bytes",
			  f->path, WT_MAX_HEADER);
		fclose(fp);
		return -1;
	}
	root = json_loadf(fp, JSON_REJECT_DUPLICATES, &jerr);
	fclose(fp);
	map = json_object_get(root, "weight_map");
	if (!root || !json_is_object(map)) {
		wt_seterr(err, errlen, "'%s' is not a safetensors shard index (no \"weight_map\" "
			  "object)%s%s", f->path, root ? "" : ": ", root ? "" : jerr.text);
		goto done;
	}
	slash = strrchr(f->path, '/');
	dirlen = slash ? (size_t)(slash - f->path) + 1 : 0;
	/* Open every distinct shard once, in order of first appearance. */
	shard_names = calloc(json_object_size(map) + 1, sizeof *shard_names);
	f->subs = calloc(json_object_size(map) + 1, sizeof *f->subs);
	if (!shard_names || !f->subs) {
		wt_seterr(err, errlen, "out of memory");
		goto done;
	}
	json_object_foreach(map, name, v) {
		const char *sh = json_string_value(v);
		size_t k;

		if (!sh || !shard_name_ok(sh)) {
			wt_seterr(err, errlen, "'%s': weight_map entry for '%s' is not a shard file "
				  "name in the index's folder", f->path, name);
			goto done;
		}
		for (k = 0; k < nshards; k++)
			if (!strcmp(shard_names[k], sh))
				break;
		if (k == nshards) {
			struct wt_file *sub;

			p = malloc(dirlen + strlen(sh) + 1);
			if (!p) {
				wt_seterr(err, errlen, "out of memory");
				goto done;
			}
			memcpy(p, f->path, dirlen);
			strcpy(p + dirlen, sh);
			sub = wt_open_shard(p, suberr, sizeof suberr);
			free(p);
			p = NULL;
			if (!sub) {
				wt_seterr(err, errlen, "shard index '%s': %s", f->path, suberr);
				goto done;
			}
			f->subs[f->subs_count++] = sub;
			shard_names[nshards++] = (char *)sh;
		}
	}
	/* The weight map decides which shard holds each tensor. */
	json_object_foreach(map, name, v) {
		const char *sh = json_string_value(v);
		const struct wt_tensor *src = NULL;
		struct wt_tensor *t;
		const char *own;

		for (size_t k = 0; k < nshards; k++)
			if (!strcmp(shard_names[k], sh)) {
				src = wt_find(f->subs[k], name);
				if (src && strcmp(src->name, name))
					src = NULL;  /* only exact names */
				break;
			}
		if (!src) {
			wt_seterr(err, errlen, "'%s': tensor '%s' is listed in shard '%s' but not "
				  "found there", f->path, name, sh);
			goto done;
		}
		t = wt_add_tensor(f, name, strlen(name), err, errlen);
		if (!t)
			goto done;
		own = t->name;
		*t = *src;
		t->name = own;
	}
	rc = 0;
done:
	free(p);
	free(shard_names);
	json_decref(root);
	return rc;
}
