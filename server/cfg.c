/* cfg.c: the session config schema and its merge/validate/preset rules.
 *
 * DESIGN
 * Every field lives in ONE table below (name, type, range, default, live|restart).
 * Everything else (defaults, validation, --print-schema, restart detection) is derived
 * from it, so adding a field is one line. A change is a JSON merge patch (RFC 7396):
 * a member set to null returns the field to its default (for the presets A/B: clears
 * the preset, or inside a preset removes that member). The whole merged result is
 * validated before anything is applied, so a bad patch changes nothing and every bad
 * field is reported with its reason. "live" fields are pushed to the running backend;
 * a change to a "restart" field rebuilds the backend instance (hot swap, pipeline.c). */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cfg.h"

enum cfg_type { CFG_STRING, CFG_NUMBER, CFG_INT, CFG_ENUM, CFG_ID, CFG_PRESET };
enum cfg_apply { CFG_LIVE, CFG_RESTART };

struct cfg_field {
	const char *name;
	enum cfg_type type;
	double min, max;	    /* numbers: range; strings: max length in bytes */
	const char *const *choices; /* CFG_ENUM: NULL-terminated */
	const char *def_str;	    /* default for strings/enums/ids */
	double def_num;		    /* default for numbers */
	int multiple_of;	    /* CFG_INT: value must be a multiple (0: any) */
	enum cfg_apply apply;
	bool in_preset;		    /* may appear inside preset A/B */
	const char *help;
};

static const char *const cfg_variants[] = { "wan-1.3b", "wan-14b", NULL };
static const char *const cfg_topologies[] = { "single", "distributed", NULL };
static const char *const cfg_vaes[] = { "wan", "taehv", NULL };

/* THE schema table. */
static const struct cfg_field cfg_fields[] = {
	{ "prompt", CFG_STRING, 0, 2000, NULL, "a watercolor painting, soft pastel colors", 0, 0, CFG_LIVE, true,
	  "text prompt that steers the style" },
	{ "prompt_dominance", CFG_NUMBER, 0, 1, NULL, NULL, 0.6, 0, CFG_LIVE, true,
	  "how far the output may depart from the camera (denoising strength)" },
	{ "pose_lock", CFG_NUMBER, 0, 1, NULL, NULL, 0, 0, CFG_LIVE, true, "preserve the pose skeleton regions" },
	{ "depth_lock", CFG_NUMBER, 0, 1, NULL, NULL, 0, 0, CFG_LIVE, true, "preserve the depth structure" },
	{ "seg_lock", CFG_NUMBER, 0, 1, NULL, NULL, 0, 0, CFG_LIVE, true, "preserve the segmented person" },
	{ "motion_lock", CFG_NUMBER, 0, 1, NULL, NULL, 0, 0, CFG_LIVE, true, "temporal stability / smoothing" },
	{ "A", CFG_PRESET, 0, 0, NULL, NULL, 0, 0, CFG_LIVE, false, "preset A: null or an object of live fields" },
	{ "B", CFG_PRESET, 0, 0, NULL, NULL, 0, 0, CFG_LIVE, false, "preset B: null or an object of live fields" },
	{ "backend", CFG_ID, 0, 64, NULL, "mock", 0, 0, CFG_RESTART, false,
	  "mock, auto (from model_variant/inference_topology) or a plugin id" },
	{ "model_variant", CFG_ENUM, 0, 0, cfg_variants, "wan-1.3b", 0, 0, CFG_RESTART, false, "Wan model size" },
	{ "inference_topology", CFG_ENUM, 0, 0, cfg_topologies, "single", 0, 0, CFG_RESTART, false,
	  "one GPU or several" },
	{ "distributed_world_size", CFG_INT, 1, 8, NULL, NULL, 1, 0, CFG_RESTART, false,
	  "GPUs used by the distributed topology" },
	{ "inference_steps", CFG_INT, 1, 8, NULL, NULL, 2, 0, CFG_RESTART, false, "denoising steps per chunk" },
	{ "target_fps", CFG_INT, 5, 60, NULL, NULL, 30, 0, CFG_LIVE, false, "output frame rate cap" },
	{ "output_width", CFG_INT, 64, 2048, NULL, NULL, 512, 8, CFG_LIVE, false, "output width in pixels" },
	{ "output_height", CFG_INT, 64, 2048, NULL, NULL, 512, 8, CFG_LIVE, false, "output height in pixels" },
	{ "weights_path", CFG_STRING, 0, CFG_MAX_STRING, NULL, "", 0, 0, CFG_RESTART, false,
	  "model weights folder; empty: $STREAMDIFFUSIONV2_PATH or $HERU_WEIGHTS" },
	{ "seed", CFG_INT, 0, 2147483647.0, NULL, NULL, 42, 0, CFG_LIVE, false, "noise seed" },
	{ "vae", CFG_ENUM, 0, 0, cfg_vaes, "taehv", 0, 0, CFG_RESTART, false, "decoder: full Wan VAE or TAEHV" },
};
#define CFG_NFIELDS (sizeof(cfg_fields) / sizeof(cfg_fields[0]))

static const struct cfg_field *cfg_find(const char *name)
{
	for (size_t i = 0; i < CFG_NFIELDS; i++)
		if (strcmp(cfg_fields[i].name, name) == 0)
			return &cfg_fields[i];
	return NULL;
}

static json_t *cfg_default_value(const struct cfg_field *f)
{
	switch (f->type) {
	case CFG_STRING:
	case CFG_ENUM:
	case CFG_ID:
		return json_string(f->def_str);
	case CFG_NUMBER:
		return json_real(f->def_num);
	case CFG_INT:
		return json_integer((json_int_t)f->def_num);
	case CFG_PRESET:
		return json_null();
	}
	return json_null();
}

json_t *cfg_defaults(void)
{
	json_t *cfg = json_object();
	if (!cfg)
		return NULL;
	for (size_t i = 0; i < CFG_NFIELDS; i++)
		json_object_set_new(cfg, cfg_fields[i].name, cfg_default_value(&cfg_fields[i]));
	return cfg;
}

/* A JSON string of S with any byte that is not printable ASCII replaced by '?' (a
 * client-supplied name cut at a length limit may end mid UTF-8 sequence). */
static json_t *cfg_json_text(const char *s)
{
	json_t *j = json_string(s);
	if (j)
		return j;
	char buf[320];
	size_t i;
	for (i = 0; s[i] && i + 1 < sizeof(buf); i++)
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	buf[i] = 0;
	return json_string(buf);
}

static void cfg_err(json_t *errors, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void cfg_err(json_t *errors, const char *field, const char *fmt, ...)
{
	char reason[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	json_array_append_new(errors, json_pack("{s:o,s:o}", "field", cfg_json_text(field), "reason",
						cfg_json_text(reason)));
}

static bool cfg_id_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

/* Validate one value against its field; NAME is how errors name it. */
static int cfg_check_value(const struct cfg_field *f, const char *name, const json_t *v, json_t *errors);

static int cfg_check_preset(const char *name, const json_t *v, json_t *errors)
{
	const char *key;
	json_t *sub;
	int rc = 0;
	char path[96];

	if (json_is_null(v))
		return 0;
	if (!json_is_object(v)) {
		cfg_err(errors, name, "must be null or an object of live fields");
		return -1;
	}
	json_object_foreach((json_t *)v, key, sub) {
		const struct cfg_field *f = cfg_find(key);
		snprintf(path, sizeof(path), "%s.%.64s", name, key);
		if (!f || !f->in_preset) {
			cfg_err(errors, path, "is not a preset field (allowed: prompt, prompt_dominance, "
					      "pose_lock, depth_lock, seg_lock, motion_lock)");
			rc = -1;
			continue;
		}
		if (cfg_check_value(f, path, sub, errors) < 0)
			rc = -1;
	}
	return rc;
}

static int cfg_check_value(const struct cfg_field *f, const char *name, const json_t *v, json_t *errors)
{
	switch (f->type) {
	case CFG_STRING:
		if (!json_is_string(v)) {
			cfg_err(errors, name, "must be a string");
			return -1;
		}
		if (json_string_length(v) > (size_t)f->max) {
			cfg_err(errors, name, "must be at most %.0f bytes long", f->max);
			return -1;
		}
		if (strlen(json_string_value(v)) != json_string_length(v)) {
			cfg_err(errors, name, "must not contain NUL characters");
			return -1;
		}
		return 0;
	case CFG_ENUM:
		if (json_is_string(v)) {
			for (const char *const *c = f->choices; *c; c++)
				if (strcmp(*c, json_string_value(v)) == 0)
					return 0;
		}
		{
			char list[128] = "";
			for (const char *const *c = f->choices; *c; c++) {
				strncat(list, *c, sizeof(list) - strlen(list) - 1);
				if (c[1])
					strncat(list, " or ", sizeof(list) - strlen(list) - 1);
			}
			cfg_err(errors, name, "must be %s", list);
		}
		return -1;
	case CFG_ID:
		if (!json_is_string(v) || !cfg_id_ok(json_string_value(v))) {
			cfg_err(errors, name, "must be \"mock\", \"auto\" or a plugin id ([a-z0-9_.-], 1 to 64 characters)");
			return -1;
		}
		return 0;
	case CFG_NUMBER:
		if (!json_is_number(v)) {
			cfg_err(errors, name, "must be a number");
			return -1;
		}
		if (!(json_number_value(v) >= f->min && json_number_value(v) <= f->max)) {
			cfg_err(errors, name, "must be between %g and %g", f->min, f->max);
			return -1;
		}
		return 0;
	case CFG_INT: {
		double d;
		if (json_is_integer(v))
			d = (double)json_integer_value(v);
		else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)))
			d = json_real_value(v);
		else {
			cfg_err(errors, name, "must be an integer");
			return -1;
		}
		if (!(d >= f->min && d <= f->max)) {
			cfg_err(errors, name, "must be between %g and %g", f->min, f->max);
			return -1;
		}
		if (f->multiple_of && fmod(d, f->multiple_of) != 0) {
			cfg_err(errors, name, "must be a multiple of %d", f->multiple_of);
			return -1;
		}
		return 0;
	}
	case CFG_PRESET:
		return cfg_check_preset(name, v, errors);
	}
	return -1;
}

int cfg_validate(const json_t *cfg, json_t *errors)
{
	const char *key;
	json_t *v;
	int rc = 0;

	if (!json_is_object(cfg)) {
		cfg_err(errors, "", "config must be a JSON object");
		return -1;
	}
	json_object_foreach((json_t *)cfg, key, v) {
		const struct cfg_field *f = cfg_find(key);
		if (!f) {
			cfg_err(errors, key, "unknown field");
			rc = -1;
		} else if (cfg_check_value(f, key, v, errors) < 0)
			rc = -1;
	}
	for (size_t i = 0; i < CFG_NFIELDS; i++)
		if (!json_object_get(cfg, cfg_fields[i].name)) {
			cfg_err(errors, cfg_fields[i].name, "is missing");
			rc = -1;
		}
	return rc;
}

/* RFC 7396 MergePatch(target, patch) for a preset value; returns new. */
static json_t *cfg_merge_object(const json_t *target, const json_t *patch)
{
	const char *key;
	json_t *v;
	json_t *res;

	if (!json_is_object(patch))
		return json_deep_copy(patch);
	res = json_is_object(target) ? json_deep_copy(target) : json_object();
	json_object_foreach((json_t *)patch, key, v) {
		if (json_is_null(v))
			json_object_del(res, key);
		else
			json_object_set_new(res, key, cfg_merge_object(json_object_get(res, key), v));
	}
	return res;
}

int cfg_merge(const json_t *cur, const json_t *patch, json_t **out, json_t *errors)
{
	static const char *const swap_fields[] = { "model_variant", "inference_topology", "distributed_world_size" };
	const char *key;
	json_t *v;
	json_t *res = NULL;
	int rc = 0;

	*out = NULL;
	if (!json_is_object(patch)) {
		cfg_err(errors, "", "a config patch must be a JSON object");
		return -1;
	}
	res = json_deep_copy(cur);
	if (!res) {
		cfg_err(errors, "", "out of memory");
		return -1;
	}
	json_object_foreach((json_t *)patch, key, v) {
		const struct cfg_field *f = cfg_find(key);
		if (strcmp(key, "revision") == 0 || strcmp(key, "runtime_status") == 0) {
			cfg_err(errors, key, "is read-only");
			rc = -1;
			continue;
		}
		if (!f) {
			cfg_err(errors, key, "unknown field");
			rc = -1;
			continue;
		}
		if (json_is_null(v))
			json_object_set_new(res, key, cfg_default_value(f));
		else if (f->type == CFG_PRESET)
			json_object_set_new(res, key, cfg_merge_object(json_object_get(res, key), v));
		else
			json_object_set(res, key, v);
	}
	if (!json_object_get(patch, "backend")) {
		for (size_t i = 0; i < 3; i++) {
			const json_t *pv = json_object_get(patch, swap_fields[i]);
			if (pv && !json_equal((json_t *)pv, json_object_get(cur, swap_fields[i]))) {
				json_object_set_new(res, "backend", json_string("auto"));
				break;
			}
		}
	}
	if (cfg_validate(res, errors) < 0)
		rc = -1;
	if (rc < 0) {
		json_decref(res);
		return -1;
	}
	*out = res;
	return 0;
}

static const char *const cfg_preset_fields[] = { "prompt", "prompt_dominance", "pose_lock",
						 "depth_lock", "seg_lock", "motion_lock" };

int cfg_preset_patch(const json_t *cfg, const json_t *payload, json_t **patch, json_t *errors)
{
	const json_t *jp, *jm, *a, *b;
	const char *key;
	json_t *v;
	json_t *res;
	int bad = 0;

	*patch = NULL;
	if (!json_is_object(payload)) {
		cfg_err(errors, "", "preset.apply payload must be an object");
		return -1;
	}
	json_object_foreach((json_t *)payload, key, v) {
		if (strcmp(key, "preset") != 0 && strcmp(key, "mix") != 0) {
			cfg_err(errors, key, "unknown field (preset.apply takes \"preset\" or \"mix\")");
			bad = 1;
		}
	}
	if (bad)
		return -1;
	jp = json_object_get(payload, "preset");
	jm = json_object_get(payload, "mix");
	a = json_object_get(cfg, "A");
	b = json_object_get(cfg, "B");
	if ((jp && jm) || (!jp && !jm)) {
		cfg_err(errors, "", "preset.apply needs exactly one of \"preset\" (\"A\" or \"B\") or \"mix\" (0 to 1)");
		return -1;
	}
	if (jp) {
		const json_t *src;
		if (!json_is_string(jp) || (strcmp(json_string_value(jp), "A") && strcmp(json_string_value(jp), "B"))) {
			cfg_err(errors, "preset", "must be \"A\" or \"B\"");
			return -1;
		}
		src = json_string_value(jp)[0] == 'A' ? a : b;
		if (!json_is_object(src)) {
			cfg_err(errors, "preset", "preset %s is not saved", json_string_value(jp));
			return -1;
		}
		*patch = json_deep_copy(src);
		return *patch ? 0 : -1;
	}
	if (!json_is_number(jm) || !(json_number_value(jm) >= 0 && json_number_value(jm) <= 1)) {
		cfg_err(errors, "mix", "must be a number between 0 and 1");
		return -1;
	}
	if (!json_is_object(a) || !json_is_object(b)) {
		cfg_err(errors, "mix", "needs both presets A and B saved");
		return -1;
	}
	res = json_object();
	double m = json_number_value(jm);
	for (size_t i = 0; i < sizeof(cfg_preset_fields) / sizeof(cfg_preset_fields[0]); i++) {
		const char *name = cfg_preset_fields[i];
		const json_t *va = json_object_get(a, name), *vb = json_object_get(b, name);
		if (!va)
			va = json_object_get(cfg, name);
		if (!vb)
			vb = json_object_get(cfg, name);
		if (json_is_string(va))
			json_object_set(res, name, (json_t *)(m < 0.5 ? va : vb));
		else if (json_is_number(va) && json_is_number(vb))
			json_object_set_new(res, name, json_real(json_number_value(va) * (1 - m) +
								  json_number_value(vb) * m));
	}
	*patch = res;
	return 0;
}

static bool cfg_changed(const json_t *a, const json_t *b, enum cfg_apply apply)
{
	for (size_t i = 0; i < CFG_NFIELDS; i++) {
		if (cfg_fields[i].apply != apply)
			continue;
		const json_t *va = json_object_get(a, cfg_fields[i].name);
		const json_t *vb = json_object_get(b, cfg_fields[i].name);
		if (!va || !vb || !json_equal((json_t *)va, (json_t *)vb))
			return true;
	}
	return false;
}

bool cfg_restart_changed(const json_t *a, const json_t *b) { return cfg_changed(a, b, CFG_RESTART); }
bool cfg_live_changed(const json_t *a, const json_t *b) { return cfg_changed(a, b, CFG_LIVE); }

const char *cfg_str(const json_t *cfg, const char *name)
{
	const char *s = json_string_value(json_object_get(cfg, name));
	return s ? s : "";
}

double cfg_num(const json_t *cfg, const char *name)
{
	return json_number_value(json_object_get(cfg, name));
}

const char *cfg_backend_id(const json_t *cfg)
{
	const char *b = cfg_str(cfg, "backend");
	if (strcmp(b, "auto") != 0)
		return b;
	if (strcmp(cfg_str(cfg, "model_variant"), "wan-14b") == 0 ||
	    strcmp(cfg_str(cfg, "inference_topology"), "distributed") == 0)
		return "wan14b_dist";
	return "wan13b_cuda";
}

json_t *cfg_schema_json(void)
{
	static const char *const type_names[] = { "string", "number", "integer", "enum", "id", "preset" };
	json_t *arr = json_array();
	for (size_t i = 0; i < CFG_NFIELDS; i++) {
		const struct cfg_field *f = &cfg_fields[i];
		json_t *o = json_pack("{s:s,s:s,s:s,s:b,s:s}", "name", f->name, "type", type_names[f->type],
				      "apply", f->apply == CFG_LIVE ? "live" : "restart", "in_preset", f->in_preset,
				      "help", f->help);
		json_object_set_new(o, "default", cfg_default_value(f));
		if (f->type == CFG_NUMBER || f->type == CFG_INT) {
			json_object_set_new(o, "min", json_real(f->min));
			json_object_set_new(o, "max", json_real(f->max));
			if (f->multiple_of)
				json_object_set_new(o, "multiple_of", json_integer(f->multiple_of));
		} else if (f->type == CFG_STRING || f->type == CFG_ID) {
			json_object_set_new(o, "max_length", json_integer((json_int_t)f->max));
		} else if (f->type == CFG_ENUM) {
			json_t *c = json_array();
			for (const char *const *p = f->choices; *p; p++)
				json_array_append_new(c, json_string(*p));
			json_object_set_new(o, "choices", c);
		}
		json_array_append_new(arr, o);
	}
	return arr;
}
