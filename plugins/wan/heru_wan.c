/* heru_wan.c: the heru-wan command line: main and the subcommand table. Each area adds its
 * subcommand in its own cli_<area>.c, one prototype in cli.h and one row below. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli.h"

struct cli_command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static const struct cli_command commands[] = {
	{ "inspect", cli_inspect, "list the tensors of a safetensors/.pt file (name, dtype, shape)" },
	{ "random-weights", cli_random_weights, "write a DiT checkpoint of random weights (real names)" },
	{ "dit-forward", cli_dit_forward, "one DiT forward with an empty cache (x, t, context -> flow)" },
	{ "stream", cli_stream, "the streaming denoiser over latents with injected noise (-> x0)" },
	{ "tokenize", cli_tokenize, "umT5 token ids of a prompt as Wan makes them (JSON array)" },
	{ "t5-encode", cli_t5_encode, "umT5 encoder: ids and mask [1,L] to context [1,L,dim]" },
	{ "encode-prompt", cli_encode_prompt, "prompt text to the [1,512,dim] context the DiT attends to" },
	{ "bench-t5", cli_bench_t5, "time the umT5 encoder on random weights of the real shape" },
	{ "vae-encode", cli_vae_encode, "encode frames [T,3,H,W] to raw latents with the Wan VAE (streamed)" },
	{ "vae-decode", cli_vae_decode, "decode latents [F,16,h,w] to frames with the Wan VAE (streamed)" },
	{ "taehv-decode", cli_taehv_decode, "decode latents to frames with TAEHV (SDV2 context or --incremental)" },
	{ "bench-vae", cli_bench_vae, "time the VAE encode/decode and TAEHV (random weights)" },
	{ "bench-dit", cli_bench_dit, "time the CUDA DiT with random weights of the real shapes" },
	{ "random-vae", cli_random_vae, "write Wan VAE (and TAEHV) random weights of the real shapes" },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: heru-wan COMMAND [OPTIONS]   (heru-wan COMMAND --help for its options)\n\n"
		"commands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(out, "  %-16s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("heru-wan %s\n", PACKAGE_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "heru-wan: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
