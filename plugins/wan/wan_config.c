/* wan_config.c: DiT configs: the presets of spec §1 and Wan2.1 config.json files. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <jansson.h>

#include "wan_config.h"
#include "wan_err.h"

#define MAX_CONFIG_BYTES (1u << 20)

int wan_dit_config_preset(const char *name, struct wan_dit_config *out)
{
	static const struct wan_dit_config c13 = {
		.dim = 1536, .ffn_dim = 8960, .num_heads = 12, .head_dim = 128, .num_layers = 30,
		.in_dim = 16, .out_dim = 16, .text_len = 512, .text_dim = 4096, .freq_dim = 256,
		.eps = 1e-6,
	};
	static const struct wan_dit_config c14 = {
		.dim = 5120, .ffn_dim = 13824, .num_heads = 40, .head_dim = 128, .num_layers = 40,
		.in_dim = 16, .out_dim = 16, .text_len = 512, .text_dim = 4096, .freq_dim = 256,
		.eps = 1e-6,
	};

	if (!name)
		return -1;
	if (!strncasecmp(name, "wan-", 4))
		name += 4;
	if (!strcasecmp(name, "1.3b")) {
		*out = c13;
		return 0;
	}
	if (!strcasecmp(name, "14b")) {
		*out = c14;
		return 0;
	}
	return -1;
}

int wan_dit_config_validate(const struct wan_dit_config *c, char *err, size_t errlen)
{
	const struct { const char *key; int v, lo, hi; } b[] = {
		{ "dim", c->dim, 2, 1 << 16 },
		{ "ffn_dim", c->ffn_dim, 1, 1 << 18 },
		{ "num_heads", c->num_heads, 1, 1024 },
		{ "num_layers", c->num_layers, 1, 1024 },
		{ "in_dim", c->in_dim, 1, 1024 },
		{ "out_dim", c->out_dim, 1, 1024 },
		{ "text_len", c->text_len, 1, 1 << 16 },
		{ "text_dim", c->text_dim, 1, 1 << 16 },
		{ "freq_dim", c->freq_dim, 2, 1 << 16 },
	};

	for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
		if (b[i].v < b[i].lo || b[i].v > b[i].hi) {
			wt_seterr(err, errlen, "config: %s = %d is out of range [%d, %d]", b[i].key, b[i].v,
			       b[i].lo, b[i].hi);
			return -1;
		}
	if (c->dim % c->num_heads) {
		wt_seterr(err, errlen, "config: dim %d is not a multiple of num_heads %d", c->dim,
		       c->num_heads);
		return -1;
	}
	if (c->head_dim != c->dim / c->num_heads) {
		wt_seterr(err, errlen, "config: head_dim %d is not dim/num_heads = %d", c->head_dim,
		       c->dim / c->num_heads);
		return -1;
	}
	if (c->head_dim % 2) {
		wt_seterr(err, errlen, "config: head_dim %d (dim/num_heads) must be even for RoPE",
		       c->head_dim);
		return -1;
	}
	if (c->freq_dim % 2) {
		wt_seterr(err, errlen, "config: freq_dim %d must be even (cos and sin halves)",
		       c->freq_dim);
		return -1;
	}
	if (!isfinite(c->eps) || c->eps <= 0 || c->eps > 1) {
		wt_seterr(err, errlen, "config: eps %g must be in (0, 1]", c->eps);
		return -1;
	}
	return 0;
}

/* Reads integer KEY of ROOT into *OUT. REQUIRED decides whether absence is an error. */
static int get_int(json_t *root, const char *key, int *out, int required, const char *src,
		   char *err, size_t errlen)
{
	json_t *v = json_object_get(root, key);
	double d;

	if (!v) {
		if (!required)
			return 0;
		wt_seterr(err, errlen, "%s: missing key \"%s\"", src, key);
		return -1;
	}
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);

		if (i < -(1 << 30) || i > (1 << 30))
			goto bad;
		*out = (int)i;
		return 0;
	}
	if (json_is_real(v)) {
		d = json_real_value(v);
		if (d != floor(d) || fabs(d) > (1 << 30))
			goto bad;
		*out = (int)d;
		return 0;
	}
bad:
	wt_seterr(err, errlen, "%s: \"%s\" must be an integer", src, key);
	return -1;
}

int wan_dit_config_parse(const char *json, size_t len, const char *source,
			 struct wan_dit_config *out, char *err, size_t errlen)
{
	struct wan_dit_config c = { .text_dim = 4096 };
	json_error_t jerr;
	json_t *root = json_loadb(json, len, 0, &jerr), *v;
	int rc = -1;

	if (!root || !json_is_object(root)) {
		wt_seterr(err, errlen, "%s: not a JSON object%s%s", source, root ? "" : ": ",
		       root ? "" : jerr.text);
		goto done;
	}
	if (get_int(root, "dim", &c.dim, 1, source, err, errlen) ||
	    get_int(root, "ffn_dim", &c.ffn_dim, 1, source, err, errlen) ||
	    get_int(root, "num_heads", &c.num_heads, 1, source, err, errlen) ||
	    get_int(root, "num_layers", &c.num_layers, 1, source, err, errlen) ||
	    get_int(root, "in_dim", &c.in_dim, 1, source, err, errlen) ||
	    get_int(root, "out_dim", &c.out_dim, 1, source, err, errlen) ||
	    get_int(root, "text_len", &c.text_len, 1, source, err, errlen) ||
	    get_int(root, "freq_dim", &c.freq_dim, 1, source, err, errlen) ||
	    get_int(root, "text_dim", &c.text_dim, 0, source, err, errlen))
		goto done;
	v = json_object_get(root, "eps");
	if (!json_is_number(v)) {
		wt_seterr(err, errlen, "%s: %s key \"eps\"", source, v ? "non-numeric" : "missing");
		goto done;
	}
	c.eps = json_number_value(v);
	v = json_object_get(root, "patch_size");
	if (v && !(json_is_array(v) && json_array_size(v) == 3 &&
		   json_integer_value(json_array_get(v, 0)) == 1 &&
		   json_integer_value(json_array_get(v, 1)) == 2 &&
		   json_integer_value(json_array_get(v, 2)) == 2)) {
		/* Wan2.1 ignores patch_size from config.json; only (1,2,2) is supported here */
		wt_seterr(err, errlen, "%s: patch_size must be [1, 2, 2]", source);
		goto done;
	}
	if (c.num_heads > 0 && c.dim > 0)
		c.head_dim = c.dim / c.num_heads;
	if (wan_dit_config_validate(&c, err, errlen) < 0) {
		/* prefix the source */
		char tmp[256];

		snprintf(tmp, sizeof tmp, "%s", err);
		wt_seterr(err, errlen, "%s: %s", source, strncmp(tmp, "config: ", 8) ? tmp : tmp + 8);
		goto done;
	}
	*out = c;
	rc = 0;
done:
	json_decref(root);
	return rc;
}

int wan_dit_config_load(const char *spec, struct wan_dit_config *out, char *err, size_t errlen)
{
	struct stat st;
	char *path = NULL, *buf = NULL;
	FILE *fp = NULL;
	size_t n;
	int rc = -1;

	if (!spec || !*spec) {
		wt_seterr(err, errlen, "no model given: use 1.3b, 14b or a Wan2.1 config.json path");
		return -1;
	}
	if (!wan_dit_config_preset(spec, out))
		return 0;
	if (stat(spec, &st) < 0) {
		wt_seterr(err, errlen, "unknown model '%s': use 1.3b, 14b or a Wan2.1 config.json path",
		       spec);
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		path = malloc(strlen(spec) + sizeof "/config.json");
		if (!path)
			goto oom;
		sprintf(path, "%s/config.json", spec);
	} else {
		path = strdup(spec);
		if (!path)
			goto oom;
	}
	fp = fopen(path, "rb");
	if (!fp) {
		wt_seterr(err, errlen, "cannot open model config '%s': %s", path, strerror(errno));
		goto done;
	}
	buf = malloc(MAX_CONFIG_BYTES + 1);
	if (!buf)
		goto oom;
	n = fread(buf, 1, MAX_CONFIG_BYTES + 1, fp);
	if (ferror(fp) || n > MAX_CONFIG_BYTES) {
		wt_seterr(err, errlen, "model config '%s' is unreadable or larger than %u bytes", path,
		       MAX_CONFIG_BYTES);
		goto done;
	}
	rc = wan_dit_config_parse(buf, n, path, out, err, errlen);
	goto done;
oom:
	wt_seterr(err, errlen, "out of memory");
done:
	if (fp)
		fclose(fp);
	free(buf);
	free(path);
	return rc;
}
