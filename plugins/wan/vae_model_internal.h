/* vae_model_internal.h: the loaded VAE's layer structures, shared by the CPU reference
 * (vae_model.c) and the CUDA engine (cuda/vae_cuda.c), which uploads these fp32 weights. */
#ifndef HERU_WAN_VAE_MODEL_INTERNAL_H
#define HERU_WAN_VAE_MODEL_INTERNAL_H

#include "vae_model.h"
#include "vae_ops.h"

struct vae_conv_w {
	struct vae_conv_shape s;
	float *w, *b; /* new: repacked weight [kt][kh][kw][cin][cout], bias [cout] */
	int slot;     /* cache slot of a causal k_t=3 conv, else -1 */
};

enum vae_kind { VK_RES, VK_ATTN, VK_DOWN2D, VK_DOWN3D, VK_UP2D, VK_UP3D };

struct vae_block {
	enum vae_kind kind;
	char prefix[48];
	int cin, cout;
	float *g1, *g2;          /* new: RMS gammas (res: before conv a / conv b; attn: g1) */
	struct vae_conv_w a, b;  /* res: residual.2 / residual.6; attn: to_qkv / proj;
				    resample: resample.1 / time_conv */
	struct vae_conv_w sc;    /* res shortcut when cin != cout */
	int has_sc;
	int slot;                /* resample time state */
};

struct vae_coder {
	const char *name;        /* "encoder" / "decoder" */
	struct vae_conv_w conv_in;
	struct vae_block *blocks; /* new */
	int nblocks;
	int head_c;
	float *head_g;           /* new */
	struct vae_conv_w head;
	int nslots;
};

struct vae_model {
	struct vae_config cfg;
	int what;
	struct vae_coder enc, dec;
	struct vae_conv_w quant;      /* "conv1": 2z -> 2z, 1x1x1 */
	struct vae_conv_w post_quant; /* "conv2": z -> z, 1x1x1 */
};

#endif
