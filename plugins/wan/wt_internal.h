/* wt_internal.h: what the tensor-file readers (wt_safetensors.c, wt_torchzip.c,
 * wt_unpickle.c) share with wt_file.c. Not for use outside wt_*.c. */
#ifndef HERU_WAN_WT_INTERNAL_H
#define HERU_WAN_WT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wan_err.h"
#include "wt_file.h"

/* Bounds on what a file may ask for (checked before allocating). */
#define WT_MAX_HEADER (100u << 20)      /* safetensors JSON header */
#define WT_MAX_PICKLE (1u << 30)        /* data.pkl */
#define WT_MAX_TENSORS (1u << 20)
#define WT_MAX_NAME 4096

struct wt_file {
	char *path;                      /* new */
	void *map;                       /* new (munmap), NULL when none */
	size_t map_size;
	struct wt_tensor *tensors;       /* new, COUNT entries */
	size_t count, cap;
	char **names;                    /* new, strings owned here (names_count) */
	size_t names_count, names_cap;
	void **bufs;                     /* new, tensor copies owned here (strided torch views) */
	size_t bufs_count, bufs_cap;
	struct wt_file **subs;           /* new, shards of an index.json */
	size_t subs_count;
	const struct wt_tensor **sorted; /* new, TENSORS sorted by name (after wt_finish) */
};

/* Maps F->path read-only into F->map / F->map_size. 0 or -1 with ERR. */
int wt_map_file(struct wt_file *f, char *err, size_t errlen);
/* Appends a tensor; NAME is copied. Returns the new entry, or NULL (ERR set). */
struct wt_tensor *wt_add_tensor(struct wt_file *f, const char *name, size_t namelen,
				char *err, size_t errlen);
/* Hands BUF (new) to F. 0 or -1 (BUF freed). */
int wt_own_buffer(struct wt_file *f, void *buf, char *err, size_t errlen);
/* Sorts the name index and refuses duplicate names. */
int wt_finish(struct wt_file *f, char *err, size_t errlen);

/* wt_open for the shards of an index: refuses JSON (an index naming an index). */
struct wt_file *wt_open_shard(const char *path, char *err, size_t errlen);

/* Readers: fill F (already holding path) from its mapping or from the files it names. */
int wt_load_safetensors(struct wt_file *f, char *err, size_t errlen);
int wt_load_index(struct wt_file *f, char *err, size_t errlen);
int wt_load_torchzip(struct wt_file *f, char *err, size_t errlen);

/* The restricted unpickler (wt_unpickle.c), driven by wt_torchzip.c. */
struct wt_zip;
/* Looks up a stored zip entry by full name; DATA and SIZE point into the mapping. 0 or -1. */
int wt_zip_entry(const struct wt_zip *z, const char *name, const uint8_t **data, size_t *size);
/* Unpickles PKL (the bytes of PREFIX/data.pkl) and adds the selected state dict's tensors
 * to F, resolving storages as PREFIX/data/KEY through Z. */
int wt_unpickle_state_dict(struct wt_file *f, const struct wt_zip *z, const char *prefix,
			   const uint8_t *pkl, size_t pkl_size, char *err, size_t errlen);

/* Overflow-checked arithmetic. */
static inline bool wt_mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
	return !__builtin_mul_overflow(a, b, out);
}
static inline bool wt_add_ok(uint64_t a, uint64_t b, uint64_t *out)
{
	return !__builtin_add_overflow(a, b, out);
}

#endif
