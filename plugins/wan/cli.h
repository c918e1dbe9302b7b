/* cli.h: heru-wan subcommands. Each returns the process exit status: 0 success, 1 error (one
 * line on stderr), 2 usage error. ARGV[0] is the subcommand name. The table is in heru_wan.c. */
#ifndef HERU_WAN_CLI_H
#define HERU_WAN_CLI_H

int cli_inspect(int argc, char **argv);
int cli_random_weights(int argc, char **argv);
int cli_dit_forward(int argc, char **argv);
int cli_stream(int argc, char **argv);
int cli_tokenize(int argc, char **argv);
int cli_t5_encode(int argc, char **argv);
int cli_encode_prompt(int argc, char **argv);
int cli_bench_t5(int argc, char **argv);
int cli_vae_encode(int argc, char **argv);
int cli_vae_decode(int argc, char **argv);
int cli_taehv_decode(int argc, char **argv);
int cli_bench_vae(int argc, char **argv);
int cli_bench_dit(int argc, char **argv);
int cli_random_vae(int argc, char **argv);

#include <stdlib.h>

/* Parses S as a whole decimal number in [LO, HI] into *OUT; -1 (and *OUT unchanged) if it
 * is empty, has anything after the digits, or is out of range. Shared by the subcommands. */
static inline int cli_parse_int(const char *s, int lo, int hi, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (!*s || *end || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

#endif
