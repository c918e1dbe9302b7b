/* check_vae_fixture.c: minimal f32 safetensors reader for the VAE/TAEHV tests. */
#include "check_vae_fixture.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fx_tensor {
	char *name;
	int ndim;
	int64_t shape[8];
	float *data;
};

struct fx_file {
	char *path;
	struct fx_tensor *t;
	size_t n;
};

void fx_close(struct fx_file *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++) {
		free(f->t[i].name);
		free(f->t[i].data);
	}
	free(f->t);
	free(f->path);
	free(f);
}

struct fx_file *fx_open(const char *path, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "rb");
	struct fx_file *f = calloc(1, sizeof(*f));
	unsigned char hb[8];
	char *hdr = NULL;
	json_t *root = NULL;
	if (!fp || !f) {
		snprintf(err, errlen, "cannot open '%s'", path);
		goto fail;
	}
	f->path = strdup(path);
	if (fread(hb, 1, 8, fp) != 8)
		goto bad;
	uint64_t hl = 0;
	for (int i = 7; i >= 0; i--)
		hl = hl << 8 | hb[i];
	if (hl > (1u << 24))
		goto bad;
	hdr = malloc(hl + 1);
	if (!hdr || fread(hdr, 1, hl, fp) != hl)
		goto bad;
	hdr[hl] = 0;
	root = json_loads(hdr, 0, NULL);
	if (!json_is_object(root))
		goto bad;
	f->t = calloc(json_object_size(root), sizeof(*f->t));
	const char *key;
	json_t *v;
	json_object_foreach(root, key, v) {
		if (!strcmp(key, "__metadata__"))
			continue;
		struct fx_tensor *t = &f->t[f->n];
		json_t *sh = json_object_get(v, "shape"), *off = json_object_get(v, "data_offsets");
		if (strcmp(json_string_value(json_object_get(v, "dtype")) ?: "", "F32") ||
		    !json_is_array(sh) || json_array_size(sh) > 8 || json_array_size(off) != 2)
			goto bad;
		t->name = strdup(key);
		t->ndim = (int)json_array_size(sh);
		size_t ne = 1;
		for (int i = 0; i < t->ndim; i++)
			ne *= (size_t)(t->shape[i] = json_integer_value(json_array_get(sh, i)));
		long a = (long)json_integer_value(json_array_get(off, 0));
		long b = (long)json_integer_value(json_array_get(off, 1));
		if ((size_t)(b - a) != ne * 4)
			goto bad;
		t->data = malloc(ne * 4 + 4);
		f->n++;
		if (!t->data || fseek(fp, (long)(8 + hl) + a, SEEK_SET) || fread(t->data, 4, ne, fp) != ne)
			goto bad;
	}
	json_decref(root);
	free(hdr);
	fclose(fp);
	return f;
bad:
	snprintf(err, errlen, "'%s' is not an f32 safetensors file", path);
fail:
	json_decref(root);
	free(hdr);
	if (fp)
		fclose(fp);
	fx_close(f);
	return NULL;
}

const float *fx_get(const struct fx_file *f, const char *name, int *ndim, int64_t *shape)
{
	for (size_t i = 0; i < f->n; i++)
		if (!strcmp(f->t[i].name, name)) {
			if (ndim)
				*ndim = f->t[i].ndim;
			if (shape)
				memcpy(shape, f->t[i].shape, sizeof(f->t[i].shape));
			return f->t[i].data;
		}
	return NULL;
}

static int fx_read(void *ctx, const char *name, int ndim, const int64_t *shape, float *dst,
		   char *err, size_t errlen)
{
	struct fx_file *f = ctx;
	int nd;
	int64_t sh[8];
	const float *d = fx_get(f, name, &nd, sh);
	if (!d) {
		snprintf(err, errlen, "'%s': tensor '%s' is missing", f->path, name);
		return -1;
	}
	size_t n = 1;
	if (nd != ndim)
		goto shape;
	for (int i = 0; i < nd; i++) {
		if (sh[i] != shape[i])
			goto shape;
		n *= (size_t)sh[i];
	}
	memcpy(dst, d, n * sizeof(float));
	return 0;
shape:
	snprintf(err, errlen, "'%s': tensor '%s' has the wrong shape", f->path, name);
	return -1;
}

static int fx_shape(void *ctx, const char *name, int64_t *shape)
{
	int nd;
	return fx_get(ctx, name, &nd, shape) ? nd : -1;
}

struct vae_source fx_source(struct fx_file *f)
{
	struct vae_source s = { .ctx = f, .read = fx_read, .shape = fx_shape, .path = f->path };
	return s;
}

const char *fx_path(const char *name)
{
	static char buf[4096];
	const char *top = getenv("top_srcdir");
	snprintf(buf, sizeof(buf), "%s/tests/fixtures/wan/vae/%s", top ? top : "..", name);
	return buf;
}

double fx_rel_max(const float *a, const float *b, size_t n)
{
	double m = 0.0, r = 1e-6;
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)a[i] - b[i]);
		if (d > m || isnan(d))
			m = isnan(d) ? INFINITY : d;
		if (fabs(b[i]) > r)
			r = fabs(b[i]);
	}
	return m / r;
}
