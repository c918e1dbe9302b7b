/* wan_sched.c: flow-matching grid, σ lookup, step lists and the noise controller (wan_sched.h). */
#include "wan_sched.h"

#include <math.h>
#include <stdio.h>

void wan_sched_init(struct wan_sched *s)
{
	/* torch.linspace(1, 0, 1001) in float32: the first half counts up from the start, the
	 * second half down from the end, with step = (end - start) / (steps - 1). */
	const int steps = WAN_SCHED_GRID + 1;
	const float start = 1.0f, end = 0.0f;
	const float step = (end - start) / (float)(steps - 1);
	const int halfway = steps / 2;
	for (int i = 0; i < WAN_SCHED_GRID; i++) {
		float v = i < halfway ? start + step * (float)i : end - step * (float)(steps - i - 1);
		float sig = (8.0f * v) / (1.0f + 7.0f * v);
		s->sigma[i] = sig;
		s->timestep[i] = sig * 1000.0f;
	}
}

int wan_sched_index(const struct wan_sched *s, double t)
{
	int best = 0;
	double bd = fabs((double)s->timestep[0] - t);
	for (int i = 1; i < WAN_SCHED_GRID; i++) {
		double d = fabs((double)s->timestep[i] - t);
		if (d < bd) {
			bd = d;
			best = i;
		}
	}
	return best;
}

double wan_sched_sigma(const struct wan_sched *s, int64_t t)
{
	return (double)s->sigma[wan_sched_index(s, (double)t)];
}

static const int64_t step_lists[WAN_MAX_STEPS][WAN_MAX_STEPS] = {
	{ 700 },
	{ 700, 500 },
	{ 700, 500, 400 },
	{ 700, 500, 400, 200 },
	{ 700, 600, 500, 400, 200 },
	{ 700, 600, 500, 400, 300, 200 },
	{ 700, 600, 500, 400, 300, 200, 100 },
	{ 700, 650, 600, 500, 400, 300, 200, 100 },
};

int wan_step_list(int steps, int64_t out[WAN_MAX_STEPS], char *err, size_t errlen)
{
	if (steps < 1 || steps > WAN_MAX_STEPS) {
		snprintf(err, errlen, "steps must be 1..%d, got %d", WAN_MAX_STEPS, steps);
		return -1;
	}
	for (int i = 0; i < steps; i++)
		out[i] = step_lists[steps - 1][i];
	return 0;
}

int64_t wan_first_step(double s)
{
	return (int64_t)floor(1000.0 * s + 1e-3) - 100;
}

int wan_noise_scale_valid(double s)
{
	return s >= 0.1 && s <= 1.0;
}

void wan_noise_ctl_init(struct wan_noise_ctl *c, double init_scale)
{
	c->init_scale = init_scale;
	c->scale = init_scale;
}

double wan_noise_ctl_update(struct wan_noise_ctl *c, const float *video, int channels,
			    int new_frames, size_t hw, int64_t *first_step)
{
	int frames = new_frames + 1;
	double dmax = 0.0;
	for (int j = 1; j < frames; j++) {
		double s2 = 0.0;
		for (int ch = 0; ch < channels; ch++) {
			const float *a = video + ((size_t)ch * frames + j) * hw;
			const float *b = a - hw;
			for (size_t i = 0; i < hw; i++) {
				double d = (double)a[i] - b[i];
				s2 += d * d;
			}
		}
		double dj = sqrt(s2 / ((double)channels * hw));
		if (dj > dmax)
			dmax = dj;
	}
	double dhat = dmax / 0.2;
	if (dhat > 1.0)
		dhat = 1.0;
	double s = (c->init_scale - 0.1 * dhat) * 0.9 + c->scale * 0.1;
	c->scale = s;
	if (first_step)
		*first_step = (int64_t)floor(1000.0 * s) - 100;
	return s;
}
