/* dit_test_util.h: helpers shared by the DiT tests (check_dit, gpu_dit_stream, check_wt_file):
 * the reference script's weight generator (tests/reference/wan_dit_ref.py), the tiny model's
 * weights file written from it, relative L2 error, running a heru-wan subcommand from a
 * NULL-terminated argument list, and joining a folder and a file name. */
#ifndef HERU_DIT_TEST_UTIL_H
#define HERU_DIT_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "wan_config.h"

/* Four rotating path buffers: a path returned from one stays valid for three more calls on it. */
struct test_path_ring {
	char buf[4][1200];
	int k;
};

/* DIR/NAME in the next buffer of RING. */
const char *test_path(struct test_path_ring *ring, const char *dir, const char *name);

/* The N values of the tensor NAME, bit for bit as wan_dit_ref.py generates them. */
void dit_weight_values(const char *name, float *dst, int64_t n);

/* Writes the generated weights of CFG to PATH with PREFIX on every name. 0 or -1 with ERR. */
int dit_write_weights(const struct wan_dit_config *cfg, const char *path, const char *prefix,
		      char *err, size_t errlen);

/* ||a - b|| / ||b|| over N values (||b|| = 0 counts as 1). */
double rel_l2(const float *a, const float *b, int64_t n);

/* CMD(argc, argv) with ARGS (NULL-terminated, at most 39 entries) as argv. */
int run_cli(int (*cmd)(int, char **), const char *const *args);

#endif
