/* vae_config.c: VAE / TAEHV architecture from JSON (see vae_config.h). */
#include "vae_config.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

void vae_config_default(struct vae_config *c)
{
	memset(c, 0, sizeof(*c));
	c->dim = 96;
	c->z_dim = 16;
	c->n_mult = 4;
	c->dim_mult[0] = 1;
	c->dim_mult[1] = 2;
	c->dim_mult[2] = 4;
	c->dim_mult[3] = 4;
	c->num_res_blocks = 2;
	c->temperal_downsample[0] = 0;
	c->temperal_downsample[1] = 1;
	c->temperal_downsample[2] = 1;
}

void taehv_config_default(struct taehv_config *c)
{
	c->widths[0] = 256;
	c->widths[1] = 128;
	c->widths[2] = 64;
	c->widths[3] = 64;
}

int vae_config_spatial(const struct vae_config *c)
{
	return 1 << (c->n_mult - 1);
}

int vae_config_temporal(const struct vae_config *c)
{
	int t = 1;
	for (int i = 0; i < c->n_mult - 1; i++)
		if (c->temperal_downsample[i])
			t *= 2;
	return t;
}

static int get_int(json_t *root, const char *path, const char *key, int lo, int hi, int *dst,
		   char *err, size_t errlen)
{
	json_t *v = json_object_get(root, key);
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
		snprintf(err, errlen, "config '%s': '%s' must be an integer in [%d, %d]", path, key,
			 lo, hi);
		return -1;
	}
	*dst = (int)json_integer_value(v);
	return 0;
}

static int load_vae(json_t *root, const char *path, struct vae_config *c, char *err, size_t errlen)
{
	json_t *v;
	if (get_int(root, path, "dim", 1, 4096, &c->dim, err, errlen) ||
	    get_int(root, path, "z_dim", 1, 1024, &c->z_dim, err, errlen) ||
	    get_int(root, path, "num_res_blocks", 1, 8, &c->num_res_blocks, err, errlen))
		return -1;
	if ((v = json_object_get(root, "dim_mult"))) {
		size_t n = json_is_array(v) ? json_array_size(v) : 0;
		if (n < 2 || n > VAE_MAX_MULT) {
			snprintf(err, errlen, "config '%s': 'dim_mult' must be an array of 2 to %d integers",
				 path, VAE_MAX_MULT);
			return -1;
		}
		c->n_mult = (int)n;
		for (size_t i = 0; i < n; i++) {
			json_t *e = json_array_get(v, i);
			if (!json_is_integer(e) || json_integer_value(e) < 1 || json_integer_value(e) > 64) {
				snprintf(err, errlen, "config '%s': 'dim_mult' entries must be integers in [1, 64]", path);
				return -1;
			}
			c->dim_mult[i] = (int)json_integer_value(e);
		}
	}
	if ((v = json_object_get(root, "attn_scales"))) {
		size_t n = json_is_array(v) ? json_array_size(v) : (size_t)-1;
		if (n > VAE_MAX_ATTN) {
			snprintf(err, errlen, "config '%s': 'attn_scales' must be an array of at most %d numbers",
				 path, VAE_MAX_ATTN);
			return -1;
		}
		c->n_attn = (int)n;
		for (size_t i = 0; i < n; i++) {
			json_t *e = json_array_get(v, i);
			if (!json_is_number(e)) {
				snprintf(err, errlen, "config '%s': 'attn_scales' entries must be numbers", path);
				return -1;
			}
			c->attn_scales[i] = json_number_value(e);
		}
	}
	if ((v = json_object_get(root, "temperal_downsample"))) {
		size_t n = json_is_array(v) ? json_array_size(v) : 0;
		if ((int)n != c->n_mult - 1) {
			snprintf(err, errlen, "config '%s': 'temperal_downsample' must be an array of %d booleans "
				 "(one per dim_mult step)", path, c->n_mult - 1);
			return -1;
		}
		for (size_t i = 0; i < n; i++) {
			json_t *e = json_array_get(v, i);
			if (!json_is_boolean(e)) {
				snprintf(err, errlen, "config '%s': 'temperal_downsample' entries must be booleans", path);
				return -1;
			}
			c->temperal_downsample[i] = json_is_true(e);
		}
	} else if (c->n_mult != 4) {
		snprintf(err, errlen, "config '%s': 'temperal_downsample' is required when 'dim_mult' "
			 "does not have 4 entries", path);
		return -1;
	}
	if (c->z_dim != 16) {
		snprintf(err, errlen, "config '%s': 'z_dim' must be 16 (the latent normalization "
			 "constants have 16 channels)", path);
		return -1;
	}
	/* Every decoder stage after the first takes in_dim/2 (upstream hard-codes this). */
	for (int i = 0; i < c->n_mult; i++)
		if ((c->dim * c->dim_mult[i]) % 2) {
			snprintf(err, errlen, "config '%s': dim * dim_mult must be even", path);
			return -1;
		}
	return 0;
}

static int load_taehv(json_t *root, const char *path, struct taehv_config *c, char *err,
		      size_t errlen)
{
	json_t *v = json_object_get(root, "decoder_widths");
	if (!v)
		return 0;
	if (!json_is_array(v) || json_array_size(v) != 4) {
		snprintf(err, errlen, "config '%s': 'decoder_widths' must be an array of 4 integers", path);
		return -1;
	}
	for (size_t i = 0; i < 4; i++) {
		json_t *e = json_array_get(v, i);
		if (!json_is_integer(e) || json_integer_value(e) < 1 || json_integer_value(e) > 4096) {
			snprintf(err, errlen, "config '%s': 'decoder_widths' entries must be integers in [1, 4096]",
				 path);
			return -1;
		}
		c->widths[i] = (int)json_integer_value(e);
	}
	return 0;
}

int vae_config_load(const char *path, struct vae_config *vae, struct taehv_config *taehv,
		    char *err, size_t errlen)
{
	struct vae_config v;
	struct taehv_config t;
	vae_config_default(&v);
	taehv_config_default(&t);
	if (path) {
		json_error_t je;
		json_t *root = json_load_file(path, 0, &je);
		if (!root) {
			snprintf(err, errlen, "cannot read config '%s': %s (line %d)", path, je.text, je.line);
			return -1;
		}
		int rc = -1;
		if (!json_is_object(root))
			snprintf(err, errlen, "config '%s' is not a JSON object", path);
		else if (load_vae(root, path, &v, err, errlen) == 0 &&
			 load_taehv(root, path, &t, err, errlen) == 0)
			rc = 0;
		json_decref(root);
		if (rc)
			return rc;
	}
	if (vae)
		*vae = v;
	if (taehv)
		*taehv = t;
	return 0;
}
