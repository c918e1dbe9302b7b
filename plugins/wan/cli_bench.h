/* cli_bench.h: `heru-wan bench-dit` (the CUDA DiT benchmark). */
#ifndef WAN_CLI_BENCH_H
#define WAN_CLI_BENCH_H

/* Returns the exit status: 0, 1 on errors (one line on stderr), 2 on usage errors. */
int cli_bench_dit(int argc, char **argv);

#endif
