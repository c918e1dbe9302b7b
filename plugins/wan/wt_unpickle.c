/* wt_unpickle.c: a restricted unpickler for torch.save's data.pkl. It understands the pickle
 * protocol 2 opcodes torch emits for a state dict and the handful of values that sit next to
 * one (ints, floats, strings, bools, None, tuples, lists, dicts), and it calls nothing: the
 * only globals accepted are collections.OrderedDict, torch._utils._rebuild_tensor_v2,
 * torch._utils._rebuild_parameter(_with_state), torch._tensor._rebuild_from_type_v2 (with
 * torch.Tensor / torch.nn.parameter.Parameter as its type) and the torch.*Storage types,
 * each interpreted here. Any other opcode or global is refused with an error naming the file
 * and what was refused.
 *
 * A storage is the persistent id ('storage', torch.FloatStorage, KEY, LOCATION, NUMEL)
 * (torch 1.13 and 2.x both write the typed storage class, even though 2.x keeps untyped
 * storages internally); its bytes are the zip entry PREFIX/data/KEY. A tensor is
 * _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]):
 * contiguous views point into the mapping, other strides are gathered into a copy.
 *
 * The top-level object selects the state dict: its "generator", else "generator_ema", else
 * "state_dict" value when that is a dict, else the object itself (StreamDiffusionV2's
 * load_generator_state_dict order). Non-tensor entries of the state dict are skipped. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wt_internal.h"

enum ptype { P_NONE, P_BOOL, P_INT, P_FLOAT, P_STR, P_BYTES, P_TUPLE, P_LIST, P_DICT, P_GLOBAL,
	     P_STORAGE, P_TENSOR };
enum pglobal { G_ORDERED_DICT, G_REBUILD_TENSOR_V2, G_REBUILD_PARAMETER, G_REBUILD_FROM_TYPE,
	       G_TENSOR_TYPE, G_STORAGE_TYPE };

struct pobj {
	enum ptype type;
	int64_t i;                /* INT, BOOL; STORAGE: numel; TENSOR: storage offset */
	const char *s;            /* STR, BYTES: borrowed from the pickle; STORAGE: key */
	size_t slen;
	struct pobj **items;      /* TUPLE, LIST; DICT: key, value, key, value, ... (new) */
	size_t n, cap;
	enum pglobal global;      /* GLOBAL */
	enum wt_dtype dtype;      /* GLOBAL storage type, STORAGE, TENSOR */
	struct pobj *storage;     /* TENSOR */
	int ndim;                 /* TENSOR */
	int64_t shape[WT_MAX_DIMS], stride[WT_MAX_DIMS];
	struct pobj *next;        /* allocation list */
};

struct up {
	struct wt_file *f;
	const struct wt_zip *z;
	const char *prefix;
	const uint8_t *p, *end, *start;
	struct pobj **stack;
	size_t sp, scap;
	size_t *marks;
	size_t nmarks, mcap;
	struct pobj **memo;
	size_t memo_cap, memo_count;
	struct pobj *all;         /* every object, for freeing */
	size_t nobjects;
	char *err;
	size_t errlen;
};

/* Bounds far above what a state dict (or its optimizer state) needs: about 30 objects and a
 * few marks per tensor. */
#define MAX_OBJECTS (1u << 21)
#define MAX_MARKS (1u << 16)
#define MAX_MEMO (1u << 22)

static struct pobj *obj_new(struct up *u, enum ptype t)
{
	struct pobj *o;

	if (++u->nobjects > MAX_OBJECTS) {
		wt_seterr(u->err, u->errlen, "'%s': data.pkl holds more than %u objects", u->f->path,
			  MAX_OBJECTS);
		return NULL;
	}
	o = calloc(1, sizeof *o);
	if (!o) {
		wt_seterr(u->err, u->errlen, "'%s': out of memory reading data.pkl", u->f->path);
		return NULL;
	}
	o->type = t;
	o->next = u->all;
	u->all = o;
	return o;
}

static int items_push(struct up *u, struct pobj *o, struct pobj *v)
{
	if (o->n == o->cap) {
		size_t ncap = o->cap ? 2 * o->cap : 8;
		struct pobj **ni = realloc(o->items, ncap * sizeof *ni);

		if (!ni) {
			wt_seterr(u->err, u->errlen, "'%s': out of memory reading data.pkl", u->f->path);
			return -1;
		}
		o->items = ni;
		o->cap = ncap;
	}
	o->items[o->n++] = v;
	return 0;
}

static int push(struct up *u, struct pobj *o)
{
	if (!o)
		return -1;
	if (u->sp == u->scap) {
		size_t ncap = u->scap ? 2 * u->scap : 64;
		struct pobj **ns = realloc(u->stack, ncap * sizeof *ns);

		if (!ns) {
			wt_seterr(u->err, u->errlen, "'%s': out of memory reading data.pkl", u->f->path);
			return -1;
		}
		u->stack = ns;
		u->scap = ncap;
	}
	u->stack[u->sp++] = o;
	return 0;
}

static int corrupt(struct up *u, const char *what)
{
	wt_seterr(u->err, u->errlen, "'%s': data.pkl is corrupt at byte %zu: %s", u->f->path,
		  (size_t)(u->p - u->start), what);
	return -1;
}

static struct pobj *pop(struct up *u)
{
	size_t floor = u->nmarks ? u->marks[u->nmarks - 1] : 0;

	if (u->sp <= floor) {
		corrupt(u, "stack underflow");
		return NULL;
	}
	return u->stack[--u->sp];
}

static int need(struct up *u, size_t n)
{
	if ((size_t)(u->end - u->p) < n)
		return corrupt(u, "truncated");
	return 0;
}

static int memo_put(struct up *u, uint64_t idx)
{
	if (!u->sp)
		return corrupt(u, "memo of an empty stack");
	if (idx >= MAX_MEMO || idx > (uint64_t)(u->end - u->start))
		return corrupt(u, "memo index out of range");
	if (idx >= u->memo_cap) {
		size_t ncap = u->memo_cap ? u->memo_cap : 256;
		struct pobj **nm;

		while (ncap <= idx)
			ncap *= 2;
		nm = realloc(u->memo, ncap * sizeof *nm);
		if (!nm) {
			wt_seterr(u->err, u->errlen, "'%s': out of memory reading data.pkl", u->f->path);
			return -1;
		}
		memset(nm + u->memo_cap, 0, (ncap - u->memo_cap) * sizeof *nm);
		u->memo = nm;
		u->memo_cap = ncap;
	}
	if (!u->memo[idx])
		u->memo_count++;
	u->memo[idx] = u->stack[u->sp - 1];
	return 0;
}

static int memo_get(struct up *u, uint64_t idx)
{
	if (idx >= u->memo_cap || !u->memo[idx])
		return corrupt(u, "unknown memo index");
	return push(u, u->memo[idx]);
}

/* Pops everything above the last mark into a new TUPLE or LIST. */
static struct pobj *pop_mark(struct up *u, enum ptype t)
{
	size_t m;
	struct pobj *o;

	if (!u->nmarks) {
		corrupt(u, "no mark");
		return NULL;
	}
	m = u->marks[--u->nmarks];
	o = obj_new(u, t);
	if (!o)
		return NULL;
	for (size_t i = m; i < u->sp; i++)
		if (items_push(u, o, u->stack[i]) < 0)
			return NULL;
	u->sp = m;
	return o;
}

static int refuse_global(struct up *u, const char *mod, const char *name)
{
	wt_seterr(u->err, u->errlen, "'%s': data.pkl refers to the global '%s.%s', which a state "
		  "dict does not need; refusing to load it", u->f->path, mod, name);
	return -1;
}

static int op_global(struct up *u)
{
	static const struct { const char *name; enum wt_dtype dt; } storages[] = {
		{ "FloatStorage", WT_F32 }, { "DoubleStorage", WT_F64 }, { "HalfStorage", WT_F16 },
		{ "BFloat16Storage", WT_BF16 }, { "LongStorage", WT_I64 }, { "IntStorage", WT_I32 },
		{ "ShortStorage", WT_I16 }, { "CharStorage", WT_I8 }, { "ByteStorage", WT_U8 },
		{ "BoolStorage", WT_BOOL }, { "UntypedStorage", WT_U8 },
	};
	char mod[128], name[128];
	const uint8_t *nl;
	struct pobj *o;
	size_t len;

	for (int k = 0; k < 2; k++) {
		char *dst = k ? name : mod;

		nl = memchr(u->p, '\n', (size_t)(u->end - u->p));
		if (!nl)
			return corrupt(u, "unterminated GLOBAL");
		len = (size_t)(nl - u->p);
		if (len >= sizeof mod)
			return corrupt(u, "GLOBAL name too long");
		memcpy(dst, u->p, len);
		dst[len] = 0;
		for (size_t i = 0; i < len; i++)
			if (dst[i] < 0x20 || dst[i] > 0x7e)
				dst[i] = '?';
		u->p = nl + 1;
	}
	o = obj_new(u, P_GLOBAL);
	if (!o)
		return -1;
	if (!strcmp(mod, "collections") && !strcmp(name, "OrderedDict")) {
		o->global = G_ORDERED_DICT;
	} else if (!strcmp(mod, "torch._utils") && !strcmp(name, "_rebuild_tensor_v2")) {
		o->global = G_REBUILD_TENSOR_V2;
	} else if (!strcmp(mod, "torch._utils") && (!strcmp(name, "_rebuild_parameter") ||
						    !strcmp(name, "_rebuild_parameter_with_state"))) {
		o->global = G_REBUILD_PARAMETER;
	} else if (!strcmp(mod, "torch._tensor") && !strcmp(name, "_rebuild_from_type_v2")) {
		o->global = G_REBUILD_FROM_TYPE;
	} else if ((!strcmp(mod, "torch") && !strcmp(name, "Tensor")) ||
		   (!strcmp(mod, "torch.nn.parameter") && !strcmp(name, "Parameter"))) {
		o->global = G_TENSOR_TYPE;  /* only as _rebuild_from_type_v2's type argument */
	} else {
		size_t i;

		if (strcmp(mod, "torch"))
			return refuse_global(u, mod, name);
		for (i = 0; i < sizeof storages / sizeof storages[0]; i++)
			if (!strcmp(name, storages[i].name))
				break;
		if (i == sizeof storages / sizeof storages[0])
			return refuse_global(u, mod, name);
		o->global = G_STORAGE_TYPE;
		o->dtype = storages[i].dt;
	}
	return push(u, o);
}

static int is_int(const struct pobj *o)
{
	return o && (o->type == P_INT || o->type == P_BOOL);
}

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks[, meta]) */
static struct pobj *rebuild_tensor(struct up *u, struct pobj *args)
{
	struct pobj *t, *st, *sz, *sd;

	if (args->n < 4 || args->n > 7)
		goto bad;
	st = args->items[0];
	sz = args->items[2];
	sd = args->items[3];
	if (st->type != P_STORAGE || !is_int(args->items[1]) || sz->type != P_TUPLE ||
	    sd->type != P_TUPLE || sz->n != sd->n || sz->n > WT_MAX_DIMS || args->items[1]->i < 0)
		goto bad;
	t = obj_new(u, P_TENSOR);
	if (!t)
		return NULL;
	t->storage = st;
	t->dtype = st->dtype;
	t->i = args->items[1]->i;
	t->ndim = (int)sz->n;
	for (size_t d = 0; d < sz->n; d++) {
		if (!is_int(sz->items[d]) || !is_int(sd->items[d]) || sz->items[d]->i < 0 ||
		    sd->items[d]->i < 0)
			goto bad;
		t->shape[d] = sz->items[d]->i;
		t->stride[d] = sd->items[d]->i;
	}
	return t;
bad:
	corrupt(u, "malformed _rebuild_tensor_v2 arguments");
	return NULL;
}

static int op_reduce(struct up *u)
{
	struct pobj *args = pop(u), *fn, *r = NULL;

	if (!args || !(fn = pop(u)))
		return -1;
	if (fn->type != P_GLOBAL || args->type != P_TUPLE)
		return corrupt(u, "REDUCE of something not callable");
	switch (fn->global) {
	case G_ORDERED_DICT:
		r = obj_new(u, P_DICT);
		if (!r)
			return -1;
		if (args->n == 1 && args->items[0]->type == P_LIST) {
			struct pobj *l = args->items[0];

			for (size_t i = 0; i < l->n; i++) {
				if (l->items[i]->type != P_TUPLE || l->items[i]->n != 2)
					return corrupt(u, "OrderedDict of non-pairs");
				if (items_push(u, r, l->items[i]->items[0]) < 0 ||
				    items_push(u, r, l->items[i]->items[1]) < 0)
					return -1;
			}
		} else if (args->n) {
			return corrupt(u, "OrderedDict with unexpected arguments");
		}
		break;
	case G_REBUILD_TENSOR_V2:
		r = rebuild_tensor(u, args);
		if (!r)
			return -1;
		break;
	case G_REBUILD_PARAMETER:
		if (args->n < 1 || args->items[0]->type != P_TENSOR)
			return corrupt(u, "malformed _rebuild_parameter arguments");
		r = args->items[0];
		break;
	case G_REBUILD_FROM_TYPE:
		/* torch 2.x, a tensor carrying Python attributes: (func, type, args, state); the
		 * state (attributes) is dropped */
		if (args->n != 4 || args->items[0]->type != P_GLOBAL ||
		    args->items[0]->global != G_REBUILD_TENSOR_V2 || args->items[1]->type != P_GLOBAL ||
		    args->items[1]->global != G_TENSOR_TYPE || args->items[2]->type != P_TUPLE)
			return corrupt(u, "malformed _rebuild_from_type_v2 arguments");
		r = rebuild_tensor(u, args->items[2]);
		if (!r)
			return -1;
		break;
	case G_TENSOR_TYPE:
	case G_STORAGE_TYPE:
		return corrupt(u, "a type called as a function");
	}
	return push(u, r);
}

/* ('storage', storage_type, key, location, numel) */
static int op_persid(struct up *u)
{
	struct pobj *pid = pop(u), *o;

	if (!pid)
		return -1;
	if (pid->type != P_TUPLE || pid->n != 5 || pid->items[0]->type != P_STR ||
	    pid->items[0]->slen != 7 || memcmp(pid->items[0]->s, "storage", 7) ||
	    pid->items[1]->type != P_GLOBAL || pid->items[1]->global != G_STORAGE_TYPE ||
	    pid->items[2]->type != P_STR || !is_int(pid->items[4]) || pid->items[4]->i < 0)
		return corrupt(u, "persistent id is not a ('storage', type, key, location, numel) tuple");
	o = obj_new(u, P_STORAGE);
	if (!o)
		return -1;
	o->dtype = pid->items[1]->dtype;
	o->s = pid->items[2]->s;
	o->slen = pid->items[2]->slen;
	o->i = pid->items[4]->i;
	return push(u, o);
}

static int op_setitems(struct up *u, int many)
{
	size_t base;
	struct pobj *d;

	if (many) {
		if (!u->nmarks)
			return corrupt(u, "SETITEMS without mark");
		base = u->marks[--u->nmarks];
	} else {
		if (u->sp < 2)
			return corrupt(u, "stack underflow");
		base = u->sp - 2;
	}
	if (base < 1 || (u->sp - base) % 2 || (u->nmarks && base - 1 < u->marks[u->nmarks - 1]))
		return corrupt(u, "SETITEM arguments");
	d = u->stack[base - 1];
	if (d->type != P_DICT)
		return corrupt(u, "SETITEM on a non-dict");
	for (size_t i = base; i < u->sp; i++)
		if (items_push(u, d, u->stack[i]) < 0)
			return -1;
	u->sp = base;
	return 0;
}

static int op_appends(struct up *u, int many)
{
	size_t base;
	struct pobj *l;

	if (many) {
		if (!u->nmarks)
			return corrupt(u, "APPENDS without mark");
		base = u->marks[--u->nmarks];
	} else {
		if (u->sp < 1)
			return corrupt(u, "stack underflow");
		base = u->sp - 1;
	}
	if (base < 1 || (u->nmarks && base - 1 < u->marks[u->nmarks - 1]))
		return corrupt(u, "APPEND arguments");
	l = u->stack[base - 1];
	if (l->type != P_LIST)
		return corrupt(u, "APPEND on a non-list");
	for (size_t i = base; i < u->sp; i++)
		if (items_push(u, l, u->stack[i]) < 0)
			return -1;
	u->sp = base;
	return 0;
}

static int push_str(struct up *u, enum ptype t, size_t len)
{
	struct pobj *o;

	if (need(u, len) < 0)
		return -1;
	o = obj_new(u, t);
	if (!o)
		return -1;
	o->s = (const char *)u->p;
	o->slen = len;
	u->p += len;
	return push(u, o);
}

static int push_int(struct up *u, enum ptype t, int64_t v)
{
	struct pobj *o = obj_new(u, t);

	if (!o)
		return -1;
	o->i = v;
	return push(u, o);
}

static uint64_t le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Runs the pickle; *RESULT gets the object STOP returns. */
static int run(struct up *u, struct pobj **result)
{
	while (u->p < u->end) {
		uint8_t op = *u->p++;
		uint64_t n;
		struct pobj *o, *x;

		switch (op) {
		case 0x80: /* PROTO */
			if (need(u, 1) < 0)
				return -1;
			if (*u->p > 5)
				return corrupt(u, "unknown pickle protocol");
			u->p++;
			break;
		case 0x95: /* FRAME (protocol 4): a length hint only */
			if (need(u, 8) < 0)
				return -1;
			u->p += 8;
			break;
		case '.': /* STOP */
			o = pop(u);
			if (!o)
				return -1;
			*result = o;
			return 0;
		case '(': /* MARK */
			if (u->nmarks >= MAX_MARKS)
				return corrupt(u, "marks nested too deep");
			if (u->nmarks == u->mcap) {
				size_t ncap = u->mcap ? 2 * u->mcap : 32;
				size_t *nm = realloc(u->marks, ncap * sizeof *nm);

				if (!nm)
					return corrupt(u, "out of memory");
				u->marks = nm;
				u->mcap = ncap;
			}
			u->marks[u->nmarks++] = u->sp;
			break;
		case '}': /* EMPTY_DICT */
			if (push(u, obj_new(u, P_DICT)) < 0)
				return -1;
			break;
		case ']': /* EMPTY_LIST */
			if (push(u, obj_new(u, P_LIST)) < 0)
				return -1;
			break;
		case ')': /* EMPTY_TUPLE */
			if (push(u, obj_new(u, P_TUPLE)) < 0)
				return -1;
			break;
		case 't': /* TUPLE */
			if (push(u, pop_mark(u, P_TUPLE)) < 0)
				return -1;
			break;
		case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
			size_t k = (size_t)(op - 0x84);

			if (u->sp < k || (u->nmarks && u->sp - k < u->marks[u->nmarks - 1]))
				return corrupt(u, "stack underflow");
			o = obj_new(u, P_TUPLE);
			if (!o)
				return -1;
			for (size_t i = u->sp - k; i < u->sp; i++)
				if (items_push(u, o, u->stack[i]) < 0)
					return -1;
			u->sp -= k;
			if (push(u, o) < 0)
				return -1;
			break;
		}
		case 'X': /* BINUNICODE */
			if (need(u, 4) < 0)
				return -1;
			n = le(u->p, 4);
			u->p += 4;
			if (push_str(u, P_STR, (size_t)n) < 0)
				return -1;
			break;
		case 0x8c: /* SHORT_BINUNICODE */
			if (need(u, 1) < 0)
				return -1;
			n = *u->p++;
			if (push_str(u, P_STR, (size_t)n) < 0)
				return -1;
			break;
		case 'C': /* SHORT_BINBYTES */
			if (need(u, 1) < 0)
				return -1;
			n = *u->p++;
			if (push_str(u, P_BYTES, (size_t)n) < 0)
				return -1;
			break;
		case 'B': /* BINBYTES */
			if (need(u, 4) < 0)
				return -1;
			n = le(u->p, 4);
			u->p += 4;
			if (push_str(u, P_BYTES, (size_t)n) < 0)
				return -1;
			break;
		case 'J': /* BININT */
			if (need(u, 4) < 0)
				return -1;
			if (push_int(u, P_INT, (int32_t)(uint32_t)le(u->p, 4)) < 0)
				return -1;
			u->p += 4;
			break;
		case 'K': /* BININT1 */
			if (need(u, 1) < 0 || push_int(u, P_INT, *u->p) < 0)
				return -1;
			u->p++;
			break;
		case 'M': /* BININT2 */
			if (need(u, 2) < 0 || push_int(u, P_INT, (int64_t)le(u->p, 2)) < 0)
				return -1;
			u->p += 2;
			break;
		case 0x8a: { /* LONG1 */
			int64_t v = 0;

			if (need(u, 1) < 0)
				return -1;
			n = *u->p++;
			if (n > 8)
				return corrupt(u, "integer wider than 64 bits");
			if (need(u, (size_t)n) < 0)
				return -1;
			if (n) {
				uint64_t raw = le(u->p, (int)n);

				if (n < 8 && (raw >> (8 * n - 1)) & 1)
					raw |= ~(uint64_t)0 << (8 * n);  /* sign-extend */
				memcpy(&v, &raw, 8);
			}
			u->p += n;
			if (push_int(u, P_INT, v) < 0)
				return -1;
			break;
		}
		case 'G': /* BINFLOAT: kept as an opaque value */
			if (need(u, 8) < 0)
				return -1;
			u->p += 8;
			if (push(u, obj_new(u, P_FLOAT)) < 0)
				return -1;
			break;
		case 'N': /* NONE */
			if (push(u, obj_new(u, P_NONE)) < 0)
				return -1;
			break;
		case 0x88: case 0x89: /* NEWTRUE, NEWFALSE */
			if (push_int(u, P_BOOL, op == 0x88) < 0)
				return -1;
			break;
		case 'q': /* BINPUT */
			if (need(u, 1) < 0 || memo_put(u, *u->p) < 0)
				return -1;
			u->p++;
			break;
		case 'r': /* LONG_BINPUT */
			if (need(u, 4) < 0 || memo_put(u, le(u->p, 4)) < 0)
				return -1;
			u->p += 4;
			break;
		case 0x94: /* MEMOIZE */
			if (memo_put(u, u->memo_count) < 0)  /* index = len(memo) */
				return -1;
			break;
		case 'h': /* BINGET */
			if (need(u, 1) < 0 || memo_get(u, *u->p) < 0)
				return -1;
			u->p++;
			break;
		case 'j': /* LONG_BINGET */
			if (need(u, 4) < 0 || memo_get(u, le(u->p, 4)) < 0)
				return -1;
			u->p += 4;
			break;
		case 's': /* SETITEM */
			if (op_setitems(u, 0) < 0)
				return -1;
			break;
		case 'u': /* SETITEMS */
			if (op_setitems(u, 1) < 0)
				return -1;
			break;
		case 'a': /* APPEND */
			if (op_appends(u, 0) < 0)
				return -1;
			break;
		case 'e': /* APPENDS */
			if (op_appends(u, 1) < 0)
				return -1;
			break;
		case 'c': /* GLOBAL */
			if (op_global(u) < 0)
				return -1;
			break;
		case 'Q': /* BINPERSID */
			if (op_persid(u) < 0)
				return -1;
			break;
		case 'R': /* REDUCE */
			if (op_reduce(u) < 0)
				return -1;
			break;
		case 'b': /* BUILD: object state (e.g. a state dict's _metadata) is dropped */
			if (!(x = pop(u)))
				return -1;
			if (!u->sp)
				return corrupt(u, "BUILD on an empty stack");
			o = u->stack[u->sp - 1];
			if (o->type != P_DICT && o->type != P_TENSOR)
				return corrupt(u, "BUILD on an unexpected object");
			break;
		default:
			u->p--;
			if (op >= 0x20 && op < 0x7f)
				wt_seterr(u->err, u->errlen, "'%s': data.pkl uses the pickle opcode '%c' "
					  "(0x%02x) at byte %zu, which a state dict does not need; "
					  "refusing to load it", u->f->path, op, op,
					  (size_t)(u->p - u->start));
			else
				wt_seterr(u->err, u->errlen, "'%s': data.pkl uses the pickle opcode 0x%02x "
					  "at byte %zu, which a state dict does not need; refusing to "
					  "load it", u->f->path, op, (size_t)(u->p - u->start));
			return -1;
		}
	}
	return corrupt(u, "no STOP opcode (truncated)");
}

static const struct pobj *dict_get(const struct pobj *d, const char *key)
{
	size_t kl = strlen(key);

	for (size_t i = 0; i + 1 < d->n; i += 2) {
		const struct pobj *k = d->items[i];

		if (k->type == P_STR && k->slen == kl && !memcmp(k->s, key, kl))
			return d->items[i + 1];
	}
	return NULL;
}

/* Resolves tensor T (named NAME) against its storage and adds it to the file. */
static int add_tensor(struct up *u, const char *name, size_t namelen, const struct pobj *t)
{
	const struct pobj *st = t->storage;
	size_t es = wt_dtype_size(t->dtype), ssize;
	const uint8_t *sdata;
	char entry[512], nm[64];
	uint64_t numel = 1, sbytes, maxidx, exp_stride = 1;
	int contiguous = 1, r;
	struct wt_tensor *w;

	snprintf(nm, sizeof nm, "%.*s", (int)(namelen > 60 ? 60 : namelen), name);
	if (!namelen || memchr(name, 0, namelen))
		return corrupt(u, "empty tensor name or NUL byte in a tensor name");
	if (st->slen == 0 || st->slen > 64 || memchr(st->s, '/', st->slen))
		return corrupt(u, "bad storage key");
	snprintf(entry, sizeof entry, "%s/data/%.*s", u->prefix, (int)st->slen, st->s);
	r = wt_zip_entry(u->z, entry, &sdata, &ssize);
	if (r == -1) {
		wt_seterr(u->err, u->errlen, "'%s': storage '%s' of tensor '%s' is missing: truncated "
			  "or corrupt checkpoint", u->f->path, entry, nm);
		return -1;
	}
	if (r == -2) {
		wt_seterr(u->err, u->errlen, "'%s': storage '%s' of tensor '%s' is compressed; "
			  "torch.save stores entries uncompressed: re-save the checkpoint with "
			  "torch.save", u->f->path, entry, nm);
		return -1;
	}
	if (!wt_mul_ok((uint64_t)st->i, es, &sbytes) || sbytes > ssize) {
		wt_seterr(u->err, u->errlen, "'%s': storage '%s' of tensor '%s' holds %zu bytes, less "
			  "than its %lld elements need: truncated or corrupt", u->f->path, entry, nm,
			  ssize, (long long)st->i);
		return -1;
	}
	maxidx = (uint64_t)t->i;
	for (int d = t->ndim - 1; d >= 0; d--) {
		uint64_t ext;

		if (!wt_mul_ok(numel, (uint64_t)t->shape[d], &numel))
			goto range;
		if (t->shape[d] == 0)
			continue;
		if (t->shape[d] != 1 && (uint64_t)t->stride[d] != exp_stride)
			contiguous = 0;
		if (!wt_mul_ok((uint64_t)t->shape[d] - 1, (uint64_t)t->stride[d], &ext) ||
		    !wt_add_ok(maxidx, ext, &maxidx) ||
		    !wt_mul_ok(exp_stride, (uint64_t)t->shape[d], &exp_stride))
			goto range;
	}
	if (numel && maxidx >= (uint64_t)st->i)
		goto range;
	w = wt_add_tensor(u->f, name, namelen, u->err, u->errlen);
	if (!w)
		return -1;
	w->dtype = t->dtype;
	w->ndim = t->ndim;
	memcpy(w->shape, t->shape, sizeof w->shape);
	w->nbytes = (size_t)(numel * es);
	if (!numel) {
		w->data = sdata;
	} else if (contiguous) {
		w->data = sdata + (size_t)t->i * es;
	} else {
		/* gather a strided view into a copy the file owns */
		uint8_t *dst = malloc(w->nbytes);
		int64_t idx[WT_MAX_DIMS] = { 0 };

		if (!dst) {
			wt_seterr(u->err, u->errlen, "'%s': out of memory copying tensor '%s'",
				  u->f->path, nm);
			return -1;
		}
		for (uint64_t k = 0; k < numel; k++) {
			uint64_t off = (uint64_t)t->i;

			for (int d = 0; d < t->ndim; d++)
				off += (uint64_t)idx[d] * (uint64_t)t->stride[d];
			memcpy(dst + k * es, sdata + off * es, es);
			for (int d = t->ndim - 1; d >= 0; d--) {
				if (++idx[d] < t->shape[d])
					break;
				idx[d] = 0;
			}
		}
		if (wt_own_buffer(u->f, dst, u->err, u->errlen) < 0)
			return -1;
		w->data = dst;
	}
	return 0;
range:
	wt_seterr(u->err, u->errlen, "'%s': tensor '%s' reaches past the end of its storage '%s' "
		  "(%lld elements): corrupt checkpoint", u->f->path, nm, entry, (long long)st->i);
	return -1;
}

int wt_unpickle_state_dict(struct wt_file *f, const struct wt_zip *z, const char *prefix,
			   const uint8_t *pkl, size_t pkl_size, char *err, size_t errlen)
{
	static const char *const wrappers[] = { "generator", "generator_ema", "state_dict" };
	struct up u = { .f = f, .z = z, .prefix = prefix, .p = pkl, .start = pkl,
			.end = pkl + pkl_size, .err = err, .errlen = errlen };
	struct pobj *root = NULL;
	const struct pobj *sd;
	int rc = -1;

	if (run(&u, &root) < 0)
		goto done;
	if (root->type != P_DICT) {
		wt_seterr(err, errlen, "'%s' holds no dict (a state dict or a checkpoint dict)",
			  f->path);
		goto done;
	}
	sd = root;
	for (size_t i = 0; i < 3; i++) {
		const struct pobj *v = dict_get(root, wrappers[i]);

		if (v && v->type == P_DICT) {
			sd = v;
			break;
		}
	}
	for (size_t i = 0; i + 1 < sd->n; i += 2) {
		const struct pobj *k = sd->items[i], *v = sd->items[i + 1];

		if (v->type != P_TENSOR)
			continue;  /* ints, strings, nested dicts next to the weights */
		if (k->type != P_STR) {
			wt_seterr(err, errlen, "'%s': a tensor's key in the state dict is not a string",
				  f->path);
			goto done;
		}
		if (add_tensor(&u, k->s, k->slen, v) < 0)
			goto done;
	}
	if (!f->count) {
		wt_seterr(err, errlen, "'%s' holds no tensors (no state dict found under "
			  "generator, generator_ema, state_dict or at the top level)", f->path);
		goto done;
	}
	rc = 0;
done:
	while (u.all) {
		struct pobj *n = u.all->next;

		free(u.all->items);
		free(u.all);
		u.all = n;
	}
	free(u.stack);
	free(u.marks);
	free(u.memo);
	return rc;
}
