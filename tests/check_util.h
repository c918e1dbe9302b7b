/* check_util.h: the runner every Check suite's main() shares. */
#ifndef HERU_CHECK_UTIL_H
#define HERU_CHECK_UTIL_H

#include <check.h>
#include <stdlib.h>

/* Runs every test of S (forking, CK_NORMAL output), frees the runner and returns the process
 * exit status: EXIT_SUCCESS when none failed, EXIT_FAILURE otherwise. */
static inline int check_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
