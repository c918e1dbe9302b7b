/* wan_pipeline.c: the StreamDiffusionV2 frame-to-frame pipeline (see the DESIGN comment in
 * wan_pipeline.h). Opening: every file, with the architectures checked against each other.
 * Running: frames -> chunks -> encode -> mix -> DiT stream -> decode -> RGB8. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dladdr */
#endif
#include "wan_pipeline_internal.h"

#ifdef HERU_WAN_PIPELINE_CUDA
#include <dlfcn.h>
#include <pthread.h>
#include <sys/stat.h>
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit_model.h"
#include "t5_model.h"
#include "t5_ref.h"
#include "taehv_model.h"
#include "tokenizer.h"
#include "vae_config.h"
#include "vae_model.h"
#include "wan_config.h"
#include "wan_resize.h"
#include "wan_rng.h"
#include "wan_sched.h"
#include "wt_file.h"
#include "plugins/wan/wan_clock.h"

#define WAN_TAGS 64            /* in-flight input tags: (S-1)*4 + 5 + 4 <= 37 */
#define WAN_MAX_INPUT 16384

const char *const wan_stage_names[WAN_STAGE_COUNT] = {
	"text", "resize", "encode", "dit", "decode", "output"
};

struct wan_pipeline {
	enum wan_device dev;
	bool taehv;
	int steps, threads;
	int W, H, h, w, C;
	size_t fe, npix;
	struct wan_pipeline_files files;

	struct tokenizer *tok;
	struct wt_file *t5_file;
	struct t5_weights t5w;
	bool t5w_init;
	struct wan_dit_config dcfg;
	struct wan_dit_model *dit;
	struct dit_engine eng;
	bool eng_open;
	struct dit_stream *stream;
	struct vae_model *vae;
	struct vae_stream *vst;
	struct taehv_model *tae;
	struct taehv_stream *tst;
#ifdef HERU_WAN_PIPELINE_CUDA
	const struct wan_cuda_api *cu; /* borrowed from wan_cuda_engine.so (never unloaded) */
	struct wan_pipe_cuda *cuda;
#endif

	/* stream state */
	char *prompt;        /* the prompt of ctx (new) */
	uint64_t seed;
	bool have_ctx;
	float *ctx;          /* [text_len][text_dim] */
	int64_t *ids, *mask; /* [text_len] */
	float *frames;       /* [5][3][H][W]: the chunk being collected */
	int nframes;
	float *prev_last;    /* [3][H][W]: the previous chunk's last frame */
	double motion_dj[4]; /* later chunks: RMS difference of frame j from the one before */
	struct wan_frame_tag tags[WAN_TAGS];
	int tag_head, tag_count;
	bool started;
	bool decoded;        /* the decoder ran since the stream started */
	int later_calls;     /* chunks after the first */
	double init_scale, scale_prev;
	int64_t first_step;
	struct wan_rng rng;
	float *lat;          /* [2][C][h][w] encoder output */
	float *zin;          /* [C][2][h][w] what dit_stream mixes */
	float *x0;           /* [C][2][h][w] */
	float *x0f;          /* [2][C][h][w] decoder input */
	float *out;          /* [5][3][H][W] decoded frames */
	uint8_t *rgb;        /* [H][W][3] */
	float *strength;     /* [h][w] per-latent-pixel strength */
	struct wan_resize rs; /* camera frame -> frames: tables for the last input size */

	struct wan_pipeline_stats st;
};

/* ---- small helpers ---- */

static void stage_done(struct wan_pipeline *p, enum wan_stage s, double t0)
{
	double ms = wan_now_ms() - t0;
	p->st.last_ms[s] = ms;
	p->st.runs[s]++;
	p->st.mean_ms[s] += (ms - p->st.mean_ms[s]) / (double)p->st.runs[s];
}

static float clamp01f(float v)
{
	return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
}

double wan_pipeline_init_scale(float prompt_dominance)
{
	return 0.4 + 0.5 * (double)clamp01f(prompt_dominance);
}

double wan_pipeline_ctl_step(double init_scale, double prev_scale, double dhat, float motion_lock)
{
	double m = clamp01f(motion_lock), s;
	if (m == 0.0) /* upstream's expression, operation for operation (wan_noise_ctl_update) */
		return (init_scale - 0.1 * dhat) * 0.9 + prev_scale * 0.1;
	double delta = 0.1 + 0.3 * m, lambda = 0.9 - 0.6 * m;
	s = (init_scale - delta * dhat) * lambda + prev_scale * (1.0 - lambda);
	return s < 0.1 ? 0.1 : s > 1.0 ? 1.0 : s;
}

/* ---- opening ---- */

#ifdef HERU_WAN_PIPELINE_CUDA
/* Finds and opens wan_cuda_engine.so (once per process; never unloaded: CUDA runtimes must
 * not be unmapped): $HERU_WAN_CUDA_ENGINE, then wan-cuda/ beside the plugin, then the build
 * tree and the install folder this build was configured for. */
static const struct wan_cuda_api *cuda_engine(char *err, size_t errlen)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	static const struct wan_cuda_api *api;
	char cand[4][WAN_PATH_MAX], why[600] = "";
	const struct wan_cuda_api *found = NULL;
	Dl_info info;
	int n = 0;

	pthread_mutex_lock(&mu);
	if (api) {
		found = api;
		goto out;
	}
	if (getenv("HERU_WAN_CUDA_ENGINE") && *getenv("HERU_WAN_CUDA_ENGINE"))
		snprintf(cand[n++], WAN_PATH_MAX, "%s", getenv("HERU_WAN_CUDA_ENGINE"));
	if (dladdr((void *)(uintptr_t)cuda_engine, &info) && info.dli_fname) {
		const char *slash = strrchr(info.dli_fname, '/');
		int len = slash ? (int)(slash - info.dli_fname) : 1;
		snprintf(cand[n++], WAN_PATH_MAX, "%.*s/wan-cuda/" WAN_CUDA_ENGINE_FILE, len,
			 slash ? info.dli_fname : ".");
	}
#ifdef WAN_CUDA_ENGINE_BUILD
	snprintf(cand[n++], WAN_PATH_MAX, "%s", WAN_CUDA_ENGINE_BUILD);
#endif
#ifdef WAN_CUDA_ENGINE_INSTALL
	snprintf(cand[n++], WAN_PATH_MAX, "%s", WAN_CUDA_ENGINE_INSTALL);
#endif
	for (int i = 0; i < n && !found; i++) {
		struct stat stt;
		if (stat(cand[i], &stt) != 0)
			continue;
		void *h = dlopen(cand[i], RTLD_NOW | RTLD_LOCAL);
		if (!h) {
			snprintf(why, sizeof(why), "%s", dlerror());
			continue;
		}
		const struct wan_cuda_api *a = dlsym(h, WAN_CUDA_ENGINE_SYMBOL);
		if (!a || a->struct_size != sizeof(*a)) {
			snprintf(why, sizeof(why), "%.500s is not this build's CUDA engine", cand[i]);
			continue; /* left mapped: harmless, and unloading CUDA code is not */
		}
		found = api = a;
	}
	if (!found)
		snprintf(err, errlen, "the Wan CUDA engine (%s) could not be loaded: %s",
			 WAN_CUDA_ENGINE_FILE, why[0] ? why : "not found beside the plugin (wan-cuda/), "
			 "in the build tree or the install folder; set HERU_WAN_CUDA_ENGINE to its path");
out:
	pthread_mutex_unlock(&mu);
	return found;
}
#endif

static int open_text(struct wan_pipeline *p, char *err, size_t errlen)
{
	struct t5_config tc;
	p->tok = tokenizer_load(p->files.tokenizer, err, errlen);
	if (!p->tok)
		return -1;
	p->t5_file = wt_open(p->files.t5, err, errlen);
	if (!p->t5_file)
		return -1;
	if (p->files.t5_config[0] ? t5_config_load(p->files.t5_config, &tc, err, errlen)
				  : t5_config_from_file(p->t5_file, &tc, err, errlen))
		return -1;
	if (t5_weights_init(&p->t5w, p->t5_file, &tc, err, errlen))
		return -1;
	p->t5w_init = true;
	if (tokenizer_vocab_size(p->tok) > tc.vocab_size) {
		snprintf(err, errlen, "the tokenizer at %s has %d pieces but the umT5 encoder at %s "
			 "only %d embeddings", p->files.tokenizer, tokenizer_vocab_size(p->tok),
			 p->files.t5, tc.vocab_size);
		return -1;
	}
	if (tc.dim != p->dcfg.text_dim || p->dcfg.text_len != T5_TEXT_LEN) {
		snprintf(err, errlen, "the umT5 encoder at %s gives %d-wide text but the DiT at %s "
			 "expects %d x %d", p->files.t5, tc.dim, p->files.dit, p->dcfg.text_len,
			 p->dcfg.text_dim);
		return -1;
	}
	return 0;
}

static int open_vae(struct wan_pipeline *p, char *err, size_t errlen)
{
	struct vae_config vc;
	struct taehv_config tc;
	struct wt_file *f = NULL;
	const char *cfg = p->files.vae_config[0] ? p->files.vae_config : NULL;
	int rc = -1;

	if (vae_config_load(cfg, &vc, &tc, err, errlen))
		return -1;
	if (vc.z_dim != p->dcfg.in_dim || vc.z_dim != p->dcfg.out_dim ||
	    vae_config_spatial(&vc) != 8 || vae_config_temporal(&vc) != 4) {
		snprintf(err, errlen, "the VAE (z_dim %d, stride %dx%d) does not fit the DiT at %s "
			 "(in_dim %d, out_dim %d; StreamDiffusionV2 needs stride 4x8)", vc.z_dim,
			 vae_config_temporal(&vc), vae_config_spatial(&vc), p->files.dit,
			 p->dcfg.in_dim, p->dcfg.out_dim);
		return -1;
	}
	if (p->taehv && p->dcfg.out_dim != 16) {
		snprintf(err, errlen, "TAEHV decodes 16-channel latents; the DiT has %d",
			 p->dcfg.out_dim);
		return -1;
	}
	f = wt_open(p->files.vae, err, errlen);
	if (!f)
		return -1;
	struct vae_source src = vae_source_wt(f);
	p->vae = vae_model_load(&vc, &src, VAE_LOAD_ENCODER | (p->taehv ? 0 : VAE_LOAD_DECODER),
				err, errlen);
	wt_close(f);
	f = NULL;
	if (!p->vae)
		return -1;
	p->vst = vae_stream_new(p->vae);
	if (!p->vst)
		goto oom;
	if (p->taehv) {
		f = wt_open(p->files.taehv, err, errlen);
		if (!f)
			return -1;
		src = vae_source_wt(f);
		p->tae = taehv_model_load(&tc, &src, err, errlen);
		wt_close(f);
		if (!p->tae)
			return -1;
		p->tst = taehv_stream_new(p->tae, 0);
		if (!p->tst)
			goto oom;
	}
	rc = 0;
	return rc;
oom:
	snprintf(err, errlen, "out of memory for the VAE streams");
	return -1;
}

static void noise_ahead(void *ctx);

static int open_dit(struct wan_pipeline *p, char *err, size_t errlen)
{
	struct dit_engine_params ep;
	struct dit_stream_config sc;

	p->dit = wan_dit_model_open(p->files.dit, &p->dcfg, err, errlen);
	if (!p->dit)
		return -1;
	ep = (struct dit_engine_params){ .max_slots = p->steps,
		.kv_rows = p->files.kv_frames * (p->h / 2) * (p->w / 2), .h = p->h, .w = p->w,
		.nctx = 1 };
	if (p->dev == WAN_DEVICE_CUDA) {
#ifdef HERU_WAN_PIPELINE_CUDA
		if (p->cu->dit_engine(p->dit, &ep, &p->eng, err, errlen))
			return -1;
#else
		snprintf(err, errlen, "this build of the Wan plugins has no CUDA engine");
		return -1;
#endif
	} else if (dit_cpu_engine_open(p->dit, &ep, &p->eng, err, errlen)) {
		return -1;
	}
	p->eng_open = true;
	sc = (struct dit_stream_config){ .steps = p->steps, .batch = true,
		.kv_frames = p->files.kv_frames, .sink_frames = p->files.sink_frames,
		.sink_threshold = p->files.sink_threshold, .channels = p->C, .h = p->h, .w = p->w,
		.layers = p->dcfg.num_layers };
	p->stream = dit_stream_new(&sc, &p->eng, err, errlen);
	if (p->stream)
		dit_stream_set_idle(p->stream, noise_ahead, p);
	return p->stream ? 0 : -1;
}

/* The frames that go to the VAE encoder and come back from the decoder: page-locked where
 * the DiT engine offers it (CUDA), so that their copies (19 MB a 4-frame chunk at 480x832)
 * run at the bus's speed without a staging copy; else plain zeroed memory. */
static bool frames_pinned(const struct wan_pipeline *p)
{
	return p->eng_open && p->eng.host_alloc && p->eng.host_free;
}

static float *frame_buf(struct wan_pipeline *p, size_t n)
{
	if (frames_pinned(p))
		return p->eng.host_alloc(p->eng.impl, n * sizeof(float));
	return calloc(n, sizeof(float));
}

static void frame_buf_free(struct wan_pipeline *p, float **b)
{
	if (frames_pinned(p) && *b)
		p->eng.host_free(p->eng.impl, *b);
	else
		free(*b);
	*b = NULL;
}

static int alloc_buffers(struct wan_pipeline *p, char *err, size_t errlen)
{
	size_t tl = (size_t)p->dcfg.text_len;
	p->ctx = calloc(tl * (size_t)p->dcfg.text_dim, sizeof(float));
	p->ids = calloc(tl, sizeof(int64_t));
	p->mask = calloc(tl, sizeof(int64_t));
	p->frames = frame_buf(p, 5 * 3 * p->npix);
	p->prev_last = calloc(3 * p->npix, sizeof(float));
	p->lat = calloc(2 * p->fe, sizeof(float));
	p->zin = calloc(2 * p->fe, sizeof(float));
	p->x0 = calloc(2 * p->fe, sizeof(float));
	p->x0f = calloc(2 * p->fe, sizeof(float));
	p->out = frame_buf(p, 5 * 3 * p->npix);
	p->rgb = calloc(3 * p->npix, 1);
	p->strength = calloc((size_t)p->h * p->w, sizeof(float));
	if (!p->ctx || !p->ids || !p->mask || !p->frames || !p->prev_last || !p->lat || !p->zin ||
	    !p->x0 || !p->x0f || !p->out || !p->rgb || !p->strength) {
		snprintf(err, errlen, "out of memory for the pipeline buffers at %dx%d", p->W, p->H);
		return -1;
	}
	return 0;
}

struct wan_pipeline *wan_pipeline_open(const struct wan_pipeline_options *o, char *err,
				       size_t errlen)
{
	struct wan_pipeline *p;

	if (o->steps < 1 || o->steps > WAN_MAX_STEPS) {
		snprintf(err, errlen, "inference_steps must be 1..%d, got %d", WAN_MAX_STEPS,
			 o->steps);
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->dev = o->device;
	p->taehv = o->taehv;
	p->steps = o->steps;
	p->threads = o->threads;
	if (wan_pipeline_files_resolve(o->root, o->model, o->taehv, &p->files, err, errlen))
		goto fail;
#ifndef HERU_WAN_PIPELINE_CUDA
	if (o->device == WAN_DEVICE_CUDA) {
		snprintf(err, errlen, "this build of the Wan plugins has no CUDA engine (configure "
			 "found no nvcc); HERU_WAN_DEVICE=cpu runs the fp32 reference");
		goto fail;
	}
#else
	if (o->device == WAN_DEVICE_CUDA && !(p->cu = cuda_engine(err, errlen)))
		goto fail;
#endif
	if (wan_dit_config_load(p->files.dit_config, &p->dcfg, err, errlen))
		goto fail;
	p->W = p->files.width;
	p->H = p->files.height;
	p->h = p->H / 8;
	p->w = p->W / 8;
	p->C = p->dcfg.in_dim;
	p->fe = (size_t)p->C * p->h * p->w;
	p->npix = (size_t)p->W * p->H;
	if (p->dcfg.in_dim != p->dcfg.out_dim) {
		snprintf(err, errlen, "the DiT config %s has in_dim %d != out_dim %d",
			 p->files.dit_config, p->dcfg.in_dim, p->dcfg.out_dim);
		goto fail;
	}
	if (open_vae(p, err, errlen) || open_text(p, err, errlen) || open_dit(p, err, errlen) ||
	    alloc_buffers(p, err, errlen))
		goto fail;
#ifdef HERU_WAN_PIPELINE_CUDA
	if (p->dev == WAN_DEVICE_CUDA) {
		p->cuda = p->cu->create(p->vae, p->tae, &p->t5w, p->W, p->H, err, errlen);
		if (!p->cuda)
			goto fail;
		/* like TAEHV's plans above: every DiT call shape of the stream is planned, tuned
		 * and captured now, in the load phase, not in a live stream's first chunks */
		double t0 = wan_now_ms();
		if (dit_stream_prepare(p->stream, err, errlen))
			goto fail;
		p->st.dit_prepare_ms = wan_now_ms() - t0;
	}
#endif
	p->st.width = p->W;
	p->st.height = p->H;
	p->st.steps = p->steps;
	p->st.taehv = p->taehv;
	p->st.device = p->dev == WAN_DEVICE_CUDA ? "cuda" : "cpu";
	return p;
fail:
	wan_pipeline_free(p);
	return NULL;
}

void wan_pipeline_free(struct wan_pipeline *p)
{
	if (!p)
		return;
#ifdef HERU_WAN_PIPELINE_CUDA
	if (p->cuda)
		p->cu->destroy(p->cuda);
#endif
	dit_stream_free(p->stream);
	wan_rng_release(&p->rng);
	frame_buf_free(p, &p->frames);
	frame_buf_free(p, &p->out);
	if (p->eng_open)
		p->eng.destroy(p->eng.impl);
	wan_dit_model_free(p->dit);
	taehv_stream_free(p->tst);
	taehv_model_free(p->tae);
	vae_stream_free(p->vst);
	vae_model_free(p->vae);
	if (p->t5w_init)
		t5_weights_release(&p->t5w);
	wt_close(p->t5_file);
	tokenizer_free(p->tok);
	free(p->prompt);
	free(p->ctx);
	free(p->ids);
	free(p->mask);
	free(p->prev_last);
	free(p->lat);
	free(p->zin);
	free(p->x0);
	free(p->x0f);
	free(p->rgb);
	free(p->strength);
	wan_resize_release(&p->rs);
	free(p);
}

/* ---- device dispatch ---- */

static int run_encode(struct wan_pipeline *p, const float *frames, int t, float *lat, char *err,
		      size_t errlen)
{
#ifdef HERU_WAN_PIPELINE_CUDA
	if (p->cuda)
		return p->cu->encode(p->cuda, frames, t, lat, err, errlen);
#endif
	return vae_encode(p->vae, p->vst, frames, t, p->H, p->W, lat, err, errlen);
}

/* Decodes F latents [F][C][h][w]; returns the frame count or -1. */
static int run_decode(struct wan_pipeline *p, const float *lat, int f, float *frames, char *err,
		      size_t errlen)
{
	int first = !p->decoded, rc;
	int n = p->taehv ? taehv_decode_count(first, f) : vae_decode_count(p->vae, first, f);
#ifdef HERU_WAN_PIPELINE_CUDA
	if (p->cuda)
		rc = p->cu->decode(p->cuda, lat, f, frames, err, errlen);
	else
#endif
	if (p->taehv)
		rc = taehv_decode(p->tae, p->tst, lat, f, p->h, p->w, frames, err, errlen);
	else
		rc = vae_decode(p->vae, p->vst, lat, f, p->h, p->w, frames, err, errlen);
	if (rc)
		return -1;
	p->decoded = true;
	return n;
}

static int run_text(struct wan_pipeline *p, char *err, size_t errlen)
{
	int n_real;
	if (tokenizer_encode_wan(p->tok, p->prompt, T5_TEXT_LEN, p->ids, p->mask, &n_real, err,
				 errlen))
		return -1;
#ifdef HERU_WAN_PIPELINE_CUDA
	if (p->cuda)
		return p->cu->text(p->cuda, p->ids, p->mask, p->ctx, err, errlen);
#endif
	return t5_encode_ref(&p->t5w, p->ids, p->mask, T5_TEXT_LEN, p->threads, p->ctx, err,
			     errlen);
}

/* ---- frames in ---- */

/* ---- mixing noise ---- */

/* dit_stream's idle hook: the next draw (one latent frame of normals) generated while the
 * device runs, so the chunk's mixing draw, made before its forward, is a copy (wan_rng.h).
 * Out of memory only means it is generated when asked. */
static void noise_ahead(void *ctx)
{
	struct wan_pipeline *p = ctx;
	(void)wan_rng_prefetch(&p->rng, p->fe);
}

struct noise_ctx {
	struct wan_pipeline *p;
	int mix_left;          /* draws still to come that are the chunk's mixing noise */
	int mix_index;         /* which latent frame the next mixing draw is for */
	const float *z;        /* [F][C][h][w]: the chunk's clean latents */
	double s;              /* the strength dit_stream mixes with */
	bool per_pixel;        /* mixing draws carry the per-pixel mix (dit_stream mixes zeros) */
};

/* dit_noise_fn. Without a preserve map every draw is plain N(0,1). With one, dit_stream mixes
 * zeros at strength s, so the mixing draw returns ((1-s_p) z + s_p eps) / s: the per-pixel mix,
 * with the same generator draws as the plain path. */
static int draw_noise(void *vctx, float *dst, size_t n, char *err, size_t errlen)
{
	struct noise_ctx *nc = vctx;
	struct wan_pipeline *p = nc->p;
	(void)err;
	(void)errlen;
	wan_rng_fill(&p->rng, dst, n);
	if (nc->mix_left > 0) {
		if (nc->per_pixel) {
			const float *z = nc->z + (size_t)nc->mix_index * p->fe;
			size_t hw = (size_t)p->h * p->w;
			for (size_t i = 0; i < n; i++) {
				double sp = p->strength[i % hw];
				dst[i] = (float)(((1.0 - sp) * z[i] + sp * dst[i]) / nc->s);
			}
		}
		nc->mix_left--;
		nc->mix_index++;
	}
	return 0;
}

/* Per-latent-pixel strength s (1 - preserve), preserve area-averaged onto the latent grid.
 * Returns whether any pixel differs from s (false: the plain path is used). */
static bool build_strength(struct wan_pipeline *p, const struct wan_pipeline_params *prm,
			   double s)
{
	if (!prm->preserve || prm->preserve_w < 1 || prm->preserve_h < 1)
		return false;
	bool any = false;
	const int pw = prm->preserve_w, ph = prm->preserve_h;
	for (int y = 0; y < p->h; y++) {
		int ya = (int)((int64_t)y * ph / p->h), yb = (int)((int64_t)(y + 1) * ph / p->h);
		if (yb <= ya)
			yb = ya + 1;
		for (int x = 0; x < p->w; x++) {
			int xa = (int)((int64_t)x * pw / p->w), xb = (int)((int64_t)(x + 1) * pw / p->w);
			if (xb <= xa)
				xb = xa + 1;
			double acc = 0;
			for (int yy = ya; yy < yb; yy++)
				for (int xx = xa; xx < xb; xx++) {
					float v = prm->preserve[(size_t)yy * pw + xx];
					acc += v != v ? 0.0f : clamp01f(v); /* NaN counts as 0 */
				}
			double pres = acc / ((double)(yb - ya) * (xb - xa));
			if (pres > 0)
				any = true;
			p->strength[(size_t)y * p->w + x] = (float)(s * (1.0 - pres));
		}
	}
	return any;
}

/* ---- frames out ---- */

static void tags_push(struct wan_pipeline *p, const struct wan_frame_tag *t)
{
	if (p->tag_count == WAN_TAGS) { /* cannot happen with S <= 8; keep the newest */
		p->tag_head = (p->tag_head + 1) % WAN_TAGS;
		p->tag_count--;
	}
	p->tags[(p->tag_head + p->tag_count) % WAN_TAGS] = *t;
	p->tag_count++;
}

static struct wan_frame_tag tags_pop(struct wan_pipeline *p)
{
	struct wan_frame_tag t = { 0, 0 };
	if (p->tag_count > 0) {
		t = p->tags[p->tag_head];
		p->tag_head = (p->tag_head + 1) % WAN_TAGS;
		p->tag_count--;
	}
	return t;
}

/* Decoded frames [n][3][H][W] in [-1,1] -> RGB8 -> EMIT, each with the next tag. */
static int emit_frames(struct wan_pipeline *p, int n, wan_pipeline_emit_fn emit, void *ectx)
{
	for (int f = 0; f < n; f++) {
		wan_rgb8_from_planes(p->out + (size_t)f * 3 * p->npix, p->npix, p->rgb);
		struct wan_frame_tag t = tags_pop(p);
		p->st.frames_out++;
		int rc = emit ? emit(ectx, p->rgb, p->W, p->H, &t) : 0;
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- the stream ---- */

void wan_pipeline_restart(struct wan_pipeline *p)
{
	p->started = false;
	p->decoded = false;
	p->nframes = 0;
	p->tag_count = 0;
	p->tag_head = 0;
	p->later_calls = 0;
	vae_stream_reset(p->vst);
	if (p->tst)
		taehv_stream_reset(p->tst);
#ifdef HERU_WAN_PIPELINE_CUDA
	if (p->cuda) {
		char e[16];
		p->cu->reset(p->cuda, e, sizeof(e));
	}
#endif
}

/* A new stream when the prompt or the seed changed (or nothing is set yet). */
static int maybe_restart(struct wan_pipeline *p, const struct wan_pipeline_params *prm, char *err,
			 size_t errlen)
{
	const char *prompt = prm->prompt ? prm->prompt : "";
	bool new_prompt = !p->have_ctx || strcmp(prompt, p->prompt);
	if (!new_prompt && prm->seed == p->seed)
		return 0;
	if (p->have_ctx || p->st.frames_in > 1)
		p->st.restarts++;
	wan_pipeline_restart(p);
	p->seed = prm->seed;
	if (new_prompt) {
		char *dup = strdup(prompt);
		if (!dup) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		free(p->prompt);
		p->prompt = dup;
		p->have_ctx = false;
		double t0 = wan_now_ms();
		if (run_text(p, err, errlen))
			return -1;
		stage_done(p, WAN_STAGE_TEXT, t0);
		p->have_ctx = true;
	}
	return 0;
}

/* RMS difference of frame J of a later chunk from the one before it (J = 0: the previous
 * chunk's last frame), computed as each frame arrives, so that only the last one's falls on
 * the chunk's own time. */
static void motion_diff(struct wan_pipeline *p, int j)
{
	const size_t n = 3 * p->npix;
	const float *a = p->frames + (size_t)j * n, *b = j ? a - n : p->prev_last;
	double s2 = 0;
	for (size_t i = 0; i < n; i++) {
		double d = (double)a[i] - b[i];
		s2 += d * d;
	}
	p->motion_dj[j] = sqrt(s2 / (double)n);
}

/* Largest frame-to-frame RMS difference over the chunk (prev_last then 4 frames), / 0.2,
 * clamped to 1: the dhat of wan_noise_ctl_update. */
static double motion_dhat(const struct wan_pipeline *p)
{
	double dmax = 0;
	for (int j = 0; j < 4; j++)
		if (p->motion_dj[j] > dmax)
			dmax = p->motion_dj[j];
	double dhat = dmax / 0.2;
	return dhat > 1.0 ? 1.0 : dhat;
}

static int run_first_chunk(struct wan_pipeline *p, const struct wan_pipeline_params *prm,
			   wan_pipeline_emit_fn emit, void *ectx, char *err, size_t errlen)
{
	const size_t hw = (size_t)p->h * p->w;
	double t0 = wan_now_ms();
	if (run_encode(p, p->frames, 5, p->lat, err, errlen))
		return -1;
	stage_done(p, WAN_STAGE_ENCODE, t0);

	t0 = wan_now_ms();
	p->init_scale = wan_pipeline_init_scale(prm->prompt_dominance);
	double s = p->init_scale;
	wan_rng_seed(&p->rng, p->seed);
	struct noise_ctx nc = { .p = p, .mix_left = 2, .z = p->lat, .s = s };
	nc.per_pixel = build_strength(p, prm, s);
	if (nc.per_pixel)
		memset(p->zin, 0, 2 * p->fe * sizeof(float));
	else /* [2][C][hw] -> [C][2][hw] */
		for (int f = 0; f < 2; f++)
			for (int c = 0; c < p->C; c++)
				memcpy(p->zin + ((size_t)c * 2 + f) * hw,
				       p->lat + (size_t)f * p->fe + (size_t)c * hw, hw * sizeof(float));
	if (p->eng.set_context(p->eng.impl, p->ctx, err, errlen) ||
	    dit_stream_first(p->stream, p->zin, s, draw_noise, &nc, p->x0, err, errlen))
		return -1;
	stage_done(p, WAN_STAGE_DIT, t0);
	p->scale_prev = s;
	p->st.noise_scale = s;
	p->first_step = p->st.first_step = 700;
	p->started = true;
	p->later_calls = 0;
	p->st.chunks++;
	memcpy(p->prev_last, p->frames + 4 * 3 * p->npix, 3 * p->npix * sizeof(float));

	t0 = wan_now_ms();
	for (int f = 0; f < 2; f++)
		for (int c = 0; c < p->C; c++)
			memcpy(p->x0f + (size_t)f * p->fe + (size_t)c * hw,
			       p->x0 + ((size_t)c * 2 + f) * hw, hw * sizeof(float));
	int n = run_decode(p, p->x0f, 2, p->out, err, errlen);
	if (n < 0)
		return -1;
	stage_done(p, WAN_STAGE_DECODE, t0);
	if (p->taehv) /* TAEHV drops the first latent's frame: frame 0 has no output */
		tags_pop(p);
	t0 = wan_now_ms();
	int rc = emit_frames(p, n, emit, ectx);
	stage_done(p, WAN_STAGE_OUTPUT, t0);
	return rc;
}

static int run_later_chunk(struct wan_pipeline *p, const struct wan_pipeline_params *prm,
			   wan_pipeline_emit_fn emit, void *ectx, char *err, size_t errlen)
{
	bool emitted = false;
	double t0 = wan_now_ms();
	if (run_encode(p, p->frames, 4, p->lat, err, errlen))
		return -1;
	stage_done(p, WAN_STAGE_ENCODE, t0);

	t0 = wan_now_ms();
	/* a live prompt_dominance change moves s_init; the controller follows it smoothly */
	p->init_scale = wan_pipeline_init_scale(prm->prompt_dominance);
	double s = wan_pipeline_ctl_step(p->init_scale, p->scale_prev, motion_dhat(p),
					 prm->motion_lock);
	if (s < 0.1)
		s = 0.1;
	struct noise_ctx nc = { .p = p, .mix_left = 1, .z = p->lat, .s = s };
	nc.per_pixel = build_strength(p, prm, s);
	const float *zin = p->lat; /* one frame: [C][h][w] is both layouts */
	if (nc.per_pixel) {
		memset(p->zin, 0, p->fe * sizeof(float));
		zin = p->zin;
	}
	if (dit_stream_next(p->stream, zin, s, draw_noise, &nc, p->x0, &emitted, err, errlen))
		return -1;
	stage_done(p, WAN_STAGE_DIT, t0);
	p->scale_prev = s;
	p->st.noise_scale = s;
	p->first_step = p->st.first_step = wan_first_step(s);
	p->later_calls++;
	p->st.chunks++;
	memcpy(p->prev_last, p->frames + 3 * 3 * p->npix, 3 * p->npix * sizeof(float));
	if (!emitted)
		return 0;

	t0 = wan_now_ms();
	int n = run_decode(p, p->x0, 1, p->out, err, errlen);
	if (n < 0)
		return -1;
	stage_done(p, WAN_STAGE_DECODE, t0);
	t0 = wan_now_ms();
	int rc = emit_frames(p, n, emit, ectx);
	stage_done(p, WAN_STAGE_OUTPUT, t0);
	return rc;
}

int wan_pipeline_push(struct wan_pipeline *p, const uint8_t *rgb, int width, int height,
		      size_t stride, const struct wan_frame_tag *tag,
		      const struct wan_pipeline_params *prm, wan_pipeline_emit_fn emit,
		      void *emit_ctx, char *err, size_t errlen)
{
	struct wan_frame_tag none = { 0, 0 };
	int rc;

	if (!rgb || width < 1 || height < 1 || width > WAN_MAX_INPUT || height > WAN_MAX_INPUT ||
	    stride < (size_t)width * 3) {
		snprintf(err, errlen, "bad input frame (%dx%d, stride %zu): RGB8 of 1..%d pixels a "
			 "side is required", width, height, stride, WAN_MAX_INPUT);
		return -1;
	}
	if (prm->preserve && (prm->preserve_w < 1 || prm->preserve_h < 1 ||
			      prm->preserve_w > WAN_MAX_INPUT || prm->preserve_h > WAN_MAX_INPUT)) {
		snprintf(err, errlen, "bad preserve map size %dx%d", prm->preserve_w,
			 prm->preserve_h);
		return -1;
	}
	p->st.frames_in++;
	if (maybe_restart(p, prm, err, errlen))
		return -1;
	double t0 = wan_now_ms();
	if (wan_resize_rgb8(&p->rs, rgb, width, height, stride, p->W, p->H,
			    p->frames + (size_t)p->nframes * 3 * p->npix, err, errlen))
		return -1;
	if (p->started) /* a later chunk: its frames' motion, as they come */
		motion_diff(p, p->nframes);
	stage_done(p, WAN_STAGE_RESIZE, t0);
	p->nframes++;
	tags_push(p, tag ? tag : &none);

	if (p->nframes < (p->started ? 4 : 5))
		return 0;
	rc = p->started ? run_later_chunk(p, prm, emit, emit_ctx, err, errlen)
			: run_first_chunk(p, prm, emit, emit_ctx, err, errlen);
	p->nframes = 0;
	if (rc < 0) {
		wan_pipeline_restart(p);
		return -1;
	}
	if (rc > 0) {
		snprintf(err, errlen, "the frame consumer stopped the pipeline (%d)", rc);
		return -1;
	}
	return 0;
}

enum wan_pipeline_phase wan_pipeline_phase(const struct wan_pipeline *p)
{
	if (!p->started)
		return WAN_PHASE_IDLE;
	return p->later_calls >= p->steps ? WAN_PHASE_ACTIVE : WAN_PHASE_WARMUP;
}

void wan_pipeline_get_stats(const struct wan_pipeline *p, struct wan_pipeline_stats *out)
{
	*out = p->st;
}

void wan_pipeline_size(const struct wan_pipeline *p, int *width, int *height)
{
	*width = p->W;
	*height = p->H;
}
