/* taehv_model_internal.h: the loaded TAEHV decoder's layers, shared by the CPU reference
 * (taehv_model.c) and the CUDA engine (cuda/vae_cuda.c), which uploads these fp32 weights. */
#ifndef HERU_WAN_TAEHV_MODEL_INTERNAL_H
#define HERU_WAN_TAEHV_MODEL_INTERNAL_H

#include "taehv_model.h"
#include "vae_ops.h"

#define TAEHV_LAYERS 23
#define TAEHV_LATENT 16

enum tk { TK_CLAMP, TK_CONV, TK_RELU, TK_MEM, TK_UP, TK_TGROW };

struct tconv {
	struct vae_conv_shape s;
	float *w, *b; /* new; b NULL when the conv has no bias */
};

struct tlayer {
	enum tk kind;
	int c;                 /* width (mem/tgrow) */
	int stride;            /* tgrow */
	struct tconv conv[3];  /* conv: [0]; mem: conv.0/2/4; tgrow: [0] */
};

struct taehv_model {
	struct taehv_config cfg;
	struct tlayer l[TAEHV_LAYERS];
};

#endif
