/* wan_sched.h: the flow-matching scheduler of StreamDiffusionV2 at inference (spec §4.2, §4.3):
 * the shifted 1000-point σ grid, the nearest-grid σ lookup, the denoising step lists, the
 * first-timestep rule for streamed chunks, and the motion-aware noise controller. */
#ifndef HERU_WAN_SCHED_H
#define HERU_WAN_SCHED_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WAN_SCHED_GRID 1000
#define WAN_MAX_STEPS 8

/* FlowMatchScheduler(shift=8, sigma_min=0, extra_one_step=True).set_timesteps(1000),
 * reproduced in float32 like torch computes it: s_i = linspace(1, 0, 1001)[i],
 * sigma_i = 8 s_i / (1 + 7 s_i), timestep_i = 1000 sigma_i. */
struct wan_sched {
	float sigma[WAN_SCHED_GRID];
	float timestep[WAN_SCHED_GRID];
};

void wan_sched_init(struct wan_sched *s);
/* Index of the grid timestep nearest to T (the first one on a tie, as torch.argmin). */
int wan_sched_index(const struct wan_sched *s, double t);
/* σ(t) by nearest-grid lookup: e.g. t=700 -> 0.700232, t=200 -> 0.198347, t=0 -> 0.007944. */
double wan_sched_sigma(const struct wan_sched *s, int64_t t);

/* The per-step timesteps for STEPS = 1..8 into OUT[0..STEPS). 1..4 are upstream's v2v lists
 * (first STEPS entries of [700, 500, 400, 200]); 5..8 are Heru's extension, supersets of the
 * 4-step list with points added in between and below (never under 100):
 *   5: 700 600 500 400 200        6: 700 600 500 400 300 200
 *   7: 700 600 500 400 300 200 100    8: 700 650 600 500 400 300 200 100
 * Returns 0, or -1 with ERR when STEPS is out of range. */
int wan_step_list(int steps, int64_t out[WAN_MAX_STEPS], char *err, size_t errlen);

/* The first timestep of a streamed chunk mixed at strength S (spec §4.3):
 * int(1000 s) - 100. S usually comes as float32, so 1000 s is taken with a 1e-3 tolerance
 * (0.7f = 0.69999999 gives 600, as 0.7 does upstream in float64). */
int64_t wan_first_step(double s);
/* Valid strengths: 0.1 <= s <= 1 (so that the first timestep is in [0, 900]). */
int wan_noise_scale_valid(double s);

/* Motion-aware noise controller (streamv2v/inference.py:compute_noise_scale_and_step). */
struct wan_noise_ctl {
	double init_scale; /* the session's initial noise_scale (0.8 by default) */
	double scale;      /* the previous chunk's s */
};

void wan_noise_ctl_init(struct wan_noise_ctl *c, double init_scale);
/* VIDEO is [channels][frames][hw] pixel values in [-1,1]: the previous chunk's last frame
 * followed by this chunk's NEW_FRAMES frames (frames = new_frames + 1). Computes
 *   d_j = sqrt(mean_{c,hw} (x_j - x_{j-1})²), dhat = clamp(max_j d_j / 0.2, 0, 1),
 *   s = 0.9 (init - 0.1 dhat) + 0.1 s_prev,
 * stores s as the new previous scale, sets *FIRST_STEP = int(1000 s) - 100, returns s. */
double wan_noise_ctl_update(struct wan_noise_ctl *c, const float *video, int channels,
			    int new_frames, size_t hw, int64_t *first_step);

#ifdef __cplusplus
}
#endif
#endif
