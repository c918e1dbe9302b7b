/* gpu_energy.c: see gpu_energy.h. */
#include "plugins/wan/cuda/gpu_energy.h"

#include <cuda_runtime.h>
#include <dlfcn.h>
#include <string.h>

int wan_energy_open(struct wan_energy *e)
{
	int (*init)(void), (*by_bus)(const char *, void **), (*limit)(void *, unsigned int *);
	char bus[32];
	int dev = 0;

	memset(e, 0, sizeof(*e));
	e->lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!e->lib)
		return -1;
	init = (int (*)(void))dlsym(e->lib, "nvmlInit_v2");
	by_bus = (int (*)(const char *, void **))dlsym(e->lib, "nvmlDeviceGetHandleByPciBusId_v2");
	limit = (int (*)(void *, unsigned int *))dlsym(e->lib, "nvmlDeviceGetEnforcedPowerLimit");
	e->energy = (int (*)(void *, unsigned long long *))dlsym(e->lib, "nvmlDeviceGetTotalEnergyConsumption");
	e->clock = (int (*)(void *, int, unsigned int *))dlsym(e->lib, "nvmlDeviceGetClockInfo");
	/* NVML numbers devices its own way: find the CUDA device by its PCI bus id */
	if (!init || !by_bus || !e->energy || !e->clock || init() != 0 || cudaGetDevice(&dev) != cudaSuccess ||
	    cudaDeviceGetPCIBusId(bus, (int)sizeof(bus), dev) != cudaSuccess || by_bus(bus, &e->dev) != 0) {
		cudaGetLastError();
		e->dev = NULL;
		return -1;
	}
	if (limit && limit(e->dev, &e->limit_mw) != 0)
		e->limit_mw = 0;
	return 0;
}

double wan_energy_mj(const struct wan_energy *e)
{
	unsigned long long mj = 0;

	return e->dev && e->energy(e->dev, &mj) == 0 ? (double)mj : -1;
}

unsigned int wan_energy_sm_mhz(const struct wan_energy *e)
{
	unsigned int mhz = 0;

	return e->dev && e->clock(e->dev, 1 /* NVML_CLOCK_SM */, &mhz) == 0 ? mhz : 0;
}
