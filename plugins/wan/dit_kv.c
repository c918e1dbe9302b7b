/* dit_kv.c: KV ring buffer bookkeeping (see the DESIGN note in dit_kv.h).
 *
 * Each (layer, slot) has an evict list of row offsets, exactly upstream's
 * CausalWanSelfAttention.evict_idx[slot]: "rolling" entries (> sink rows) appended while the
 * cache fills, and pending sink refreshes ((j+1)*L <= sink rows) inserted at the front. A write
 * into the full cache goes to the rows ending at the front entry, which is popped and
 * re-appended only if it is a rolling entry. So the list is always [pending refreshes, newest
 * first][rolling entries in rotation order], which is what lets the pending part be capped. */
#include "dit_kv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kv_slot {
	int64_t *list;   /* cap entries; borrowed from dit_kv.lists */
	int n;           /* entries in use */
	int64_t global_end, local_end;
};

struct dit_kv {
	struct dit_kv_config c;
	int slots;        /* current cache batch */
	int cap;          /* list capacity */
	int *current_step;/* [layers] */
	struct kv_slot *st; /* [layers][max_slots] */
	int64_t *lists;   /* [layers][max_slots][cap] */
	long refreshes;   /* sink refreshes since the last reset */
};

struct dit_kv *dit_kv_new(const struct dit_kv_config *c, char *err, size_t errlen)
{
	if (c->tokens_per_frame < 1 || c->tokens_per_frame > (1 << 22)) {
		snprintf(err, errlen, "tokens per frame must be 1..%d, got %d", 1 << 22,
			 c->tokens_per_frame);
		return NULL;
	}
	if (c->kv_frames < 4 || c->kv_frames > 48) {
		snprintf(err, errlen, "kv-frames must be 4..48, got %d", c->kv_frames);
		return NULL;
	}
	if (c->sink_frames < 0 || c->sink_frames >= c->kv_frames) {
		snprintf(err, errlen, "sink-frames must be 0..%d (below kv-frames), got %d",
			 c->kv_frames - 1, c->sink_frames);
		return NULL;
	}
	if ((int64_t)c->kv_frames * c->tokens_per_frame > (1 << 26)) {
		snprintf(err, errlen, "kv cache of %d frames x %d tokens is too long", c->kv_frames,
			 c->tokens_per_frame);
		return NULL;
	}
	if (c->total_steps < 1 || c->max_slots < 1 || c->max_slots > 64 || c->layers < 1 ||
	    c->layers > 1024) {
		snprintf(err, errlen, "bad kv cache shape: %d steps, %d slots, %d layers",
			 c->total_steps, c->max_slots, c->layers);
		return NULL;
	}
	struct dit_kv *kv = calloc(1, sizeof(*kv));
	if (!kv)
		goto oom;
	kv->c = *c;
	kv->cap = DIT_KV_SINK_PENDING_MAX + c->kv_frames + 1;
	size_t nst = (size_t)c->layers * c->max_slots;
	kv->current_step = calloc((size_t)c->layers, sizeof(int));
	kv->st = calloc(nst, sizeof(*kv->st));
	kv->lists = calloc(nst * kv->cap, sizeof(int64_t));
	if (!kv->current_step || !kv->st || !kv->lists)
		goto oom;
	for (size_t i = 0; i < nst; i++)
		kv->st[i].list = kv->lists + i * kv->cap;
	dit_kv_reset(kv);
	return kv;
oom:
	dit_kv_free(kv);
	snprintf(err, errlen, "out of memory for the kv cache state");
	return NULL;
}

void dit_kv_free(struct dit_kv *kv)
{
	if (!kv)
		return;
	free(kv->current_step);
	free(kv->st);
	free(kv->lists);
	free(kv);
}

const struct dit_kv_config *dit_kv_config(const struct dit_kv *kv)
{
	return &kv->c;
}

static struct kv_slot *slot_at(const struct dit_kv *kv, int layer, int slot)
{
	return &kv->st[(size_t)layer * kv->c.max_slots + slot];
}

void dit_kv_reset(struct dit_kv *kv)
{
	kv->slots = 1;
	kv->refreshes = 0;
	for (int l = 0; l < kv->c.layers; l++) {
		kv->current_step[l] = kv->c.total_steps;
		for (int s = 0; s < kv->c.max_slots; s++) {
			struct kv_slot *st = slot_at(kv, l, s);
			st->n = 0;
			st->global_end = st->local_end = 0;
		}
	}
}

int dit_kv_expand(struct dit_kv *kv, int slots, char *err, size_t errlen)
{
	if (slots < 1 || slots > kv->c.max_slots) {
		snprintf(err, errlen, "cannot expand the kv cache to %d slots (max %d)", slots,
			 kv->c.max_slots);
		return -1;
	}
	for (int l = 0; l < kv->c.layers; l++) {
		struct kv_slot *s0 = slot_at(kv, l, 0);
		for (int s = 1; s < slots; s++) {
			struct kv_slot *d = slot_at(kv, l, s);
			memcpy(d->list, s0->list, sizeof(int64_t) * s0->n);
			d->n = s0->n;
			d->global_end = s0->global_end;
			d->local_end = s0->local_end;
		}
	}
	kv->slots = slots;
	return 0;
}

int dit_kv_slots(const struct dit_kv *kv)
{
	return kv->slots;
}

int dit_kv_rows(const struct dit_kv *kv)
{
	return kv->c.kv_frames * kv->c.tokens_per_frame;
}

bool dit_kv_sink_check_needed(const struct dit_kv *kv, int n_new)
{
	return kv->c.sink_frames > 0 && kv->c.sink_threshold > -1.0 &&
	       n_new == kv->c.tokens_per_frame;
}

int dit_kv_sink_pick(const struct dit_kv *kv, const double *a)
{
	int best = 0;
	for (int j = 1; j < kv->c.sink_frames; j++)
		if (a[j] < a[best])
			best = j;
	return a[best] < kv->c.sink_threshold ? best : -1;
}

static void list_insert_front(struct dit_kv *kv, struct kv_slot *st, int64_t v)
{
	int64_t sink_rows = (int64_t)kv->c.sink_frames * kv->c.tokens_per_frame;
	int pending = 0;
	while (pending < st->n && st->list[pending] <= sink_rows)
		pending++;
	if (pending >= DIT_KV_SINK_PENDING_MAX) {
		/* forget the oldest pending refresh (the last of the pending run) */
		memmove(st->list + pending - 1, st->list + pending,
			sizeof(int64_t) * (st->n - pending));
		st->n--;
	}
	memmove(st->list + 1, st->list, sizeof(int64_t) * st->n);
	st->list[0] = v;
	st->n++;
}

/* Where a write would go, without changing anything. 0, or -1 with ERR. */
static int kv_plan(const struct dit_kv *kv, int layer, int slot, int64_t c_start, int n_new,
		   int sink_refresh, bool *full, int64_t *write_end, int64_t *local_end,
		   char *err, size_t errlen)
{
	const int64_t L = kv->c.tokens_per_frame;
	const int64_t rows = (int64_t)kv->c.kv_frames * L;
	if (layer < 0 || layer >= kv->c.layers || slot < 0 || slot >= kv->slots) {
		snprintf(err, errlen, "kv cache: no layer %d slot %d", layer, slot);
		return -1;
	}
	if (n_new < 1 || n_new > rows || c_start < 0) {
		snprintf(err, errlen, "kv cache: cannot write %d tokens at %lld", n_new,
			 (long long)c_start);
		return -1;
	}
	if (sink_refresh >= kv->c.sink_frames) {
		snprintf(err, errlen, "kv cache: no sink frame %d", sink_refresh);
		return -1;
	}
	const struct kv_slot *st = slot_at(kv, layer, slot);
	int64_t c_end = c_start + n_new;
	*full = c_end > rows || st->local_end >= rows;
	if (*full) {
		*write_end = sink_refresh >= 0 ? (sink_refresh + 1) * L : (st->n ? st->list[0] : -1);
		*local_end = rows;
		if (*write_end - n_new < 0 || *write_end > rows) {
			snprintf(err, errlen,
				 "kv cache: the ring has no free slot for %d tokens (layer %d slot %d)",
				 n_new, layer, slot);
			return -1;
		}
	} else {
		*local_end = st->local_end + c_end - st->global_end;
		*write_end = *local_end;
		if (*local_end - n_new < 0 || *local_end > rows) {
			snprintf(err, errlen, "kv cache: write [%lld, %lld) leaves the cache",
				 (long long)(*local_end - n_new), (long long)*local_end);
			return -1;
		}
	}
	return 0;
}

/* Applies a planned write (kv_plan succeeded with the same arguments). */
static void kv_commit(struct dit_kv *kv, int layer, int slot, int64_t c_start, int n_new,
		      int sink_refresh, bool full, int64_t write_end, int64_t local_end,
		      struct dit_kv_step *out)
{
	const int64_t L = kv->c.tokens_per_frame;
	const int64_t rows = (int64_t)kv->c.kv_frames * L;
	const int64_t sink_rows = (int64_t)kv->c.sink_frames * L;
	struct kv_slot *st = slot_at(kv, layer, slot);
	int64_t c_end = c_start + n_new;
	if (sink_refresh >= 0) {
		list_insert_front(kv, st, (sink_refresh + 1) * L);
		kv->refreshes++;
	}
	if (full) {
		if (kv->slots == 1 && kv->current_step[layer] > 1) {
			kv->current_step[layer]--; /* no-batch: every step of a chunk reuses the slot */
		} else {
			int64_t e = st->list[0];
			memmove(st->list, st->list + 1, sizeof(int64_t) * (st->n - 1));
			st->n--;
			if (e > sink_rows)
				st->list[st->n++] = e;
			kv->current_step[layer] = kv->c.total_steps;
		}
	} else {
		int64_t rolling = c_end + n_new;
		if (rolling > sink_rows && rolling <= rows &&
		    (st->n == 0 || st->list[st->n - 1] != rolling) && st->n < kv->cap)
			st->list[st->n++] = rolling;
	}
	st->global_end = c_end;
	st->local_end = local_end;
	out->write_row = (int)(write_end - n_new);
	out->attn_len = (int)local_end;
}

int dit_kv_advance(struct dit_kv *kv, int layer, int slot, int64_t c_start, int n_new,
		   int sink_refresh, struct dit_kv_step *out, char *err, size_t errlen)
{
	bool full;
	int64_t write_end, local_end;
	if (kv_plan(kv, layer, slot, c_start, n_new, sink_refresh, &full, &write_end, &local_end,
		    err, errlen))
		return -1;
	kv_commit(kv, layer, slot, c_start, n_new, sink_refresh, full, write_end, local_end, out);
	return 0;
}

int dit_kv_advance_layers(struct dit_kv *kv, int slot, int64_t c_start, int n_new,
			  struct dit_kv_step *out, char *err, size_t errlen)
{
	if (dit_kv_sink_check_needed(kv, n_new)) {
		snprintf(err, errlen, "kv cache: with the adaptive sink on, each layer needs its own "
			 "sink decision (use dit_kv_advance per layer)");
		return -1;
	}
	bool full;
	int64_t write_end, local_end;
	for (int l = 0; l < kv->c.layers; l++)
		if (kv_plan(kv, l, slot, c_start, n_new, -1, &full, &write_end, &local_end, err,
			    errlen))
			return -1;
	for (int l = 0; l < kv->c.layers; l++) {
		kv_plan(kv, l, slot, c_start, n_new, -1, &full, &write_end, &local_end, err, errlen);
		kv_commit(kv, l, slot, c_start, n_new, -1, full, write_end, local_end, &out[l]);
	}
	return 0;
}

int dit_kv_evict_list(const struct dit_kv *kv, int layer, int slot, int64_t *out, int max)
{
	const struct kv_slot *st = slot_at(kv, layer, slot);
	for (int i = 0; i < st->n && i < max; i++)
		out[i] = st->list[i];
	return st->n;
}

int64_t dit_kv_local_end(const struct dit_kv *kv, int layer, int slot)
{
	return slot_at(kv, layer, slot)->local_end;
}

int64_t dit_kv_global_end(const struct dit_kv *kv, int layer, int slot)
{
	return slot_at(kv, layer, slot)->global_end;
}

int dit_kv_current_step(const struct dit_kv *kv, int layer)
{
	return kv->current_step[layer];
}

long dit_kv_sink_refreshes(const struct dit_kv *kv)
{
	return kv->refreshes;
}

int dit_kv_attn_len(const struct dit_kv *kv, int layer, int slot, int64_t c_start, int n_new)
{
	bool full;
	int64_t write_end, local_end;
	char err[8];
	int pick = -1;

	/* a full cache with an empty evict list needs a refresh to have a row: the length is
	 * the same either way */
	if (kv_plan(kv, layer, slot, c_start, n_new, pick, &full, &write_end, &local_end, err,
		    sizeof(err)) && (kv->c.sink_frames < 1 ||
		    kv_plan(kv, layer, slot, c_start, n_new, 0, &full, &write_end, &local_end, err,
			    sizeof(err))))
		return -1;
	return (int)local_end;
}
