/* cli_bench.c: bench-dit — times the CUDA DiT with random weights of the real shapes
 * (generated on the GPU; no file needed):
 *   - first chunk: S sequential forwards of 1 slot x 2 latent frames (empty cache, rows
 *     [0, 2L)), as prepare() does (spec §4.4);
 *   - steady state: one call with a full cache (6 latent frames attended): batch mode is one
 *     forward of S slots x 1 frame (spec §4.5); nobatch mode is S sequential 1-slot forwards
 *     (spec §4.6);
 *   - the same steady call paced like a live stream (one call every 133 ms: 4 video frames
 *     per latent frame at 30 fps), since back-to-back calls hold an H100 at its power cap;
 * with the per-component breakdown of one profiled (eager) call, achieved TFLOP/s next to
 * the FLOP count of spec §10, peak GPU memory, upstream's eager numbers of spec §9, and (where
 * NVML is there) the energy per steady and per paced call next to the GPU's power limit. */
#include "config.h"
#include "plugins/wan/cli_bench.h"
#include "plugins/wan/cli.h"
#include "plugins/wan/wan_clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef HERU_HAVE_CUDA
#include <cuda_runtime.h>
#include "plugins/wan/cuda/dit_cuda.h"
#include "plugins/wan/cuda/gpu_energy.h"
#include "plugins/wan/cuda/kernels.h"
#endif

static void usage(FILE *f)
{
	fprintf(f, "usage: bench-dit --model 1.3b|14b --height H --width W --steps 1..4 [--mode batch|nobatch]\n"
		   "                 [--iters N] [--kv-frames 6] [--seed N] [--no-graph] [--fallback-attn]\n");
}

#ifdef HERU_HAVE_CUDA

static const int step_list[4] = {700, 500, 400, 200};

/* sigma(t) by nearest grid point of the shifted 1000-step schedule (spec §4.2). */
static float sigma_of_t(int t)
{
	double best = 1e30, sig = 1.0;

	for (int i = 0; i < 1000; i++) {
		float s = 1.0f - (float)i / 1000.0f;
		double sg = 8.0 * s / (1.0 + 7.0 * s), d = 1000.0 * sg - t;

		if (d < 0)
			d = -d;
		if (d < best) {
			best = d;
			sig = sg;
		}
	}
	return (float)sig;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Upstream eager numbers (spec §9, §4.11), ms; 0 = not measured. */
static double upstream_call_ms(int is14b, int is480, int s)
{
	static const double t13_480[4] = {63.9, 99.1, 111.3, 135.5}, t13_512[4] = {72.5, 79.9, 98.4, 110.0};
	static const double t14_480[4] = {134.0, 267.3, 399.5, 527.7}, t14_512[4] = {125.0, 183.1, 274.8, 341.2};

	if (is14b)
		return is480 ? t14_480[s - 1] : t14_512[s - 1];
	return is480 ? t13_480[s - 1] : t13_512[s - 1];
}

static double upstream_first_ms(int is14b, int is480, int s)
{
	if (!is480)
		return 0;
	if (!is14b)
		return s == 2 ? 159.0 : s == 4 ? 286.0 : 0;
	return s == 1 ? 332.0 : 0;
}

/* DiT FLOPs of one forward (spec §10.1): GEMMs + attention QKᵀ and AV. */
static double forward_flops(const struct dit_cuda_dims *d, double tokens, double lk)
{
	double D = d->dim, F = d->ffn_dim;

	return d->num_layers * tokens * (2 * D * (6 * D + 2 * F) + 4 * D * lk + 4 * D * d->text_len);
}

static void fill_call(struct dit_cuda_call *c, int slots, int frames, int L, int kv_frames,
		      int first, int iter, int steps, int step_idx)
{
	memset(c, 0, sizeof(*c));
	c->slots = slots;
	c->frames = frames;
	for (int b = 0; b < slots; b++) {
		int t = step_list[(slots > 1 ? b : step_idx) % steps];

		for (int f = 0; f < frames; f++) {
			c->t[b][f] = t;
			c->sigma[b][f] = sigma_of_t(t);
		}
		if (first) {
			c->start_frame[b] = 0;
			c->write_row[b] = 0;
			c->kv_len[b] = 2 * L;
		} else {
			/* full cache: 3 sink frames, the ring rotates over the rest */
			int ring = kv_frames - 3;

			c->start_frame[b] = 10 + (iter + b) % 40;
			c->write_row[b] = (3 + (iter + b) % ring) * L;
			c->kv_len[b] = kv_frames * L;
		}
	}
}

/* Adaptive-sink hook for the benchmark: writes and attends exactly what the call says. */
static int bench_kv_hook(void *ctx, int layer, int slot, const float *means, int nsink, int d,
			 int *write_row, int *attn_len, char *err, size_t errlen)
{
	const struct dit_cuda_call *c = ctx;

	(void)layer; (void)means; (void)nsink; (void)d; (void)err; (void)errlen;
	*write_row = c->write_row[slot];
	*attn_len = c->kv_len[slot];
	return 0;
}

/* The adaptive-sink state of a full cache whose next write (without a refresh) goes where
 * C says: per layer and slot, the rolling entries in rotation order from C's write row; the
 * device decides the refresh from the random data, as a stream would. */
static void bench_sink_fill(struct dit_cuda_sink *s, struct wan_sink_ring *rings, struct wan_sink_rec *rec,
			    const struct dit_cuda_call *c, int layers, int L, int kv_frames, int nsink, int steps)
{
	int ring = kv_frames - nsink;

	*s = (struct dit_cuda_sink){.nsink = nsink, .rings = rings, .rec = rec,
				    .params = {.threshold = 0.2, .total_steps = steps, .kv_slots = c->slots,
					       .pending_max = WAN_SINK_PENDING_MAX,
					       .list_cap = WAN_SINK_PENDING_MAX + kv_frames + 1}};
	for (int b = 0; b < c->slots; b++)
		s->params.c_start[b] = c->start_frame[b] * L;
	for (int l = 0; l < layers; l++)
		for (int b = 0; b < c->slots; b++) {
			struct wan_sink_ring *r = &rings[(size_t)l * c->slots + b];
			int first = ((c->write_row[b] / L - nsink) % ring + ring) % ring;

			memset(r, 0, sizeof(*r));
			r->n = ring;
			for (int i = 0; i < ring; i++)
				r->list[i] = (nsink + (first + i) % ring + 1) * L;
			r->local_end = kv_frames * L;
			r->global_end = c->start_frame[b] * L;
			r->current_step = steps;
		}
}

/* Energy and power of a timed loop: joules per call, mean watts, the SM clock at its end
 * (all 0 when unknown); loop_power_start before its first timed call, loop_power_end after
 * its last. NVML's counter moves in steps too coarse for a loop much shorter than a second
 * (a 130 ms loop read 947 W against a 700 W limit), so loops are made at least
 * ENERGY_MIN_MS long and the window is printed with the result. */
#define ENERGY_MIN_MS 2000.0
struct loop_power {
	double mj0, t0, ms;
	int calls;
	double j_per_call, watts;
	unsigned int mhz;
};

static struct wan_energy energy; /* opened by run_bench */

static void loop_power_start(struct loop_power *lp)
{
	memset(lp, 0, sizeof(*lp));
	lp->mj0 = wan_energy_mj(&energy);
	lp->t0 = wan_now_ms();
}

static void loop_power_end(struct loop_power *lp, int calls)
{
	double mj1 = wan_energy_mj(&energy), ms = wan_now_ms() - lp->t0;

	if (lp->mj0 < 0 || mj1 < lp->mj0 || calls <= 0 || ms <= 0)
		return;
	lp->ms = ms;
	lp->calls = calls;
	lp->j_per_call = (mj1 - lp->mj0) / 1000.0 / calls;
	lp->watts = (mj1 - lp->mj0) / ms;
	lp->mhz = wan_energy_sm_mhz(&energy);
}

/* Median ms of ITERS calls of C (after 2 untimed ones): plain forwards (graphs), hooked
 * forwards (HOOKED: the host-decided adaptive sink, eager, one statistics readback per
 * layer), or the device-decided adaptive sink (SINK). PERIOD_MS > 0: each call starts
 * PERIOD_MS after the one before, the GPU idle in between, as a live stream issues them (at
 * S slots one call emits one latent frame, i.e. 4 video frames, so a 30 fps camera starts a
 * call every 133 ms; a sustained back-to-back loop holds an H100 at its power cap, NOTES.md
 * "pdl"); 0: one right after the other. */
static int time_calls(struct dit_cuda *m, const struct dit_cuda_call *c, int hooked, int nsink,
		      const struct dit_cuda_sink *sink, double period_ms, int iters, double *t,
		      double *med, struct loop_power *lp, char *err, size_t errlen)
{
	double next = wan_now_ms();

	for (int it = -2; it < iters; it++) {
		double t0 = wan_now_ms();

		if (it == 0 && lp)
			loop_power_start(lp);
		if (t0 < next) {
			struct timespec ts;
			double w = next - t0;

			ts.tv_sec = (time_t)(w / 1000);
			ts.tv_nsec = (long)((w - ts.tv_sec * 1000.0) * 1e6);
			nanosleep(&ts, NULL);
			t0 = wan_now_ms();
		}
		next = t0 + period_ms;
		if (sink ? dit_cuda_forward_sink(m, c, sink, NULL, NULL, err, errlen)
		    : hooked ? dit_cuda_forward_hooked(m, c, nsink, bench_kv_hook, (void *)c, NULL, NULL, err, errlen)
			   : dit_cuda_forward(m, c, NULL, NULL, NULL, err, errlen))
			return -1;
		if (dit_cuda_sync(m, err, errlen))
			return -1;
		if (it >= 0)
			t[it] = wan_now_ms() - t0;
	}
	if (lp)
		loop_power_end(lp, iters);
	qsort(t, (size_t)iters, sizeof(double), cmp_double);
	*med = t[iters / 2];
	return 0;
}

/* Medians of ITERS plain calls and ITERS sink calls of C, taken in alternating runs of 4
 * (each run after one untimed call: a plain call makes the next sink call re-read the sink
 * frames), so that clock and temperature drift fall on both alike. */
static int time_pair(struct dit_cuda *m, const struct dit_cuda_call *c, const struct dit_cuda_sink *sink,
		     int iters, double *t, double *t2, double *plain_med, double *sink_med, char *err,
		     size_t errlen)
{
	double *ts[2] = { t, t2 };
	int n[2] = { 0, 0 };

	while (n[0] < iters || n[1] < iters) {
		for (int sk = 0; sk < 2; sk++) /* a run of plain calls, then one of sink calls */
			for (int k = -1; k < 4; k++) {
				double t0 = wan_now_ms();

				if ((sk ? dit_cuda_forward_sink(m, c, sink, NULL, NULL, err, errlen)
					: dit_cuda_forward(m, c, NULL, NULL, NULL, err, errlen)) ||
				    dit_cuda_sync(m, err, errlen))
					return -1;
				if (k >= 0 && n[sk] < iters)
					ts[sk][n[sk]++] = wan_now_ms() - t0;
			}
	}
	qsort(t, (size_t)iters, sizeof(double), cmp_double);
	qsort(t2, (size_t)iters, sizeof(double), cmp_double);
	*plain_med = t[iters / 2];
	*sink_med = t2[iters / 2];
	return 0;
}

static int run_bench(const struct dit_cuda_dims *d, int is14b, int height, int width, int steps,
		     int batch, int iters, int kv_frames, unsigned seed, int graphs, int cudnn)
{
	struct dit_cuda_plan plan = {.lat_h = height / 8, .lat_w = width / 8,
				     .slots = batch ? steps : 1, .kv_frames = kv_frames};
	int L = (plan.lat_h / 2) * (plan.lat_w / 2), is480 = height == 480 && width == 832;
	struct dit_cuda *m = NULL;
	struct dit_cuda_call c;
	struct cudaDeviceProp prop;
	char err[512];
	double *t = calloc((size_t)iters, sizeof(double)), first_ms, steady_ms, tput_ms, ms[DIT_C_COUNT];
	double ms_sink[DIT_C_COUNT], *t2 = calloc((size_t)iters, sizeof(double)), alt_plain_ms = 0, alt_sink_ms = 0;
	struct dit_cuda_counters cnt;
	double f_first, f_call, up, ragged_ms = 0, hooked_ms = 0, sink_ms = 0, paced_ms = 0, idle_w = 0;
	struct loop_power pw_steady = {0}, pw_paced = {0};
	const double pace_ms = 4 * 1000.0 / 30; /* one latent frame = 4 video frames at 30 fps */
	struct wan_sink_ring *rings = calloc((size_t)d->num_layers * DIT_CUDA_MAX_SLOTS, sizeof(*rings));
	struct wan_sink_rec *rec = calloc((size_t)d->num_layers * DIT_CUDA_MAX_SLOTS, sizeof(*rec));
	struct dit_cuda_sink sink;
	size_t free0 = 0, total = 0, free1 = 0;
	int rc = 1, nslots = plan.slots, calls_per_chunk = batch ? 1 : steps;

	if (!t || !t2 || !rings || !rec) {
		free(t);
		free(t2);
		free(rings);
		free(rec);
		return 1;
	}
	if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
		fprintf(stderr, "bench-dit: no CUDA device\n");
		goto out;
	}
	cudaMemGetInfo(&free0, &total);
	/* the idle draw, to tell a paced call's energy from the gaps' (batch mode is paced) */
	if (wan_energy_open(&energy) == 0 && batch) {
		double e0 = wan_energy_mj(&energy), t0 = wan_now_ms();
		struct timespec ts = {0, 500 * 1000000L};

		nanosleep(&ts, NULL);
		idle_w = (wan_energy_mj(&energy) - e0) / (wan_now_ms() - t0);
	}
	m = dit_cuda_new(d, &plan, err, sizeof(err));
	if (!m)
		goto fail;
	dit_cuda_set_options(m, graphs, cudnn);
	if (dit_cuda_random_weights(m, seed, err, sizeof(err)) ||
	    dit_cuda_set_context(m, NULL, seed + 1, err, sizeof(err)) ||
	    wan_k_fill_uniform_f32(0, dit_cuda_input(m), (size_t)16 * plan.lat_h * plan.lat_w * (nslots > 2 ? nslots : 2),
				   seed + 2, 0.0f, 1.5f, err, sizeof(err)) ||
	    cudaDeviceSynchronize() != cudaSuccess)
		goto fail;
	printf("bench-dit: %s %dx%d (latent %dx%d, L=%d tokens/frame), S=%d, mode %s, kv %d frames, %s\n",
	       is14b ? "14B" : "1.3B", height, width, plan.lat_h, plan.lat_w, L, steps,
	       batch ? "batch" : "nobatch", kv_frames, prop.name);

	/* first chunk: S sequential 1-slot x 2-frame forwards on an empty cache */
	for (int it = -2; it < iters; it++) {
		double t0 = wan_now_ms();

		for (int s = 0; s < steps; s++) {
			fill_call(&c, 1, 2, L, kv_frames, 1, 0, steps, s);
			if (dit_cuda_forward(m, &c, NULL, NULL, NULL, err, sizeof(err)))
				goto fail;
		}
		if (dit_cuda_sync(m, err, sizeof(err)))
			goto fail;
		if (it >= 0)
			t[it] = wan_now_ms() - t0;
	}
	qsort(t, (size_t)iters, sizeof(double), cmp_double);
	first_ms = t[iters / 2];

	/* steady state, full cache */
	for (int it = -3; it < iters; it++) {
		double t0 = wan_now_ms();

		for (int s = 0; s < calls_per_chunk; s++) {
			fill_call(&c, nslots, 1, L, kv_frames, 0, it + 3, steps, s);
			if (dit_cuda_forward(m, &c, NULL, NULL, NULL, err, sizeof(err)))
				goto fail;
		}
		if (dit_cuda_sync(m, err, sizeof(err)))
			goto fail;
		if (it >= 0)
			t[it] = wan_now_ms() - t0;
	}
	qsort(t, (size_t)iters, sizeof(double), cmp_double);
	steady_ms = t[iters / 2];
	/* the steady chunk's energy: the same synchronized chunks for at least ENERGY_MIN_MS */
	if (energy.dev) {
		int n = 0;

		loop_power_start(&pw_steady);
		do {
			for (int s = 0; s < calls_per_chunk; s++) {
				fill_call(&c, nslots, 1, L, kv_frames, 0, n, steps, s);
				if (dit_cuda_forward(m, &c, NULL, NULL, NULL, err, sizeof(err)))
					goto fail;
			}
			if (dit_cuda_sync(m, err, sizeof(err)))
				goto fail;
			n++;
		} while (wan_now_ms() - pw_steady.t0 < ENERGY_MIN_MS);
		loop_power_end(&pw_steady, n);
	}
	{
		double t0 = wan_now_ms();

		for (int it = 0; it < iters; it++)
			for (int s = 0; s < calls_per_chunk; s++) {
				fill_call(&c, nslots, 1, L, kv_frames, 0, it, steps, s);
				if (dit_cuda_forward(m, &c, NULL, NULL, NULL, err, sizeof(err)))
					goto fail;
			}
		if (dit_cuda_sync(m, err, sizeof(err)))
			goto fail;
		tput_ms = (wan_now_ms() - t0) / iters;
	}
	/* the same call at a live stream's pace (batch mode: one call per latent frame) */
	if (batch) {
		fill_call(&c, nslots, 1, L, kv_frames, 0, 0, steps, 0);
		if (time_calls(m, &c, 0, 0, NULL, pace_ms, iters, t, &paced_ms, &pw_paced, err, sizeof(err)))
			goto fail;
	}
	/* the adaptive sink on the same steady call: decided on the device (graphed), and by a
	 * host callback (eager, per-layer readback) */
	fill_call(&c, nslots, 1, L, kv_frames, 0, 0, steps, 0);
	bench_sink_fill(&sink, rings, rec, &c, d->num_layers, L, kv_frames, kv_frames > 3 ? 3 : kv_frames - 1, steps);
	if (time_calls(m, &c, 0, 0, &sink, 0, iters, t, &sink_ms, NULL, err, sizeof(err)) ||
	    time_pair(m, &c, &sink, iters, t, t2, &alt_plain_ms, &alt_sink_ms, err, sizeof(err)) ||
	    time_calls(m, &c, 1, kv_frames > 3 ? 3 : kv_frames - 1, NULL, 0, iters, t, &hooked_ms, NULL, err, sizeof(err)))
		goto fail;
	/* a stream warm-up call: slot b has 2 + b frames cached (ragged key lengths) */
	if (nslots > 1) {
		fill_call(&c, nslots, 1, L, kv_frames, 0, 0, steps, 0);
		for (int b = 0; b < nslots; b++) {
			int fr = 2 + b < kv_frames ? 2 + b : kv_frames;

			c.kv_len[b] = fr * L;
			c.write_row[b] = (fr - 1) * L;
		}
		if (time_calls(m, &c, 0, 0, NULL, 0, iters, t, &ragged_ms, NULL, err, sizeof(err)))
			goto fail;
	}
	fill_call(&c, nslots, 1, L, kv_frames, 0, 0, steps, 0);
	if (dit_cuda_profile(m, &c, ms, err, sizeof(err)))
		goto fail;
	/* the adaptive-sink call, eager: twice, so the second uses the kept sink means */
	if (dit_cuda_profile_sink(m, &c, &sink, ms_sink, err, sizeof(err)) ||
	    dit_cuda_profile_sink(m, &c, &sink, ms_sink, err, sizeof(err)))
		goto fail;
	cudaMemGetInfo(&free1, &total);

	f_first = steps * forward_flops(d, 2.0 * L, 2.0 * L);
	f_call = calls_per_chunk * forward_flops(d, (double)nslots * L, (double)kv_frames * L);
	printf("\n%-34s %10s %12s %10s %12s\n", "", "median ms", "TFLOP", "TFLOP/s", "upstream ms");
	up = upstream_first_ms(is14b, is480, steps);
	{
		char ups[32] = "-";

		if (up > 0)
			snprintf(ups, sizeof(ups), "%.1f", up);
		printf("%-34s %10.2f %12.3f %10.1f %12s\n", "first chunk (S fwd, 1x2 frames)", first_ms,
		       f_first / 1e12, f_first / first_ms / 1e9, ups);
	}
	up = batch ? upstream_call_ms(is14b, is480 || height == 480, steps) : 0;
	printf("%-34s %10.2f %12.3f %10.1f %12.1f\n", batch ? "steady call (S slots, full cache)" : "steady chunk (S x 1 slot, full)",
	       steady_ms, f_call / 1e12, f_call / steady_ms / 1e9, up);
	printf("%-34s %10.2f %12s %10.1f\n", "  back-to-back (throughput)", tput_ms, "", f_call / tput_ms / 1e9);
	if (batch)
		printf("%-34s %10.2f   (one call every %.0f ms: a 30 fps camera)\n", "  paced like a live stream", paced_ms, pace_ms);
	printf("%-34s %10.2f\n", "  same call, adaptive sink (device)", sink_ms);
	printf("%-34s %10.2f\n", "  same, host-decided sink (eager)", hooked_ms);
	printf("%-34s %10.2f / %.2f (%+.2f)\n", "  plain / device sink, alternated", alt_plain_ms, alt_sink_ms,
	       alt_sink_ms - alt_plain_ms);
	if (ragged_ms > 0)
		printf("%-34s %10.2f\n", "warm-up call (ragged, 2..S+1 fr)", ragged_ms);
	if (pw_steady.j_per_call > 0) {
		double cap = energy.limit_mw / 1000.0;

		printf("\nenergy (NVML counter; power limit %.0f W, SM clock at the loop's end):\n", cap);
		printf("  steady (%d chunks back to back, %.1f s): %.2f J per chunk, mean %.0f W, %u MHz", pw_steady.calls,
		       pw_steady.ms / 1000, pw_steady.j_per_call, pw_steady.watts, pw_steady.mhz);
		if (cap > 0)
			printf("; at %.0f W a call of this energy takes >= %.2f ms", cap, pw_steady.j_per_call / cap * 1000);
		printf("\n");
		if (pw_paced.watts > 0) {
			double call_j = pw_paced.j_per_call - idle_w * (pace_ms - paced_ms) / 1000;

			printf("  paced (%d calls, %.1f s%s): mean %.0f W over the loop, %.2f J per %.0f ms period; less the\n"
			       "         gaps at the idle %.0f W: about %.1f J per call, %.0f W while it runs, %u MHz\n",
			       pw_paced.calls, pw_paced.ms / 1000, pw_paced.ms < ENERGY_MIN_MS ? ", too short to trust: --iters" : "",
			       pw_paced.watts, pw_paced.j_per_call, pace_ms, idle_w, call_j, call_j / paced_ms * 1000,
			       pw_paced.mhz);
		}
	}
	printf("\nper-component (one eager profiled %s call, event-timed):\n", batch ? "S-slot" : "1-slot");
	{
		double sum = 0;

		for (int i = 0; i < DIT_C_COUNT; i++)
			sum += ms[i];
		for (int i = 0; i < DIT_C_COUNT; i++)
			printf("  %-22s %8.3f ms  %5.1f%%\n", dit_cuda_comp_names[i], ms[i], sum > 0 ? 100 * ms[i] / sum : 0);
		printf("  %-22s %8.3f ms\n", "total (eager)", sum);
	}
	printf("\nper-component, the same call with the adaptive sink (eager, device-decided, kept means;\n"
	       "the sink statistics, decision and write count as norms/rope):\n");
	{
		double sum = 0;

		for (int i = 0; i < DIT_C_COUNT; i++)
			sum += ms_sink[i];
		for (int i = 0; i < DIT_C_COUNT; i++)
			printf("  %-22s %8.3f ms  %+7.3f\n", dit_cuda_comp_names[i], ms_sink[i], ms_sink[i] - ms[i]);
		printf("  %-22s %8.3f ms\n", "total (eager)", sum);
	}
	dit_cuda_get_counters(m, &cnt);
	printf("adaptive-sink calls %ld: %ld replayed from graphs, %ld on kept means\n", cnt.sink_forwards,
	       cnt.sink_graph_replays, cnt.sink_kept_means);
	printf("\nmemory: params %.2f GB, activations %.2f GB, KV+cross caches %.2f GB; device used %.2f GB of %.2f GB (peak, incl. workspaces and context)\n",
	       dit_cuda_param_bytes(m) / 1e9, dit_cuda_act_bytes(m) / 1e9, dit_cuda_cache_bytes(m) / 1e9,
	       (total - free1) / 1e9, total / 1e9);
	{
		char self_what[96], cross_what[96];

		dit_cuda_attn_variants(m, nslots, 1, kv_frames * L, self_what, cross_what, sizeof(self_what));
		printf("cuda graph: %s; self-attention: %s; cross-attention: %s\n",
		       dit_cuda_graphs_used(m) ? "yes" : "no", self_what, cross_what);
	}
	printf("RESULT model=%s res=%dx%d S=%d mode=%s first_ms=%.2f call_ms=%.2f tput_ms=%.2f tflops=%.1f sink_ms=%.2f hooked_ms=%.2f ragged_ms=%.2f alt_plain_ms=%.2f alt_sink_ms=%.2f paced_ms=%.2f steady_j=%.2f steady_w=%.0f steady_mhz=%u power_limit_w=%.0f\n",
	       is14b ? "14b" : "1.3b", height, width, steps, batch ? "batch" : "nobatch", first_ms,
	       steady_ms, tput_ms, f_call / steady_ms / 1e9, sink_ms, hooked_ms, ragged_ms, alt_plain_ms, alt_sink_ms, paced_ms,
	       pw_steady.j_per_call, pw_steady.watts, pw_steady.mhz, energy.limit_mw / 1000.0);
	(void)free0;
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "bench-dit: %s\n", err);
out:
	dit_cuda_free(m);
	free(t);
	free(t2);
	free(rings);
	free(rec);
	return rc;
}
#endif

int cli_bench_dit(int argc, char **argv)
{
	const char *model = NULL, *mode = "batch";
	int height = 0, width = 0, steps = 0, iters = 30, kv_frames = 6, seed = 1, graphs = 1, cudnn = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int bad = 0;

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "--no-graph")) {
			graphs = 0;
			continue;
		} else if (!strcmp(a, "--fallback-attn")) {
			cudnn = 0;
			continue;
		}
		if (!v) {
			fprintf(stderr, "bench-dit: option '%s' needs a value\n", a);
			usage(stderr);
			return 2;
		}
		if (!strcmp(a, "--model"))
			model = v;
		else if (!strcmp(a, "--mode"))
			mode = v;
		else if (!strcmp(a, "--height"))
			bad = cli_parse_int(v, 16, 4096, &height) || height % 16;
		else if (!strcmp(a, "--width"))
			bad = cli_parse_int(v, 16, 4096, &width) || width % 16;
		else if (!strcmp(a, "--steps"))
			bad = cli_parse_int(v, 1, 4, &steps);
		else if (!strcmp(a, "--iters"))
			bad = cli_parse_int(v, 1, 10000, &iters);
		else if (!strcmp(a, "--kv-frames"))
			bad = cli_parse_int(v, 4, 64, &kv_frames);
		else if (!strcmp(a, "--seed"))
			bad = cli_parse_int(v, 0, 1 << 30, &seed);
		else {
			fprintf(stderr, "bench-dit: unknown option '%s'\n", a);
			usage(stderr);
			return 2;
		}
		if (bad) {
			fprintf(stderr, "bench-dit: bad value '%s' for %s (height/width: multiples of 16; steps 1..4)\n", v, a);
			return 2;
		}
		i++;
	}
	if (!model || !height || !width || !steps) {
		fprintf(stderr, "bench-dit: --model, --height, --width and --steps are required\n");
		usage(stderr);
		return 2;
	}
	if (strcmp(model, "1.3b") && strcmp(model, "14b")) {
		fprintf(stderr, "bench-dit: unknown model '%s' (1.3b or 14b)\n", model);
		return 2;
	}
	if (strcmp(mode, "batch") && strcmp(mode, "nobatch")) {
		fprintf(stderr, "bench-dit: unknown mode '%s' (batch or nobatch)\n", mode);
		return 2;
	}
#ifdef HERU_HAVE_CUDA
	{
		int is14b = !strcmp(model, "14b");
		struct dit_cuda_dims d = {
			.dim = is14b ? 5120 : 1536, .ffn_dim = is14b ? 13824 : 8960,
			.num_heads = is14b ? 40 : 12, .num_layers = is14b ? 40 : 30,
			.text_len = 512, .text_dim = 4096, .freq_dim = 256, .eps = 1e-6,
		};

		return run_bench(&d, is14b, height, width, steps, !strcmp(mode, "batch"), iters,
				 kv_frames, (unsigned)seed, graphs, cudnn);
	}
#else
	(void)iters; (void)kv_frames; (void)seed; (void)graphs; (void)cudnn;
	fprintf(stderr, "bench-dit: this build has no CUDA (configure found no nvcc/cuBLASLt/cuDNN)\n");
	return 1;
#endif
}
