/* gpu_energy.h: the GPU's energy counter, power limit and SM clock through NVML.
 *
 * Back-to-back DiT calls hold an H100 at its power limit (700 W), where a call's time follows
 * its energy (NOTES.md "energy"); the benchmarks print joules next to milliseconds. NVML is
 * loaded at run time (the driver ships libnvidia-ml.so.1), so there is no build dependency;
 * without it every query says "unknown" and the callers leave their energy lines out. */
#ifndef HERU_WAN_GPU_ENERGY_H
#define HERU_WAN_GPU_ENERGY_H

struct wan_energy {
	void *lib, *dev;
	int (*energy)(void *dev, unsigned long long *mj);
	int (*clock)(void *dev, int type, unsigned int *mhz);
	unsigned int limit_mw; /* the enforced power limit, 0 if unknown */
};

/* Opens NVML for the current CUDA device. Returns 0, or -1 (E stays usable: unknown). */
int wan_energy_open(struct wan_energy *e);
/* Millijoules the GPU used since the driver loaded, or -1 if unknown. */
double wan_energy_mj(const struct wan_energy *e);
/* The SM clock now in MHz, or 0 if unknown. */
unsigned int wan_energy_sm_mhz(const struct wan_energy *e);

#endif
