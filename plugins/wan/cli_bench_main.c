/* cli_bench_main.c: standalone entry for the DiT benchmark until it is a heru-wan
 * subcommand (`heru-wan bench-dit`). */
#include "plugins/wan/cli_bench.h"

int main(int argc, char **argv)
{
	return cli_bench_dit(argc, argv);
}
