/* check_config.c: the session config schema: defaults, merge patch, validation,
 * presets and backend resolution (server/cfg.c). */
#include "config.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <string.h>

#include "cfg.h"
#include "check_util.h"

static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);
	ck_assert_msg(j != NULL, "bad test JSON: %s", e.text);
	return j;
}

/* Does ERRORS name FIELD with a reason containing WORDS? */
static int has_error(const json_t *errors, const char *field, const char *words)
{
	size_t i;
	json_t *e;
	json_array_foreach(errors, i, e) {
		if (strcmp(json_string_value(json_object_get(e, "field")), field) == 0 &&
		    strstr(json_string_value(json_object_get(e, "reason")), words))
			return 1;
	}
	return 0;
}

START_TEST(defaults_are_valid)
{
	json_t *d = cfg_defaults(), *errors = json_array();
	ck_assert_int_eq(cfg_validate(d, errors), 0);
	ck_assert_int_eq(json_array_size(errors), 0);
	ck_assert_str_eq(cfg_str(d, "backend"), "mock");
	ck_assert_int_eq((int)cfg_num(d, "output_width"), 512);
	ck_assert(json_is_null(json_object_get(d, "A")));
	json_decref(d);
	json_decref(errors);
}
END_TEST

START_TEST(merge_applies_fields)
{
	json_t *d = cfg_defaults(), *errors = json_array(), *out;
	json_t *patch = parse("{\"prompt\":\"neon city\",\"prompt_dominance\":0.25,\"target_fps\":24}");
	ck_assert_int_eq(cfg_merge(d, patch, &out, errors), 0);
	ck_assert_str_eq(cfg_str(out, "prompt"), "neon city");
	ck_assert(cfg_num(out, "prompt_dominance") == 0.25);
	ck_assert_int_eq((int)cfg_num(out, "target_fps"), 24);
	ck_assert(!cfg_restart_changed(d, out));
	ck_assert(cfg_live_changed(d, out));
	/* the input is untouched */
	ck_assert_str_ne(cfg_str(d, "prompt"), "neon city");
	json_decref(out);
	json_decref(patch);
	json_decref(d);
	json_decref(errors);
}
END_TEST

START_TEST(null_resets_to_default)
{
	json_t *d = cfg_defaults(), *errors = json_array(), *a, *b;
	json_t *p1 = parse("{\"seed\":7,\"A\":{\"prompt\":\"x\",\"pose_lock\":0.5}}");
	json_t *p2 = parse("{\"seed\":null,\"A\":{\"pose_lock\":null}}");
	json_t *p3 = parse("{\"A\":null}");
	ck_assert_int_eq(cfg_merge(d, p1, &a, errors), 0);
	ck_assert_int_eq((int)cfg_num(a, "seed"), 7);
	ck_assert_int_eq(cfg_merge(a, p2, &b, errors), 0);
	ck_assert_int_eq((int)cfg_num(b, "seed"), 42);
	/* RFC 7396 inside a preset: null removes the member, the rest stays */
	ck_assert_ptr_null(json_object_get(json_object_get(b, "A"), "pose_lock"));
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(b, "A"), "prompt")), "x");
	json_decref(a);
	ck_assert_int_eq(cfg_merge(b, p3, &a, errors), 0);
	ck_assert(json_is_null(json_object_get(a, "A")));
	json_decref(a);
	json_decref(b);
	json_decref(p1);
	json_decref(p2);
	json_decref(p3);
	json_decref(d);
	json_decref(errors);
}
END_TEST

START_TEST(every_bad_field_is_listed)
{
	json_t *d = cfg_defaults(), *errors = json_array(), *out = (json_t *)1;
	json_t *patch = parse("{\"prompt\":5,\"prompt_dominance\":1.5,\"pose_lock\":\"high\",\"target_fps\":30.5,"
			      "\"output_width\":100,\"inference_steps\":9,\"model_variant\":\"wan-7b\","
			      "\"revision\":3,\"runtime_status\":{},\"colour\":\"red\",\"backend\":\"../x\","
			      "\"A\":{\"target_fps\":5},\"B\":7}");
	ck_assert_int_eq(cfg_merge(d, patch, &out, errors), -1);
	ck_assert_ptr_null(out);
	ck_assert(has_error(errors, "prompt", "string"));
	ck_assert(has_error(errors, "prompt_dominance", "between 0 and 1"));
	ck_assert(has_error(errors, "pose_lock", "number"));
	ck_assert(has_error(errors, "target_fps", "integer"));
	ck_assert(has_error(errors, "output_width", "multiple of 8"));
	ck_assert(has_error(errors, "inference_steps", "between 1 and 8"));
	ck_assert(has_error(errors, "model_variant", "wan-1.3b or wan-14b"));
	ck_assert(has_error(errors, "revision", "read-only"));
	ck_assert(has_error(errors, "runtime_status", "read-only"));
	ck_assert(has_error(errors, "colour", "unknown field"));
	ck_assert(has_error(errors, "backend", "plugin id"));
	ck_assert(has_error(errors, "A.target_fps", "not a preset field"));
	ck_assert(has_error(errors, "B", "null or an object"));
	ck_assert_int_eq(json_array_size(errors), 13);
	json_decref(patch);
	json_decref(d);
	json_decref(errors);
}
END_TEST

START_TEST(patch_must_be_object)
{
	json_t *d = cfg_defaults(), *errors = json_array(), *out;
	json_t *patch = parse("[1,2]");
	ck_assert_int_eq(cfg_merge(d, patch, &out, errors), -1);
	ck_assert_int_eq(json_array_size(errors), 1);
	json_decref(patch);
	json_decref(d);
	json_decref(errors);
}
END_TEST

START_TEST(string_limits)
{
	json_t *d = cfg_defaults(), *errors = json_array(), *out;
	char big[2100];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	json_t *patch = json_pack("{s:s}", "prompt", big);
	ck_assert_int_eq(cfg_merge(d, patch, &out, errors), -1);
	ck_assert(has_error(errors, "prompt", "at most 2000 bytes"));
	json_decref(patch);
	json_decref(d);
	json_decref(errors);
}
END_TEST

START_TEST(backend_auto_mapping)
{
	json_t *d = cfg_defaults(), *errors = json_array(), *a, *b, *c;
	json_t *p1 = parse("{\"model_variant\":\"wan-1.3b\"}"); /* no change: stays mock */
	json_t *p2 = parse("{\"inference_topology\":\"distributed\",\"distributed_world_size\":2}");
	json_t *p3 = parse("{\"model_variant\":\"wan-14b\",\"backend\":\"mock\"}");
	ck_assert_int_eq(cfg_merge(d, p1, &a, errors), 0);
	ck_assert_str_eq(cfg_backend_id(a), "mock");
	ck_assert_int_eq(cfg_merge(d, p2, &b, errors), 0);
	ck_assert_str_eq(cfg_str(b, "backend"), "auto");
	ck_assert_str_eq(cfg_backend_id(b), "wan14b_dist");
	ck_assert(cfg_restart_changed(d, b));
	ck_assert_int_eq(cfg_merge(d, p3, &c, errors), 0);
	ck_assert_str_eq(cfg_backend_id(c), "mock");
	json_object_set_new(c, "backend", json_string("auto"));
	ck_assert_str_eq(cfg_backend_id(c), "wan14b_dist");
	json_object_set_new(c, "model_variant", json_string("wan-1.3b"));
	ck_assert_str_eq(cfg_backend_id(c), "wan13b_cuda");
	json_decref(a);
	json_decref(b);
	json_decref(c);
	json_decref(p1);
	json_decref(p2);
	json_decref(p3);
	json_decref(d);
	json_decref(errors);
}
END_TEST

static json_t *with_presets(void)
{
	json_t *d = cfg_defaults(), *errors = json_array(), *out;
	json_t *p = parse("{\"A\":{\"prompt\":\"ink sketch\",\"prompt_dominance\":0.2,\"pose_lock\":1},"
			  "\"B\":{\"prompt\":\"neon\",\"prompt_dominance\":1.0}}");
	ck_assert_int_eq(cfg_merge(d, p, &out, errors), 0);
	json_decref(p);
	json_decref(d);
	json_decref(errors);
	return out;
}

START_TEST(preset_apply_and_mix)
{
	json_t *cfg = with_presets(), *errors = json_array(), *patch, *out;
	json_t *pa = parse("{\"preset\":\"A\"}"), *pm = parse("{\"mix\":0.75}");

	ck_assert_int_eq(cfg_preset_patch(cfg, pa, &patch, errors), 0);
	ck_assert_int_eq(cfg_merge(cfg, patch, &out, errors), 0);
	ck_assert_str_eq(cfg_str(out, "prompt"), "ink sketch");
	ck_assert(cfg_num(out, "pose_lock") == 1);
	json_decref(patch);
	json_decref(out);

	ck_assert_int_eq(cfg_preset_patch(cfg, pm, &patch, errors), 0);
	ck_assert_int_eq(cfg_merge(cfg, patch, &out, errors), 0);
	ck_assert_str_eq(cfg_str(out, "prompt"), "neon"); /* the nearer preset's prompt */
	ck_assert(fabs(cfg_num(out, "prompt_dominance") - (0.2 * 0.25 + 1.0 * 0.75)) < 1e-9);
	/* B lacks pose_lock: the current value (0) stands in for it */
	ck_assert(fabs(cfg_num(out, "pose_lock") - 0.25) < 1e-9);
	json_decref(patch);
	json_decref(out);
	json_decref(pa);
	json_decref(pm);
	json_decref(cfg);
	json_decref(errors);
}
END_TEST

START_TEST(preset_errors)
{
	json_t *d = cfg_defaults(), *cfg = with_presets(), *errors = json_array(), *patch;
	const char *bad[] = { "{\"preset\":\"C\"}", "{\"mix\":1.5}", "{\"mix\":\"half\"}", "{}",
			      "{\"preset\":\"A\",\"mix\":0.5}", "{\"preset\":\"A\",\"x\":1}" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *p = parse(bad[i]);
		json_array_clear(errors);
		ck_assert_msg(cfg_preset_patch(cfg, p, &patch, errors) == -1, "accepted %s", bad[i]);
		ck_assert_ptr_null(patch);
		ck_assert_int_ge(json_array_size(errors), 1);
		json_decref(p);
	}
	/* presets not saved */
	json_t *pa = parse("{\"preset\":\"B\"}"), *pm = parse("{\"mix\":0.5}");
	json_array_clear(errors);
	ck_assert_int_eq(cfg_preset_patch(d, pa, &patch, errors), -1);
	ck_assert(has_error(errors, "preset", "not saved"));
	ck_assert_int_eq(cfg_preset_patch(d, pm, &patch, errors), -1);
	json_decref(pa);
	json_decref(pm);
	json_decref(cfg);
	json_decref(d);
	json_decref(errors);
}
END_TEST

START_TEST(schema_lists_every_field)
{
	json_t *schema = cfg_schema_json(), *d = cfg_defaults();
	size_t i;
	json_t *f;
	ck_assert_int_eq(json_array_size(schema), json_object_size(d));
	json_array_foreach(schema, i, f) {
		const char *name = json_string_value(json_object_get(f, "name"));
		const char *apply = json_string_value(json_object_get(f, "apply"));
		ck_assert_ptr_nonnull(json_object_get(d, name));
		ck_assert(strcmp(apply, "live") == 0 || strcmp(apply, "restart") == 0);
		ck_assert(json_equal(json_object_get(f, "default"), json_object_get(d, name)));
	}
	json_decref(schema);
	json_decref(d);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, defaults_are_valid);
	tcase_add_test(tc, merge_applies_fields);
	tcase_add_test(tc, null_resets_to_default);
	tcase_add_test(tc, every_bad_field_is_listed);
	tcase_add_test(tc, patch_must_be_object);
	tcase_add_test(tc, string_limits);
	tcase_add_test(tc, backend_auto_mapping);
	tcase_add_test(tc, preset_apply_and_mix);
	tcase_add_test(tc, preset_errors);
	tcase_add_test(tc, schema_lists_every_field);
	suite_add_tcase(s, tc);
	return check_run_suite(s);
}
