/* check_vae_fixture.h: a minimal f32 safetensors reader for the VAE/TAEHV tests, so they depend
 * only on the fixtures (the engine's loader is plugins/wan/wt_file.c). */
#ifndef HERU_CHECK_VAE_FIXTURE_H
#define HERU_CHECK_VAE_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "vae_source.h"

struct fx_file;

/* Opens PATH (a safetensors file holding F32 tensors). new; NULL with ERR on failure. */
struct fx_file *fx_open(const char *path, char *err, size_t errlen);
void fx_close(struct fx_file *f);
/* Borrowed data of tensor NAME, its shape in SHAPE/NDIM; NULL when absent. */
const float *fx_get(const struct fx_file *f, const char *name, int *ndim, int64_t *shape);
/* A vae_source over F (borrowed). */
struct vae_source fx_source(struct fx_file *f);
/* Path of a fixture under $top_srcdir/tests/fixtures/wan/vae/ (static buffer). */
const char *fx_path(const char *name);

/* max |a-b| / max(max |b|, 1e-6) */
double fx_rel_max(const float *a, const float *b, size_t n);

#endif
