/* wan_pipeline_backend.c: a heru backend instance over wan_pipeline.
 *
 * DESIGN
 * Every call comes on the instance's worker thread (the plugins are THREAD_AFFINE), so the
 * pipeline needs no lock. process() feeds one camera frame; the pipeline buffers frames into
 * chunks (5, then 4) and emits 0 frames or a burst of 4 (5 for the first chunk) per call; the
 * host's emit paces them at target_fps (server/pipeline.c), so no ABI change is needed.
 * Modes go through host->report: core-imported once the weights are open, core-warmup while
 * a stream's first chunk and its S-1 warm-up calls run (again after a prompt change, which
 * restarts the stream), core-runtime-active once chunks emit steadily; wan14b_dist reports
 * the core-distributed-* names. Locks: pose/depth/seg maps weighed by their locks make the
 * preserve map 1 - prod(1 - lock_i map_i) (the mock's rule) on the latent grid; motion_lock
 * weighs the noise controller. */
#include "config.h"

#include "wan_pipeline_backend.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wan_pipeline.h"

/* Config fields whose change needs a new instance. */
static const char *const restart_fields[] = {
	"backend", "model_variant", "inference_topology", "distributed_world_size",
	"inference_steps", "weights_path", "vae",
};
#define N_RESTART (sizeof(restart_fields) / sizeof(restart_fields[0]))

struct wan_backend {
	const struct heru_host *host;   /* borrowed, valid until destroy */
	char plugin_id[32];
	bool distributed;
	struct wan_pipeline *pipe;
	char *restart_vals[N_RESTART];  /* new: JSON text of each field at create */
	const char *mode;               /* last reported (static strings) */
	float *preserve;                /* [h/8][w/8] latent-grid preserve map */
	int pw, ph;
	const struct heru_process_args *args; /* during process only */
	int emit_rc;
};

bool wan_backend_cpu_requested(void)
{
	const char *d = getenv("HERU_WAN_DEVICE");
	return d && !strcmp(d, "cpu");
}

static void report(struct wan_backend *b, const char *mode, float progress)
{
	if (b->host && b->host->report && (mode != b->mode || progress >= 0))
		b->host->report(b->host, mode, progress);
	if (mode)
		b->mode = mode;
}

static void log_info(const struct heru_host *host, const char *msg)
{
	if (host && host->log)
		host->log(host, HERU_LOG_INFO, msg);
}

static char *field_text(json_t *cfg, const char *key)
{
	json_t *v = cfg ? json_object_get(cfg, key) : NULL;
	return v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : strdup("null");
}

void *wan_backend_create(const struct heru_host *host, const char *plugin_id, bool distributed,
			 const char *model, const char *root, const char *config_json, char *err,
			 size_t errlen)
{
	struct wan_backend *b = NULL;
	json_t *cfg = NULL;
	json_error_t je;
	const char *dev = getenv("HERU_WAN_DEVICE"), *vae;
	struct wan_pipeline_options o = { .root = root, .model = model };
	char msg[512];
	int w, h;

	if (dev && *dev && strcmp(dev, "cpu") && strcmp(dev, "cuda")) {
		snprintf(err, errlen, "HERU_WAN_DEVICE must be cpu or cuda, not '%s'", dev);
		return NULL;
	}
	o.device = wan_backend_cpu_requested() ? WAN_DEVICE_CPU : WAN_DEVICE_CUDA;
	cfg = config_json ? json_loads(config_json, 0, &je) : json_object();
	if (!cfg || !json_is_object(cfg)) {
		snprintf(err, errlen, "%s: the config is not a JSON object", plugin_id);
		goto fail;
	}
	o.steps = json_is_integer(json_object_get(cfg, "inference_steps"))
			  ? (int)json_integer_value(json_object_get(cfg, "inference_steps")) : 2;
	vae = json_string_value(json_object_get(cfg, "vae"));
	o.taehv = vae && !strcmp(vae, "taehv");
	b = calloc(1, sizeof(*b));
	if (!b) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	b->host = host;
	snprintf(b->plugin_id, sizeof(b->plugin_id), "%s", plugin_id);
	b->distributed = distributed;
	for (size_t i = 0; i < N_RESTART; i++)
		if (!(b->restart_vals[i] = field_text(cfg, restart_fields[i]))) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	b->pipe = wan_pipeline_open(&o, err, errlen);
	if (!b->pipe)
		goto fail;
	if (host && host->is_cancelled && host->is_cancelled(host)) {
		snprintf(err, errlen, "creation was cancelled");
		goto fail;
	}
	wan_pipeline_size(b->pipe, &w, &h);
	b->pw = w / 8;
	b->ph = h / 8;
	b->preserve = calloc((size_t)b->pw * b->ph, sizeof(float));
	if (!b->preserve) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	snprintf(msg, sizeof(msg), "%s: %s on %s at %dx%d, %d step(s), %s decoder, weights at %s",
		 plugin_id, model, o.device == WAN_DEVICE_CPU ? "the CPU (HERU_WAN_DEVICE=cpu)"
							      : "CUDA", w, h, o.steps,
		 o.taehv ? "TAEHV" : "Wan VAE", root && *root ? root : ".");
	log_info(host, msg);
	report(b, "core-imported", 1.0f);
	report(b, distributed ? "core-distributed-warmup" : "core-warmup", 0.0f);
	json_decref(cfg);
	return b;
fail:
	json_decref(cfg);
	wan_backend_destroy(b);
	return NULL;
}

static float map_at(const struct heru_frame *f, int x, int y, int w, int h)
{
	int mx = (int)(((int64_t)x * 2 + 1) * f->width / (2 * (int64_t)w));
	int my = (int)(((int64_t)y * 2 + 1) * f->height / (2 * (int64_t)h));
	const float *row = (const float *)((const uint8_t *)f->data + (size_t)my * (size_t)f->stride);
	float v = row[mx];
	return v != v ? 0.0f : v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
}

/* The preserve map for this frame, or NULL when every lock with a map is 0. */
static const float *build_preserve(struct wan_backend *b, const struct heru_process_args *a)
{
	static const char *const caps[3] = { HERU_CAP_POSE, HERU_CAP_DEPTH, HERU_CAP_SEGMENTATION };
	const struct heru_params *p = a->params;
	float locks[3] = { p->pose_lock, p->depth_lock, p->seg_lock };
	const struct heru_frame *maps[3] = { NULL, NULL, NULL };
	bool any = false;

	for (int k = 0; k < 3; k++) {
		if (!(locks[k] > 0.0f))
			continue;
		for (uint32_t i = 0; a->maps && i < a->n_maps; i++) {
			const struct heru_frame *f = a->maps[i].map;
			if (!a->maps[i].capability || strcmp(a->maps[i].capability, caps[k]) || !f ||
			    f->format != HERU_FORMAT_F32 || f->width < 1 || f->height < 1 ||
			    !f->data || f->stride < f->width * (int32_t)sizeof(float))
				continue;
			maps[k] = f;
			any = true;
			break;
		}
	}
	if (!any)
		return NULL;
	for (int y = 0; y < b->ph; y++)
		for (int x = 0; x < b->pw; x++) {
			float keep = 1.0f;
			for (int k = 0; k < 3; k++)
				if (maps[k])
					keep *= 1.0f - (locks[k] > 1.0f ? 1.0f : locks[k]) *
							       map_at(maps[k], x, y, b->pw, b->ph);
			b->preserve[(size_t)y * b->pw + x] = 1.0f - keep;
		}
	return b->preserve;
}

static int emit_one(void *ctx, const uint8_t *rgb, int width, int height,
		    const struct wan_frame_tag *tag)
{
	struct wan_backend *b = ctx;
	const struct heru_process_args *a = b->args;
	struct heru_frame *f = b->host && b->host->frame_new
				       ? b->host->frame_new(b->host, HERU_FORMAT_RGB8, width, height)
				       : NULL;
	if (!f) {
		b->emit_rc = HERU_ENOMEM;
		return 0; /* keep the stream going; this frame is lost */
	}
	for (int y = 0; y < height; y++)
		memcpy(heru_frame_row(f, y), rgb + (size_t)y * width * 3, (size_t)width * 3);
	f->id = tag->id;
	f->ts_ms = tag->ts_ms;
	a->emit(a->emit_ctx, f); /* stolen */
	return 0;
}

int wan_backend_process(void *instance, const struct heru_process_args *args, char *err,
			size_t errlen)
{
	struct wan_backend *b = instance;
	const struct heru_frame *in = args->frame;
	const struct heru_params *p = args->params;
	struct wan_frame_tag tag;
	struct wan_pipeline_params prm;
	const char *mode;
	int rc;

	if (!in || in->format != HERU_FORMAT_RGB8 || !in->data || !p) {
		snprintf(err, errlen, "%s needs an RGB8 camera frame and the live params",
			 b->plugin_id);
		return HERU_EINVAL;
	}
	tag.id = in->id;
	tag.ts_ms = in->ts_ms;
	prm = (struct wan_pipeline_params){ .prompt = p->prompt,
		.prompt_dominance = p->prompt_dominance, .motion_lock = p->motion_lock,
		.seed = p->seed, .preserve = build_preserve(b, args), .preserve_w = b->pw,
		.preserve_h = b->ph };
	b->args = args;
	b->emit_rc = 0;
	rc = wan_pipeline_push(b->pipe, in->data, in->width, in->height, (size_t)in->stride, &tag,
			       &prm, emit_one, b, err, errlen);
	b->args = NULL;
	switch (wan_pipeline_phase(b->pipe)) {
	case WAN_PHASE_ACTIVE:
		mode = b->distributed ? "core-distributed-active" : "core-runtime-active";
		break;
	default:
		mode = b->distributed ? "core-distributed-warmup" : "core-warmup";
		break;
	}
	if (mode != b->mode)
		report(b, mode, -1.0f);
	if (rc)
		return HERU_EINTERNAL;
	if (b->emit_rc) {
		snprintf(err, errlen, "out of memory for an output frame");
		return b->emit_rc;
	}
	return 0;
}

int wan_backend_update_config(void *instance, const char *config_json, char *err, size_t errlen)
{
	struct wan_backend *b = instance;
	json_error_t je;
	json_t *cfg = json_loads(config_json ? config_json : "{}", 0, &je);
	int rc = 0;

	if (!cfg || !json_is_object(cfg)) {
		json_decref(cfg);
		snprintf(err, errlen, "the config is not a JSON object");
		return HERU_EINVAL;
	}
	for (size_t i = 0; i < N_RESTART && rc == 0; i++) {
		char *now = field_text(cfg, restart_fields[i]);
		if (!now) {
			rc = HERU_ENOMEM;
			snprintf(err, errlen, "out of memory");
		} else if (strcmp(now, b->restart_vals[i])) {
			rc = HERU_ERESTART;
			snprintf(err, errlen, "restart required: %s changed", restart_fields[i]);
		}
		free(now);
	}
	json_decref(cfg);
	return rc; /* live fields arrive with every frame (struct heru_params) */
}

int wan_backend_stats(void *instance, char *buf, size_t buflen)
{
	struct wan_backend *b = instance;
	struct wan_pipeline_stats s;
	json_t *o = json_object(), *ms = json_object(), *mean = json_object();
	char *txt = NULL;
	int rc = HERU_ENOSPC;
	static const char *const phases[] = { "idle", "warmup", "active" };

	if (!o || !ms || !mean)
		goto out;
	wan_pipeline_get_stats(b->pipe, &s);
	for (int i = 0; i < WAN_STAGE_COUNT; i++) {
		json_object_set_new(ms, wan_stage_names[i], json_real(s.last_ms[i]));
		json_object_set_new(mean, wan_stage_names[i], json_real(s.mean_ms[i]));
	}
	json_object_set_new(o, "device", json_string(s.device));
	json_object_set_new(o, "phase", json_string(phases[wan_pipeline_phase(b->pipe)]));
	json_object_set_new(o, "model_width", json_integer(s.width));
	json_object_set_new(o, "model_height", json_integer(s.height));
	json_object_set_new(o, "steps", json_integer(s.steps));
	json_object_set_new(o, "decoder", json_string(s.taehv ? "taehv" : "wan"));
	json_object_set_new(o, "frames_in", json_integer((json_int_t)s.frames_in));
	json_object_set_new(o, "frames_out", json_integer((json_int_t)s.frames_out));
	json_object_set_new(o, "chunks", json_integer((json_int_t)s.chunks));
	json_object_set_new(o, "restarts", json_integer((json_int_t)s.restarts));
	json_object_set_new(o, "noise_scale", json_real(s.noise_scale));
	json_object_set_new(o, "first_step", json_integer(s.first_step));
	json_object_set_new(o, "dit_prepare_ms", json_real(s.dit_prepare_ms));
	json_object_set_new(o, "stage_last_ms", ms);
	json_object_set_new(o, "stage_mean_ms", mean);
	ms = mean = NULL;
	txt = json_dumps(o, JSON_COMPACT);
	if (txt && strlen(txt) < buflen) {
		memcpy(buf, txt, strlen(txt) + 1);
		rc = (int)strlen(txt);
	}
out:
	free(txt);
	json_decref(ms);
	json_decref(mean);
	json_decref(o);
	return rc;
}

void wan_backend_destroy(void *instance)
{
	struct wan_backend *b = instance;
	if (!b)
		return;
	wan_pipeline_free(b->pipe);
	for (size_t i = 0; i < N_RESTART; i++)
		free(b->restart_vals[i]);
	free(b->preserve);
	free(b);
}
