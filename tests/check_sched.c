/* check_sched.c: the flow-matching σ grid and lookup against spec §4.2's table, the step
 * lists, the first-timestep rule and the motion-aware noise controller (§4.3). */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check_util.h"
#include "wan_sched.h"

START_TEST(test_sigma_table)
{
	/* t, grid index, grid timestep, σ: spec §4.2 */
	static const struct { int t, idx; double grid_t, sigma; } tab[] = {
		{ 1000, 0, 1000.0, 1.0 },        { 750, 727, 750.2577, 0.750258 },
		{ 700, 774, 700.2324, 0.700232 }, { 690, 782, 690.4197, 0.690420 },
		{ 650, 812, 649.3955, 0.649396 }, { 600, 842, 600.1900, 0.600190 },
		{ 500, 889, 499.7186, 0.499719 }, { 400, 923, 400.2599, 0.400260 },
		{ 250, 960, 250.0000, 0.250000 }, { 200, 970, 198.3471, 0.198347 },
		{ 100, 986, 102.0036, 0.102004 }, { 0, 999, 7.9444, 0.007944 },
	};
	struct wan_sched s;
	wan_sched_init(&s);
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		int k = wan_sched_index(&s, tab[i].t);
		ck_assert_int_eq(k, tab[i].idx);
		ck_assert_double_eq_tol(s.timestep[k], tab[i].grid_t, 1e-4);
		ck_assert_double_eq_tol(wan_sched_sigma(&s, tab[i].t), tab[i].sigma, 1e-6);
	}
	/* σ is not t/1000 */
	ck_assert(fabs(wan_sched_sigma(&s, 200) - 0.2) > 1e-3);
	/* the grid decreases strictly */
	for (int i = 1; i < WAN_SCHED_GRID; i++)
		ck_assert(s.timestep[i] < s.timestep[i - 1]);
}
END_TEST

START_TEST(test_step_lists)
{
	int64_t l[WAN_MAX_STEPS];
	char err[128];
	ck_assert_int_eq(wan_step_list(1, l, err, sizeof(err)), 0);
	ck_assert_int_eq(l[0], 700);
	ck_assert_int_eq(wan_step_list(4, l, err, sizeof(err)), 0);
	ck_assert(l[0] == 700 && l[1] == 500 && l[2] == 400 && l[3] == 200);
	ck_assert_int_eq(wan_step_list(2, l, err, sizeof(err)), 0);
	ck_assert(l[0] == 700 && l[1] == 500);
	for (int s = 1; s <= WAN_MAX_STEPS; s++) {
		ck_assert_int_eq(wan_step_list(s, l, err, sizeof(err)), 0);
		ck_assert_int_eq(l[0], 700);
		for (int i = 1; i < s; i++) {
			ck_assert(l[i] < l[i - 1]);
			ck_assert(l[i] >= 100);
		}
	}
	ck_assert_int_eq(wan_step_list(0, l, err, sizeof(err)), -1);
	ck_assert_int_eq(wan_step_list(9, l, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "steps"));
}
END_TEST

START_TEST(test_first_step)
{
	ck_assert_int_eq(wan_first_step(0.8), 700);
	ck_assert_int_eq(wan_first_step((float)0.7), 600); /* 0.69999999 as float32 */
	ck_assert_int_eq(wan_first_step(0.7), 600);
	ck_assert_int_eq(wan_first_step(0.7549), 654);
	ck_assert(wan_noise_scale_valid(0.1) && wan_noise_scale_valid(1.0));
	ck_assert(!wan_noise_scale_valid(0.05) && !wan_noise_scale_valid(1.01));
	ck_assert(!wan_noise_scale_valid(NAN));
}
END_TEST

START_TEST(test_noise_controller)
{
	/* 3 channels, 5 frames (previous + 4), 4 pixels */
	float v[3 * 5 * 4];
	struct wan_noise_ctl c;
	int64_t step;
	wan_noise_ctl_init(&c, 0.8);
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		v[i] = 0.25f;
	/* static input: s stays 0.8, step 700 */
	double s = wan_noise_ctl_update(&c, v, 3, 4, 4, &step);
	ck_assert_double_eq_tol(s, 0.8, 1e-12);
	ck_assert_int_eq(step, 700);
	/* maximal motion in one frame: d = 1 >= 0.2, dhat = 1, s = 0.9*0.7 + 0.1*0.8 = 0.71 */
	for (int ch = 0; ch < 3; ch++)
		for (int p = 0; p < 4; p++)
			v[(ch * 5 + 3) * 4 + p] = -0.75f;
	s = wan_noise_ctl_update(&c, v, 3, 4, 4, &step);
	ck_assert_double_eq_tol(s, 0.71, 1e-12);
	ck_assert_int_eq(step, 610);
	/* small motion: one frame differs by 0.125 everywhere -> d = 0.125, dhat = 0.625:
	 * s = 0.9*(0.8 - 0.0625) + 0.1*0.71 = 0.73475 */
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		v[i] = 0.0f;
	for (int ch = 0; ch < 3; ch++)
		for (int p = 0; p < 4; p++)
			v[(ch * 5 + 4) * 4 + p] = 0.125f;
	s = wan_noise_ctl_update(&c, v, 3, 4, 4, &step);
	ck_assert_double_eq_tol(s, 0.73475, 1e-12);
	ck_assert_int_eq(step, 634);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sched");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_sigma_table);
	tcase_add_test(tc, test_step_lists);
	tcase_add_test(tc, test_first_step);
	tcase_add_test(tc, test_noise_controller);
	suite_add_tcase(s, tc);
	return check_run_suite(s);
}
