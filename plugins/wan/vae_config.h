/* vae_config.h: architecture of the Wan2.1 causal 3D VAE and of the TAEHV decoder.
 *
 * JSON keys follow upstream `_video_vae` arguments (dim, z_dim, dim_mult, num_res_blocks,
 * attn_scales, temperal_downsample) and, for TAEHV, `decoder_widths`; one file may hold both.
 * Keys that are absent keep the real Wan2.1 / taew2_1 defaults. */
#ifndef HERU_WAN_VAE_CONFIG_H
#define HERU_WAN_VAE_CONFIG_H

#include <stddef.h>

#define VAE_MAX_MULT 4
#define VAE_MAX_ATTN 8

struct vae_config {
	int dim;                              /* 96 */
	int z_dim;                            /* 16 (the latent channels; the encoder emits 2*z_dim) */
	int n_mult;                           /* 4 */
	int dim_mult[VAE_MAX_MULT];           /* 1 2 4 4 */
	int num_res_blocks;                   /* 2 */
	int n_attn;                           /* 0 */
	double attn_scales[VAE_MAX_ATTN];
	int temperal_downsample[VAE_MAX_MULT - 1]; /* false true true */
};

struct taehv_config {
	int widths[4];                        /* decoder_widths: 256 128 64 64 */
};

void vae_config_default(struct vae_config *c);
void taehv_config_default(struct taehv_config *c);

/* Reads PATH (a JSON object) over defaults; NULL path gives the defaults. Either output may be
 * NULL. Validates ranges; errors name the file and the key. */
int vae_config_load(const char *path, struct vae_config *vae, struct taehv_config *taehv,
		    char *err, size_t errlen);

/* Spatial (8) and temporal (4) compression of a config. */
int vae_config_spatial(const struct vae_config *c);
int vae_config_temporal(const struct vae_config *c);

#endif
