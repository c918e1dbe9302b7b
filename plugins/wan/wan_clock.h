/* wan_clock.h: the monotonic millisecond clock of the Wan engine's timers, benchmarks and
 * traces (header-only, so every library and test of the area shares one definition). */
#ifndef HERU_WAN_CLOCK_H
#define HERU_WAN_CLOCK_H

#include <time.h>

static inline double wan_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

#endif
