/* wt_file.c: tensor files: opening (format detection), the name index, dtype conversion and
 * shape-checked reads. The format readers are wt_safetensors.c and wt_torchzip.c. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wt_internal.h"

void wt_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

size_t wt_dtype_size(enum wt_dtype dt)
{
	switch (dt) {
	case WT_F64: case WT_I64: return 8;
	case WT_F32: case WT_I32: return 4;
	case WT_F16: case WT_BF16: case WT_I16: return 2;
	case WT_I8: case WT_U8: case WT_BOOL: return 1;
	}
	return 0;
}

static const char *const dtype_names[] = {
	[WT_F32] = "F32", [WT_F16] = "F16", [WT_BF16] = "BF16", [WT_F64] = "F64",
	[WT_I64] = "I64", [WT_I32] = "I32", [WT_I16] = "I16", [WT_I8] = "I8",
	[WT_U8] = "U8", [WT_BOOL] = "BOOL",
};

const char *wt_dtype_name(enum wt_dtype dt)
{
	if ((unsigned)dt < sizeof dtype_names / sizeof dtype_names[0])
		return dtype_names[dt];
	return "?";
}

int wt_dtype_parse(const char *s, enum wt_dtype *out)
{
	for (size_t i = 0; i < sizeof dtype_names / sizeof dtype_names[0]; i++)
		if (!strcmp(s, dtype_names[i])) {
			*out = (enum wt_dtype)i;
			return 0;
		}
	return -1;
}

int64_t wt_numel(const struct wt_tensor *t)
{
	int64_t n = 1;

	for (int i = 0; i < t->ndim; i++)
		n *= t->shape[i];
	return n;
}

char *wt_shape_str(int ndim, const int64_t *shape, char *buf, size_t buflen)
{
	size_t used = 0;

	if (!buflen)
		return buf;
	buf[0] = 0;
	used += (size_t)snprintf(buf, buflen, "[");
	for (int i = 0; i < ndim && used < buflen; i++)
		used += (size_t)snprintf(buf + used, buflen - used, "%s%lld", i ? "," : "",
					 (long long)shape[i]);
	if (used < buflen)
		snprintf(buf + used, buflen - used, "]");
	return buf;
}

float wt_bf16_to_f32(uint16_t v)
{
	uint32_t u = (uint32_t)v << 16;
	float f;

	memcpy(&f, &u, 4);
	return f;
}

uint16_t wt_f32_to_bf16(float v)
{
	uint32_t u;

	memcpy(&u, &v, 4);
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((u >> 16) | 0x40);  /* quiet NaN */
	u += 0x7fffu + ((u >> 16) & 1);
	return (uint16_t)(u >> 16);
}

float wt_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
	float f;

	if (exp == 0) {
		/* zero or subnormal: man * 2^-24 */
		f = ldexpf((float)man, -24);
		return sign ? -f : f;
	}
	if (exp == 31)
		u = sign | 0x7f800000u | (man << 13);
	else
		u = sign | ((exp + 112) << 23) | (man << 13);
	memcpy(&f, &u, 4);
	return f;
}

uint16_t wt_f32_to_f16(float v)
{
	uint32_t u, sign, man;
	int exp;

	memcpy(&u, &v, 4);
	sign = (u >> 16) & 0x8000;
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)(sign | 0x7e00);
	if ((u & 0x7fffffffu) >= 0x477ff000u)  /* rounds to >= 65520: inf */
		return (uint16_t)(sign | 0x7c00);
	exp = (int)((u >> 23) & 0xff) - 127;
	man = u & 0x7fffff;
	if (exp < -14) {
		/* subnormal half: value = m * 2^-24, round to nearest even */
		float a = fabsf(v) * 16777216.0f;  /* exact scaling by 2^24 */
		float r = nearbyintf(a);            /* default rounding mode: nearest even */
		return (uint16_t)(sign | (uint32_t)r);
	}
	{
		uint32_t h = (uint32_t)(exp + 15) << 10 | (man >> 13);
		uint32_t rest = man & 0x1fff;

		if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
			h++;
		return (uint16_t)(sign | h);
	}
}

int wt_map_file(struct wt_file *f, char *err, size_t errlen)
{
	struct stat st;
	int fd;
	void *m;

	fd = open(f->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		wt_seterr(err, errlen, "cannot open tensor file '%s': %s", f->path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		wt_seterr(err, errlen, "'%s' is not a regular file", f->path);
		close(fd);
		return -1;
	}
	if (st.st_size == 0) {
		wt_seterr(err, errlen, "tensor file '%s' is empty", f->path);
		close(fd);
		return -1;
	}
	m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		wt_seterr(err, errlen, "cannot map tensor file '%s': %s", f->path, strerror(errno));
		return -1;
	}
	f->map = m;
	f->map_size = (size_t)st.st_size;
	return 0;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
	size_t ncap;
	void *p;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 64;
	while (ncap < need)
		ncap *= 2;
	p = realloc(*arr, ncap * elem);
	if (!p)
		return -1;
	*arr = p;
	*cap = ncap;
	return 0;
}

struct wt_tensor *wt_add_tensor(struct wt_file *f, const char *name, size_t namelen,
				char *err, size_t errlen)
{
	struct wt_tensor *t;
	char *copy;

	if (f->count >= WT_MAX_TENSORS) {
		wt_seterr(err, errlen, "'%s' holds more than %u tensors", f->path, WT_MAX_TENSORS);
		return NULL;
	}
	if (namelen > WT_MAX_NAME) {
		wt_seterr(err, errlen, "'%s': a tensor name is longer than %u bytes", f->path,
			  WT_MAX_NAME);
		return NULL;
	}
	if (grow((void **)&f->tensors, &f->cap, f->count + 1, sizeof *f->tensors) < 0 ||
	    grow((void **)&f->names, &f->names_cap, f->names_count + 1, sizeof *f->names) < 0)
		goto oom;
	copy = malloc(namelen + 1);
	if (!copy)
		goto oom;
	memcpy(copy, name, namelen);
	copy[namelen] = 0;
	f->names[f->names_count++] = copy;
	t = &f->tensors[f->count++];
	memset(t, 0, sizeof *t);
	t->name = copy;
	return t;
oom:
	wt_seterr(err, errlen, "'%s': out of memory", f->path);
	return NULL;
}

int wt_own_buffer(struct wt_file *f, void *buf, char *err, size_t errlen)
{
	if (grow((void **)&f->bufs, &f->bufs_cap, f->bufs_count + 1, sizeof *f->bufs) < 0) {
		free(buf);
		wt_seterr(err, errlen, "'%s': out of memory", f->path);
		return -1;
	}
	f->bufs[f->bufs_count++] = buf;
	return 0;
}

static int cmp_ptr(const void *a, const void *b)
{
	const struct wt_tensor *ta = *(const struct wt_tensor *const *)a;
	const struct wt_tensor *tb = *(const struct wt_tensor *const *)b;

	return strcmp(ta->name, tb->name);
}

static int cmp_name_ptr(const void *key, const void *elem)
{
	return strcmp((const char *)key, (*(const struct wt_tensor *const *)elem)->name);
}

int wt_finish(struct wt_file *f, char *err, size_t errlen)
{
	f->sorted = malloc((f->count ? f->count : 1) * sizeof *f->sorted);
	if (!f->sorted) {
		wt_seterr(err, errlen, "'%s': out of memory", f->path);
		return -1;
	}
	for (size_t i = 0; i < f->count; i++)
		f->sorted[i] = &f->tensors[i];
	qsort(f->sorted, f->count, sizeof *f->sorted, cmp_ptr);
	for (size_t i = 1; i < f->count; i++)
		if (!strcmp(f->sorted[i - 1]->name, f->sorted[i]->name)) {
			wt_seterr(err, errlen, "'%s' holds tensor '%s' twice", f->path,
				  f->sorted[i]->name);
			return -1;
		}
	return 0;
}

static const struct wt_tensor *find_exact(const struct wt_file *f, const char *name)
{
	const struct wt_tensor *const *hit;

	if (!f->sorted)
		return NULL;
	hit = bsearch(name, f->sorted, f->count, sizeof *f->sorted, cmp_name_ptr);
	return hit ? *hit : NULL;
}

const struct wt_tensor *wt_find(const struct wt_file *f, const char *name)
{
	const struct wt_tensor *t;
	char buf[WT_MAX_NAME + 8];

	if (!f || !name)
		return NULL;
	t = find_exact(f, name);
	if (t)
		return t;
	if (strlen(name) > WT_MAX_NAME)
		return NULL;
	snprintf(buf, sizeof buf, "model.%s", name);
	return find_exact(f, buf);
}

/* Sniffs the first bytes: "PK\3\4" is a zip (torch.save); a plausible 8-byte length followed
 * by '{' is safetensors; a leading '{' a JSON shard index; 0x80 <= 5 a legacy torch pickle;
 * anything else is handed to the safetensors reader, whose errors explain. */
static int sniff(const char *path, char *err, size_t errlen)
{
	unsigned char b[9] = { 0 };
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		wt_seterr(err, errlen, "cannot open tensor file '%s': %s", path, strerror(errno));
		return -1;
	}
	n = read(fd, b, sizeof b);
	close(fd);
	if (n < 0) {
		wt_seterr(err, errlen, "cannot read tensor file '%s': %s", path, strerror(errno));
		return -1;
	}
	if (n >= 4 && !memcmp(b, "PK\3\4", 4))
		return 'z';
	if (n == 9 && b[8] == '{') {
		/* safetensors first: its length bytes may look like anything below */
		uint64_t hlen = 0;

		for (int i = 7; i >= 0; i--)
			hlen = hlen << 8 | b[i];
		if (hlen >= 2 && hlen <= WT_MAX_HEADER)
			return 's';
	}
	for (ssize_t i = 0; i < n; i++) {
		if (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t')
			continue;
		if (b[i] == '{')
			return 'j';
		break;
	}
	if (n >= 2 && b[0] == 0x80 && b[1] <= 5)
		return 'p';
	return 's';
}

static struct wt_file *open_impl(const char *path, int allow_index, char *err, size_t errlen)
{
	struct wt_file *f;
	int kind, rc;

	if (!path || !*path) {
		wt_seterr(err, errlen, "no tensor file given");
		return NULL;
	}
	kind = sniff(path, err, errlen);
	if (kind < 0)
		return NULL;
	if (kind == 'p') {
		wt_seterr(err, errlen, "'%s' is a legacy (pre-1.6, non-zip) torch pickle, which is "
			  "not supported: re-save it with torch.save in PyTorch >= 1.6", path);
		return NULL;
	}
	if (kind == 'j' && !allow_index) {
		wt_seterr(err, errlen, "'%s' is a JSON file, not a tensor file", path);
		return NULL;
	}
	f = calloc(1, sizeof *f);
	if (!f || !(f->path = strdup(path))) {
		free(f);
		wt_seterr(err, errlen, "out of memory");
		return NULL;
	}
	if (kind == 'j') {
		rc = wt_load_index(f, err, errlen);
	} else {
		rc = wt_map_file(f, err, errlen);
		if (!rc)
			rc = kind == 'z' ? wt_load_torchzip(f, err, errlen)
					 : wt_load_safetensors(f, err, errlen);
	}
	if (!rc)
		rc = wt_finish(f, err, errlen);
	if (rc) {
		wt_close(f);
		return NULL;
	}
	return f;
}

struct wt_file *wt_open(const char *path, char *err, size_t errlen)
{
	return open_impl(path, 1, err, errlen);
}

struct wt_file *wt_open_shard(const char *path, char *err, size_t errlen)
{
	return open_impl(path, 0, err, errlen);
}

void wt_close(struct wt_file *f)
{
	if (!f)
		return;
	if (f->map)
		munmap(f->map, f->map_size);
	for (size_t i = 0; i < f->names_count; i++)
		free(f->names[i]);
	for (size_t i = 0; i < f->bufs_count; i++)
		free(f->bufs[i]);
	for (size_t i = 0; i < f->subs_count; i++)
		wt_close(f->subs[i]);
	free(f->subs);
	free(f->names);
	free(f->bufs);
	free(f->tensors);
	free(f->sorted);
	free(f->path);
	free(f);
}

const char *wt_path(const struct wt_file *f)
{
	return f ? f->path : NULL;
}

size_t wt_count(const struct wt_file *f)
{
	return f ? f->count : 0;
}

const struct wt_tensor *wt_at(const struct wt_file *f, size_t i)
{
	return f && i < f->count ? &f->tensors[i] : NULL;
}

static bool is_float_dtype(enum wt_dtype d)
{
	return d == WT_F32 || d == WT_F16 || d == WT_BF16 || d == WT_F64;
}

/* Element I of float data SRC of dtype D (one of is_float_dtype) as f32; unaligned-safe. */
static inline float float_elem(const unsigned char *src, enum wt_dtype d, size_t i)
{
	uint16_t h;
	float f;
	double v;

	switch (d) {
	case WT_F32:
		memcpy(&f, src + 4 * i, 4);
		return f;
	case WT_BF16:
		memcpy(&h, src + 2 * i, 2);
		return wt_bf16_to_f32(h);
	case WT_F16:
		memcpy(&h, src + 2 * i, 2);
		return wt_f16_to_f32(h);
	default: /* WT_F64 */
		memcpy(&v, src + 8 * i, 8);
		return (float)v;
	}
}

static int not_float(const struct wt_tensor *t, char *err, size_t errlen)
{
	wt_seterr(err, errlen, "tensor '%s' has dtype %s, not a float type", t->name,
		  wt_dtype_name(t->dtype));
	return -1;
}

int wt_tensor_to_f32(const struct wt_tensor *t, float *dst, char *err, size_t errlen)
{
	size_t n = (size_t)wt_numel(t);

	if (!is_float_dtype(t->dtype))
		return not_float(t, err, errlen);
	if (t->dtype == WT_F32) {
		memcpy(dst, t->data, n * 4);
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		dst[i] = float_elem(t->data, t->dtype, i);
	return 0;
}

/* Finds NAME and checks its shape; errors name the file and the tensor. */
static const struct wt_tensor *find_checked(const struct wt_file *f, const char *name, int ndim,
					    const int64_t *shape, char *err, size_t errlen)
{
	const struct wt_tensor *t = wt_find(f, name);
	char want[160], got[160];
	bool same;

	if (!t) {
		wt_seterr(err, errlen, "'%s' has no tensor '%s'", wt_path(f), name);
		return NULL;
	}
	same = t->ndim == ndim;
	for (int i = 0; same && i < ndim; i++)
		same = t->shape[i] == shape[i];
	if (!same) {
		wt_seterr(err, errlen, "'%s': tensor '%s' has shape %s, expected %s", wt_path(f),
			  t->name, wt_shape_str(t->ndim, t->shape, got, sizeof got),
			  wt_shape_str(ndim, shape, want, sizeof want));
		return NULL;
	}
	return t;
}

/* find_checked, and the tensor must hold floats. */
static const struct wt_tensor *find_float(const struct wt_file *f, const char *name, int ndim,
					  const int64_t *shape, char *err, size_t errlen)
{
	const struct wt_tensor *t = find_checked(f, name, ndim, shape, err, errlen);

	if (t && !is_float_dtype(t->dtype)) {
		wt_seterr(err, errlen, "'%s': tensor '%s' has dtype %s, expected a float type",
			  wt_path(f), t->name, wt_dtype_name(t->dtype));
		return NULL;
	}
	return t;
}

int wt_read_f32(const struct wt_file *f, const char *name, int ndim, const int64_t *shape,
		float *dst, char *err, size_t errlen)
{
	const struct wt_tensor *t = find_float(f, name, ndim, shape, err, errlen);

	if (!t)
		return -1;
	return wt_tensor_to_f32(t, dst, err, errlen);
}

float *wt_load_f32(const struct wt_file *f, const char *name, int ndim, const int64_t *shape,
		   char *err, size_t errlen)
{
	const struct wt_tensor *t = find_checked(f, name, ndim, shape, err, errlen);
	float *dst;

	if (!t)
		return NULL;
	dst = malloc(((size_t)wt_numel(t) ? (size_t)wt_numel(t) : 1) * sizeof *dst);
	if (!dst) {
		wt_seterr(err, errlen, "'%s': out of memory loading tensor '%s'", wt_path(f), name);
		return NULL;
	}
	if (wt_read_f32(f, name, ndim, shape, dst, err, errlen) < 0) {
		free(dst);
		return NULL;
	}
	return dst;
}

int wt_read_i64(const struct wt_file *f, const char *name, int ndim, const int64_t *shape,
		int64_t *dst, char *err, size_t errlen)
{
	const struct wt_tensor *t = find_checked(f, name, ndim, shape, err, errlen);
	size_t n;

	if (!t)
		return -1;
	n = (size_t)wt_numel(t);
	if (t->dtype == WT_I64) {
		memcpy(dst, t->data, n * 8);
		return 0;
	}
	if (t->dtype == WT_I32) {
		for (size_t i = 0; i < n; i++) {
			int32_t v;

			memcpy(&v, (const unsigned char *)t->data + 4 * i, 4);
			dst[i] = v;
		}
		return 0;
	}
	wt_seterr(err, errlen, "'%s': tensor '%s' has dtype %s, expected I64 or I32", wt_path(f),
		  t->name, wt_dtype_name(t->dtype));
	return -1;
}

int wt_tensor_to_bf16(const struct wt_tensor *t, uint16_t *dst, char *err, size_t errlen)
{
	size_t n = (size_t)wt_numel(t);

	if (!is_float_dtype(t->dtype))
		return not_float(t, err, errlen);
	if (t->dtype == WT_BF16) {
		memcpy(dst, t->data, n * 2);
		return 0;
	}
	/* F64 goes via f32: double rounding can differ from a direct f64->bf16 in rare ties */
	for (size_t i = 0; i < n; i++)
		dst[i] = wt_f32_to_bf16(float_elem(t->data, t->dtype, i));
	return 0;
}

int wt_read_bf16(const struct wt_file *f, const char *name, int ndim, const int64_t *shape,
		 uint16_t *dst, char *err, size_t errlen)
{
	const struct wt_tensor *t = find_float(f, name, ndim, shape, err, errlen);

	if (!t)
		return -1;
	return wt_tensor_to_bf16(t, dst, err, errlen);
}
