/* vae_source.h: where the VAE and TAEHV loaders get named tensors from.
 *
 * The loaders only need "read tensor NAME as f32 after checking its shape" and "what is the
 * shape of NAME"; vae_source_wt.c adapts a wt_file (safetensors or PyTorch zip) to this. */
#ifndef HERU_WAN_VAE_SOURCE_H
#define HERU_WAN_VAE_SOURCE_H

#include <stddef.h>
#include <stdint.h>

struct vae_source {
	void *ctx; /* borrowed */
	/* Fills DST with tensor NAME converted to f32 after checking its shape is exactly
	 * SHAPE[0..NDIM); 0, or -1 with an error naming the file and the tensor. */
	int (*read)(void *ctx, const char *name, int ndim, const int64_t *shape, float *dst,
		    char *err, size_t errlen);
	/* Writes the shape of NAME (up to 8 dims) and returns its ndim, or -1 when absent. */
	int (*shape)(void *ctx, const char *name, int64_t *shape);
	/* The file name for messages. */
	const char *path;
};

struct wt_file;

/* A source reading from an open tensor file F (borrowed; keep it open while loading). */
struct vae_source vae_source_wt(struct wt_file *f);

/* A source of deterministic random weights (for benchmarks and GPU tests): conv weights
 * uniform with variance 1/fan_in, RMS gammas 1 + small noise, biases small. CTX is SEED. */
struct vae_source vae_source_random(uint64_t *seed);

#endif
