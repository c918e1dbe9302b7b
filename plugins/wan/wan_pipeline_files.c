/* wan_pipeline_files.c: where a weights folder keeps each file (StreamDiffusionV2's layout,
 * or heru-model.json's overrides) and the one-sentence errors for missing files. */
#include "wan_pipeline_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define WAN_HF_HOWTO "download it with 'huggingface-cli download Wan-AI/Wan2.1-T2V-1.3B " \
	"--local-dir wan_models/Wan2.1-T2V-1.3B' inside the weights folder"

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* DST = PATH if absolute, else ROOT/PATH. */
static int join(char *dst, const char *root, const char *path, char *err, size_t errlen)
{
	int n = path[0] == '/' ? snprintf(dst, WAN_PATH_MAX, "%s", path)
			       : snprintf(dst, WAN_PATH_MAX, "%s/%s", root, path);
	if (n < 0 || n >= WAN_PATH_MAX) {
		snprintf(err, errlen, "the path '%s/%s' is too long", root, path);
		return -1;
	}
	return 0;
}

static void defaults(const char *root, bool big, struct wan_pipeline_files *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->dit, WAN_PATH_MAX, "%s/ckpts/%s/model.pt", root,
		 big ? "wan_causal_dmd_v2v_14b" : "wan_causal_dmd_v2v");
	snprintf(f->dit_config, WAN_PATH_MAX, "%s", big ? "14b" : "1.3b");
	/* upstream reads the VAE, T5 and tokenizer from the 1.3B folder for both models */
	snprintf(f->vae, WAN_PATH_MAX, "%s/wan_models/Wan2.1-T2V-1.3B/Wan2.1_VAE.pth", root);
	snprintf(f->t5, WAN_PATH_MAX, "%s/wan_models/Wan2.1-T2V-1.3B/"
		 "models_t5_umt5-xxl-enc-bf16.pth", root);
	snprintf(f->tokenizer, WAN_PATH_MAX, "%s/wan_models/Wan2.1-T2V-1.3B/google/umt5-xxl", root);
	snprintf(f->taehv, WAN_PATH_MAX, "%s/ckpts/taew2_1.pth", root);
	f->width = 512;
	f->height = 512;
	f->kv_frames = 6;
	f->sink_frames = 3;
	f->sink_threshold = 0.2;
}

static int get_int(json_t *v, const char *src, const char *key, int lo, int hi, int *out,
		   char *err, size_t errlen)
{
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
		snprintf(err, errlen, "%s: '%s' must be an integer in %d..%d", src, key, lo, hi);
		return -1;
	}
	*out = (int)json_integer_value(v);
	return 0;
}

static int read_overrides(const char *root, const char *json_path, struct wan_pipeline_files *f,
			  char *err, size_t errlen)
{
	static const struct {
		const char *key;
		size_t off;
		bool is_path; /* resolved against the folder (configs keep preset names) */
	} paths[] = {
		{ "dit_weights", offsetof(struct wan_pipeline_files, dit), true },
		{ "dit_config", offsetof(struct wan_pipeline_files, dit_config), false },
		{ "vae_weights", offsetof(struct wan_pipeline_files, vae), true },
		{ "vae_config", offsetof(struct wan_pipeline_files, vae_config), true },
		{ "taehv_weights", offsetof(struct wan_pipeline_files, taehv), true },
		{ "t5_weights", offsetof(struct wan_pipeline_files, t5), true },
		{ "t5_config", offsetof(struct wan_pipeline_files, t5_config), false },
		{ "tokenizer", offsetof(struct wan_pipeline_files, tokenizer), true },
	};
	json_error_t je;
	json_t *o = json_load_file(json_path, JSON_REJECT_DUPLICATES, &je);
	const char *key;
	json_t *v;
	int rc = -1;

	if (!o || !json_is_object(o)) {
		snprintf(err, errlen, "%s: %s", json_path, o ? "not a JSON object" : je.text);
		goto out;
	}
	json_object_foreach(o, key, v) {
		size_t i;
		for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
			if (!strcmp(key, paths[i].key))
				break;
		if (i < sizeof(paths) / sizeof(paths[0])) {
			char *dst = (char *)f + paths[i].off;
			const char *s = json_string_value(v);
			if (!json_is_string(v) || !*s) {
				snprintf(err, errlen, "%s: '%s' must be a non-empty string",
					 json_path, key);
				goto out;
			}
			/* a config is a preset name unless it names a file */
			bool is_path = paths[i].is_path || strchr(s, '/') || strstr(s, ".json");
			if (is_path) {
				if (join(dst, root, s, err, errlen))
					goto out;
			} else {
				snprintf(dst, WAN_PATH_MAX, "%s", s);
			}
		} else if (!strcmp(key, "width")) {
			if (get_int(v, json_path, key, 16, 2048, &f->width, err, errlen))
				goto out;
		} else if (!strcmp(key, "height")) {
			if (get_int(v, json_path, key, 16, 2048, &f->height, err, errlen))
				goto out;
		} else if (!strcmp(key, "kv_frames")) {
			if (get_int(v, json_path, key, 4, 48, &f->kv_frames, err, errlen))
				goto out;
		} else if (!strcmp(key, "sink_frames")) {
			if (get_int(v, json_path, key, 0, 47, &f->sink_frames, err, errlen))
				goto out;
		} else if (!strcmp(key, "sink_threshold")) {
			if (!json_is_number(v) || json_number_value(v) < -1 ||
			    json_number_value(v) > 1) {
				snprintf(err, errlen, "%s: 'sink_threshold' must be a number in -1..1",
					 json_path);
				goto out;
			}
			f->sink_threshold = json_number_value(v);
		} else if (key[0] != '_') { /* "_comment" and the like are allowed */
			snprintf(err, errlen, "%s: unknown key '%s' (known: dit_weights, dit_config, "
				 "vae_weights, vae_config, taehv_weights, t5_weights, t5_config, "
				 "tokenizer, width, height, kv_frames, sink_frames, sink_threshold)",
				 json_path, key);
			goto out;
		}
	}
	if (f->width % 16 || f->height % 16) {
		snprintf(err, errlen, "%s: width and height must be multiples of 16, got %dx%d",
			 json_path, f->width, f->height);
		goto out;
	}
	if (f->sink_frames >= f->kv_frames) {
		snprintf(err, errlen, "%s: sink_frames (%d) must be below kv_frames (%d)", json_path,
			 f->sink_frames, f->kv_frames);
		goto out;
	}
	rc = 0;
out:
	json_decref(o);
	return rc;
}

int wan_pipeline_files_resolve(const char *root, const char *model, bool taehv,
			       struct wan_pipeline_files *f, char *err, size_t errlen)
{
	char json_path[WAN_PATH_MAX];
	bool big;

	if (!root || !*root)
		root = ".";
	if (!model || (strcmp(model, "wan-1.3b") && strcmp(model, "wan-14b"))) {
		snprintf(err, errlen, "unknown model '%s' (wan-1.3b or wan-14b)", model ? model : "");
		return -1;
	}
	big = !strcmp(model, "wan-14b");
	if (!exists(root)) {
		snprintf(err, errlen, "weights not found at %s: set weights_path or "
			 "STREAMDIFFUSIONV2_PATH/HERU_WEIGHTS to the StreamDiffusionV2 folder", root);
		return -1;
	}
	defaults(root, big, f);
	if (join(json_path, root, "heru-model.json", err, errlen))
		return -1;
	if (exists(json_path) && read_overrides(root, json_path, f, err, errlen))
		return -1;

	if (!exists(f->dit)) {
		snprintf(err, errlen, "weights not found at %s: put StreamDiffusionV2's generator "
			 "checkpoint there (see its README: ckpts/%s/model.pt), or set weights_path",
			 f->dit, big ? "wan_causal_dmd_v2v_14b" : "wan_causal_dmd_v2v");
		return -1;
	}
	if (!exists(f->vae)) {
		snprintf(err, errlen, "VAE weights not found at %s: " WAN_HF_HOWTO, f->vae);
		return -1;
	}
	if (!exists(f->t5)) {
		snprintf(err, errlen, "umT5 encoder weights not found at %s: " WAN_HF_HOWTO, f->t5);
		return -1;
	}
	if (!exists(f->tokenizer)) {
		snprintf(err, errlen, "umT5 tokenizer not found at %s: " WAN_HF_HOWTO, f->tokenizer);
		return -1;
	}
	if (taehv && !exists(f->taehv)) {
		snprintf(err, errlen, "TAEHV weights not found at %s: download taew2_1.pth from "
			 "https://github.com/madebyollin/taehv there, or set vae to wan", f->taehv);
		return -1;
	}
	if (f->vae_config[0] && !exists(f->vae_config)) {
		snprintf(err, errlen, "VAE config not found at %s (named by heru-model.json)",
			 f->vae_config);
		return -1;
	}
	return 0;
}
