/* cli_pipeline.c: heru-wan random-vae, a Wan VAE (and optionally TAEHV) checkpoint of random
 * weights at the real architecture (or a --config), so a weights folder for the pipeline can be
 * made without downloading anything (GPU end-to-end runs, benchmarks). The tensors are the ones
 * the loaders read, named and shaped as in Wan2.1_VAE.pth / taew2_1.pth, written as f32
 * safetensors; the values are vae_source_random's (deterministic in --seed). The TAEHV TGrow
 * conv that the loader trims (patch_tgrow_layers) is written at its trimmed shape. */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taehv_model.h"
#include "vae_config.h"
#include "vae_model.h"
#include "vae_source.h"
#include "wt_file.h"

/* A source that reads from the random source and copies every tensor into a writer. */
struct rec_ctx {
	struct vae_source inner;
	struct wt_writer *w; /* borrowed */
};

static int rec_read(void *ctx, const char *name, int ndim, const int64_t *shape, float *dst,
		    char *err, size_t errlen)
{
	struct rec_ctx *r = ctx;
	if (r->inner.read(r->inner.ctx, name, ndim, shape, dst, err, errlen))
		return -1;
	return wt_writer_add(r->w, name, WT_F32, ndim, shape, dst, err, errlen) < 0 ? -1 : 0;
}

static int rec_shape(void *ctx, const char *name, int64_t *shape)
{
	struct rec_ctx *r = ctx;
	return r->inner.shape(r->inner.ctx, name, shape);
}

static void usage(FILE *out)
{
	fprintf(out, "usage: heru-wan random-vae --out VAE.safetensors [--taehv-out T.safetensors]"
		" [--config C] [--seed N]\n"
		"  writes Wan VAE (and TAEHV) random weights with the real tensor names and shapes\n"
		"  (or those of the VAE config C), as f32 safetensors\n");
}

int cli_random_vae(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' }, { "taehv-out", required_argument, NULL, 't' },
		{ "config", required_argument, NULL, 'c' }, { "seed", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 }
	};
	const char *out = NULL, *tout = NULL, *cfg = NULL;
	uint64_t seed = 1;
	char err[512] = "";
	int c, rc = 1;
	struct vae_config vc;
	struct taehv_config tc;
	struct wt_writer *w = NULL;
	struct vae_model *vm = NULL;
	struct taehv_model *tm = NULL;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 't': tout = optarg; break;
		case 'c': cfg = optarg; break;
		case 's': {
			char *end;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (!*optarg || *end) {
				fprintf(stderr, "heru-wan random-vae: --seed must be a number, not '%s'\n",
					optarg);
				return 2;
			}
			seed = v;
			break;
		}
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!out || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (vae_config_load(cfg, &vc, &tc, err, sizeof(err)))
		goto done;
	struct rec_ctx rec = { .inner = vae_source_random(&seed) };
	struct vae_source src = { .ctx = &rec, .read = rec_read, .shape = rec_shape,
				  .path = "(random weights)" };
	if (!(rec.w = w = wt_writer_new())) {
		snprintf(err, sizeof(err), "out of memory");
		goto done;
	}
	vm = vae_model_load(&vc, &src, VAE_LOAD_ENCODER | VAE_LOAD_DECODER, err, sizeof(err));
	if (!vm || wt_writer_save(w, out, err, sizeof(err)) < 0)
		goto done;
	printf("wrote %s\n", out);
	if (tout) {
		wt_writer_free(w);
		if (!(rec.w = w = wt_writer_new())) {
			snprintf(err, sizeof(err), "out of memory");
			goto done;
		}
		tm = taehv_model_load(&tc, &src, err, sizeof(err));
		if (!tm || wt_writer_save(w, tout, err, sizeof(err)) < 0)
			goto done;
		printf("wrote %s\n", tout);
	}
	rc = 0;
done:
	if (rc)
		fprintf(stderr, "heru-wan random-vae: %s\n", err);
	taehv_model_free(tm);
	vae_model_free(vm);
	wt_writer_free(w);
	return rc;
}
