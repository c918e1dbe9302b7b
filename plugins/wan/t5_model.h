/* t5_model.h: the umT5 encoder's configuration and weights (spec §1.2, §3.4, §6).
 *
 * A config is the umT5-XXL preset, a JSON file with upstream's T5Encoder argument names, or is
 * read off the shapes of a checkpoint. A t5_weights validates a checkpoint against a config
 * (every tensor present with its exact shape, nothing unexpected: upstream loads it strict)
 * and gives borrowed views of its tensors for the CPU reference and the CUDA encoder. */
#ifndef HERU_WAN_T5_MODEL_H
#define HERU_WAN_T5_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "wt_file.h"

#ifdef __cplusplus
extern "C" {
#endif

struct t5_config {
	int vocab_size, dim, dim_attn, dim_ffn, num_heads, num_layers, num_buckets;
	int head_dim;  /* dim_attn / num_heads */
	int max_dist;  /* 128, upstream's T5RelativeEmbedding default */
	double eps;    /* 1e-6 */
};

/* The Wan text length and upper bounds on what a config may ask for. */
#define T5_TEXT_LEN 512
#define T5_MAX_DIM 65536
#define T5_MAX_VOCAB (1 << 22)
#define T5_MAX_LAYERS 256

/* SPEC: "umt5-xxl" (case-insensitive) or a JSON file with vocab_size, dim, dim_attn, dim_ffn,
 * num_heads, num_layers, num_buckets (all required; "shared_pos": true is refused, other keys
 * are ignored). Returns 0, or -1 with ERR and OUT untouched. */
int t5_config_load(const char *spec, struct t5_config *out, char *err, size_t errlen);
int t5_config_parse(const char *json, size_t len, const char *source, struct t5_config *out,
		    char *err, size_t errlen);
void t5_config_umt5_xxl(struct t5_config *out);
int t5_config_validate(const struct t5_config *c, char *err, size_t errlen);
/* Reads the config off F's tensor shapes (num_heads from the relative-bias table). */
int t5_config_from_file(const struct wt_file *f, struct t5_config *out, char *err, size_t errlen);
/* Parameter count and the FLOPs of one forward pass over LEN tokens (2 per multiply-add). */
int64_t t5_config_params(const struct t5_config *c);
double t5_config_flops(const struct t5_config *c, int len);

/* Bucket of the relative position REL = key - query (bidirectional), as upstream computes it
 * in float32. */
int t5_rel_bucket(int rel, int num_buckets, int max_dist);

struct t5_layer_tensors {
	const struct wt_tensor *norm1, *q, *k, *v, *o, *norm2, *gate, *fc1, *fc2, *pos;
};

struct t5_weights {
	struct t5_config cfg;
	const struct wt_file *file;           /* borrowed */
	const struct wt_tensor *embedding;    /* borrowed */
	const struct wt_tensor *norm;         /* borrowed */
	struct t5_layer_tensors *layers;      /* new [num_layers], entries borrowed */
};

/* Checks F against CFG (names and shapes; unexpected tensors are an error) and fills W. F must
 * outlive W. Float dtypes F32, F16, BF16 are accepted. Returns 0 or -1 with ERR. */
int t5_weights_init(struct t5_weights *w, const struct wt_file *f, const struct t5_config *cfg,
		    char *err, size_t errlen);
void t5_weights_release(struct t5_weights *w);

/* Random bf16 weights of CFG's shape held in memory, for benchmarks and tests: uniform values
 * scaled like a trained model's (norm gains near 1, projections ~1/sqrt(fan_in)), a function
 * of SEED and the tensor only. W's tensors point into the returned holder (new; free with
 * t5_random_free after W is released). THREADS <= 0 uses the online CPUs. */
struct t5_random;
struct t5_random *t5_weights_random(struct t5_weights *w, const struct t5_config *cfg, uint64_t seed,
				    int threads, char *err, size_t errlen);
void t5_random_free(struct t5_random *r);

/* Converts row ROW of a 2-D float tensor to f32 (DST holds shape[1] floats). */
int t5_tensor_row_f32(const struct wt_tensor *t, int64_t row, float *dst);

#ifdef __cplusplus
}
#endif
#endif
