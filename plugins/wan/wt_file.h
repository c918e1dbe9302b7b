/* wt_file.h: tensor files for the Wan engine: safetensors (single or sharded via
 * *.safetensors.index.json) and PyTorch torch.save zip checkpoints (.pt/.pth), read through
 * mmap; and a safetensors writer.
 *
 * Every size read from a file is bounded before use; a truncated or corrupt file gives one
 * error naming the file (and the tensor). Tensors are read-only views into the mapping; an
 * open wt_file never changes, so any number of threads may read it at once. */
#ifndef HERU_WAN_WT_FILE_H
#define HERU_WAN_WT_FILE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum wt_dtype { WT_F32, WT_F16, WT_BF16, WT_F64, WT_I64, WT_I32, WT_I16, WT_I8, WT_U8, WT_BOOL };
#define WT_MAX_DIMS 8

struct wt_tensor {
	const char *name;          /* borrowed from the file */
	enum wt_dtype dtype;
	int ndim;
	int64_t shape[WT_MAX_DIMS];
	/* borrowed: little-endian, contiguous, inside the mmapped file (or a buffer the file
	 * owns). Not necessarily aligned to the element size: read it with memcpy or through
	 * wt_read_f32 / wt_read_i64. */
	const void *data;
	size_t nbytes;
};

struct wt_file;  /* opaque */

/* Opens a .safetensors file, a *.safetensors.index.json shard index, or a torch.save zip
 * (.pt/.pth; top keys generator > generator_ema > state_dict > bare dict are unwrapped).
 * The format is detected from the content, not the name. new; NULL with ERR on failure. */
struct wt_file *wt_open(const char *path, char *err, size_t errlen);
void wt_close(struct wt_file *f);
const char *wt_path(const struct wt_file *f);
size_t wt_count(const struct wt_file *f);
/* Tensors in file order (safetensors: by data offset; torch: state dict order). borrowed. */
const struct wt_tensor *wt_at(const struct wt_file *f, size_t i);
/* Finds NAME, else "model." NAME (the StreamDiffusionV2 prefix). borrowed, NULL when absent. */
const struct wt_tensor *wt_find(const struct wt_file *f, const char *name);

/* Converts tensor NAME (f32/f16/bf16/f64) to f32 into DST after checking it exists and its
 * shape is exactly SHAPE[0..NDIM); errors name the file and the tensor and the mismatch. */
int wt_read_f32(const struct wt_file *f, const char *name, int ndim, const int64_t *shape,
		float *dst, char *err, size_t errlen);
float *wt_load_f32(const struct wt_file *f, const char *name, int ndim, const int64_t *shape,
		   char *err, size_t errlen);   /* new (free()) */
int wt_read_i64(const struct wt_file *f, const char *name, int ndim, const int64_t *shape,
		int64_t *dst, char *err, size_t errlen);  /* from i64/i32 */

/* Same checks, converting to bf16 (round to nearest even; a bf16 tensor is copied as is):
 * for the GPU path, which keeps weights in bf16. */
int wt_read_bf16(const struct wt_file *f, const char *name, int ndim, const int64_t *shape,
		 uint16_t *dst, char *err, size_t errlen);

/* Converts any float tensor T (f32/f16/bf16/f64) to f32 (or bf16) into DST (T's element
 * count). */
int wt_tensor_to_f32(const struct wt_tensor *t, float *dst, char *err, size_t errlen);
int wt_tensor_to_bf16(const struct wt_tensor *t, uint16_t *dst, char *err, size_t errlen);

/* Helpers. */
size_t wt_dtype_size(enum wt_dtype dt);
const char *wt_dtype_name(enum wt_dtype dt);              /* "F32", "BF16", ... */
int wt_dtype_parse(const char *s, enum wt_dtype *out);    /* safetensors names; 0 or -1 */
int64_t wt_numel(const struct wt_tensor *t);
/* Writes "[a,b,c]" into BUF. Returns BUF. */
char *wt_shape_str(int ndim, const int64_t *shape, char *buf, size_t buflen);
float wt_bf16_to_f32(uint16_t v);
uint16_t wt_f32_to_bf16(float v);       /* round to nearest even; NaN stays NaN */
float wt_f16_to_f32(uint16_t v);
uint16_t wt_f32_to_f16(float v);        /* round to nearest even */

/* Writer: tensors are copied in; save writes a safetensors file (to a temporary name in the
 * same folder, renamed over PATH at the end, so a failed save leaves PATH untouched). */
struct wt_writer;
struct wt_writer *wt_writer_new(void);   /* new */
int wt_writer_add(struct wt_writer *w, const char *name, enum wt_dtype dtype, int ndim,
		  const int64_t *shape, const void *data, char *err, size_t errlen);
/* Adds a tensor whose bytes are produced at save time, so huge files never sit in memory:
 * FILL(ctx, first, count, dst) writes elements [first, first+count) in DTYPE's little-endian
 * encoding to DST (aligned to the element size). It may be called from several threads at
 * once for disjoint ranges, and must give the same bytes for the same range whatever the
 * order. CTX is borrowed until save. */
typedef void (*wt_fill_fn)(void *ctx, int64_t first, int64_t count, void *dst);
int wt_writer_add_fill(struct wt_writer *w, const char *name, enum wt_dtype dtype, int ndim,
		       const int64_t *shape, wt_fill_fn fill, void *ctx, char *err, size_t errlen);
/* Optional string metadata (the safetensors "__metadata__" object). */
int wt_writer_set_metadata(struct wt_writer *w, const char *key, const char *value,
			   char *err, size_t errlen);
/* Threads used for fill tensors at save time (default: online CPUs, at most 16). */
void wt_writer_set_threads(struct wt_writer *w, int nthreads);
int wt_writer_save(struct wt_writer *w, const char *path, char *err, size_t errlen);
void wt_writer_free(struct wt_writer *w);

#ifdef __cplusplus
}
#endif
#endif
