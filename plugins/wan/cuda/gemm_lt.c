/* gemm_lt.c: see gemm_lt.h.
 *
 * cuBLASLt is column-major. A row-major Y[M,N] is the column-major Yᵀ[N,M], so we compute
 * Yᵀ = W·Xᵀ with A = W (stored column-major as [K,N], used transposed: op(A) = [N,K]) and
 * B = X (column-major [K,M], not transposed). The bias epilogue adds bias[row of C] = bias[N].
 *
 * Tuning (wan_gemm_set_tuning): a shape's candidates are the heuristic's answers (it returns
 * about 8 for every DiT shape), split-K variants of its first ones, and configurations we
 * enumerate ourselves: every tile size the heuristic's algorithm ids support, ranked by a
 * wave-quantization model (the fraction of the last wave of output tiles that is busy, times
 * the fraction of each tile that is inside the matrix, times a tile-size efficiency), with
 * custom options and cluster shapes, the best GEMM_ENUM_MAX of those that pass
 * cublasLtMatmulAlgoCheck. All are timed on the first call; the best few are timed again
 * longer and the fastest kept. Selection order is fixed, so given the timings it is
 * deterministic; ties keep the earlier candidate (the heuristic's first choice first). */
#include "plugins/wan/cuda/gemm_lt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <stdint.h>
#include <cublasLt.h>
#include "plugins/wan/cuda/cuda_check.h"
#include "plugins/wan/wan_clock.h"

#define GEMM_CACHE_MAX 128
#define GEMM_TUNE_ALGOS 24 /* heuristic candidates asked for on a shape's first call */
#define GEMM_TUNE_REPS 3   /* timed runs per candidate (after one warm-up) */
#define GEMM_FINAL_N 4     /* the best this many are timed again ... */
#define GEMM_FINAL_REPS 10 /* ... this many runs each */
#define GEMM_SPLITK_EXTRA 12
#define GEMM_ENUM_MAX 32     /* enumerated configurations timed per shape */
#define GEMM_ENUM_PER_TILE 4 /* of them per tile size */
#define GEMM_ENUM_CHECKS 1500 /* cublasLtMatmulAlgoCheck calls per shape at most */
#define GEMM_ENUM_IDS 64
#define GEMM_CAND_MAX (GEMM_TUNE_ALGOS + GEMM_SPLITK_EXTRA + GEMM_ENUM_MAX)

enum cand_src { SRC_HEUR = 0, SRC_SPLITK, SRC_ENUM };

struct gemm_plan {
	int m, n, k, ldx, ldw, ldy, epi, tin, tout;
	cublasLtMatmulDesc_t desc;
	cublasLtMatrixLayout_t la, lb, lc;
	cublasLtMatmulAlgo_t algo;
	/* heuristic candidates, best guess first, then split-K variants, then enumerated ones */
	cublasLtMatmulAlgo_t cand[GEMM_CAND_MAX];
	unsigned char src[GEMM_CAND_MAX]; /* enum cand_src */
	int ncand, nheur, tuned;
	int checks;                       /* AlgoCheck calls spent enumerating */
};

struct wan_gemm {
	cublasLtHandle_t lt;
	void *workspace;      /* new (cudaMalloc) */
	size_t workspace_bytes;
	int tune;             /* time the candidates on each shape's first call */
	int enumerate;        /* add our own configurations to the heuristic's */
	int sms;              /* multiprocessors of the device (wave model) */
	int nplans;
	struct gemm_plan plans[GEMM_CACHE_MAX];
};

struct wan_gemm *wan_gemm_new(size_t workspace_bytes, char *err, size_t errlen)
{
	struct wan_gemm *g = calloc(1, sizeof(*g));
	int rc = 0;

	if (!g) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	LT_TRY(cublasLtCreate(&g->lt));
	g->workspace_bytes = workspace_bytes;
	{
		int dev = 0;

		if (cudaGetDevice(&dev) != cudaSuccess ||
		    cudaDeviceGetAttribute(&g->sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
			g->sms = 132;
		cudaGetLastError();
	}
	if (workspace_bytes)
		CU_TRY(cudaMalloc(&g->workspace, workspace_bytes));
cleanup:
	if (rc) {
		wan_gemm_free(g);
		return NULL;
	}
	return g;
}

static void plan_release(struct gemm_plan *p)
{
	if (p->desc)
		cublasLtMatmulDescDestroy(p->desc);
	if (p->la)
		cublasLtMatrixLayoutDestroy(p->la);
	if (p->lb)
		cublasLtMatrixLayoutDestroy(p->lb);
	if (p->lc)
		cublasLtMatrixLayoutDestroy(p->lc);
	memset(p, 0, sizeof(*p));
}

void wan_gemm_free(struct wan_gemm *g)
{
	if (!g)
		return;
	for (int i = 0; i < g->nplans; i++)
		plan_release(&g->plans[i]);
	if (g->workspace)
		cudaFree(g->workspace);
	if (g->lt)
		cublasLtDestroy(g->lt);
	free(g);
}

int wan_gemm_cached_shapes(const struct wan_gemm *g)
{
	return g ? g->nplans : 0;
}

/* Tile ids of cuBLASLt (cublasLtMatmulTile_t, CUDA 13 header) with both sides >= 64, with
 * their sizes (rows of C = our N, columns of C = our M), in id order: the candidates for the
 * DiT's large GEMMs. Generated from the enum's names. */
static const struct { uint16_t id, rows, cols; } tile_sizes[] = {
	{15, 64, 64}, {17, 64, 128}, {18, 128, 64}, {19, 64, 256}, {20, 128, 128}, {21, 256, 64},
	{22, 64, 512}, {23, 128, 256}, {24, 256, 128}, {25, 512, 64}, {26, 64, 96}, {27, 96, 64},
	{28, 96, 128}, {29, 128, 160}, {30, 160, 128}, {31, 192, 128}, {32, 128, 192},
	{33, 128, 96}, {116, 64, 192}, {117, 64, 320}, {118, 64, 384}, {119, 64, 448},
	{120, 64, 576}, {121, 64, 640}, {122, 64, 704}, {123, 64, 768}, {124, 72, 64},
	{125, 72, 128}, {126, 72, 192}, {127, 72, 256}, {128, 72, 320}, {129, 72, 384},
	{130, 72, 448}, {131, 72, 512}, {132, 72, 576}, {133, 72, 640}, {134, 80, 64},
	{135, 80, 128}, {136, 80, 192}, {137, 80, 256}, {138, 80, 320}, {139, 80, 384},
	{140, 80, 448}, {141, 80, 512}, {142, 80, 576}, {143, 88, 64}, {144, 88, 128},
	{145, 88, 192}, {146, 88, 256}, {147, 88, 320}, {148, 88, 384}, {149, 88, 448},
	{150, 88, 512}, {151, 96, 192}, {152, 96, 256}, {153, 96, 320}, {154, 96, 384},
	{155, 96, 448}, {156, 96, 512}, {157, 104, 64}, {158, 104, 128}, {159, 104, 192},
	{160, 104, 256}, {161, 104, 320}, {162, 104, 384}, {163, 104, 448}, {164, 112, 64},
	{165, 112, 128}, {166, 112, 192}, {167, 112, 256}, {168, 112, 320}, {169, 112, 384},
	{170, 120, 64}, {171, 120, 128}, {172, 120, 192}, {173, 120, 256}, {174, 120, 320},
	{175, 120, 384}, {176, 128, 320}, {177, 128, 384}, {178, 136, 64}, {179, 136, 128},
	{180, 136, 192}, {181, 136, 256}, {182, 136, 320}, {183, 144, 64}, {184, 144, 128},
	{185, 144, 192}, {186, 144, 256}, {187, 144, 320}, {188, 152, 64}, {189, 152, 128},
	{190, 152, 192}, {191, 152, 256}, {192, 152, 320}, {193, 160, 64}, {194, 160, 192},
	{195, 160, 256}, {196, 168, 64}, {197, 168, 128}, {198, 168, 192}, {199, 168, 256},
	{200, 176, 64}, {201, 176, 128}, {202, 176, 192}, {203, 176, 256}, {204, 184, 64},
	{205, 184, 128}, {206, 184, 192}, {207, 184, 256}, {208, 192, 64}, {209, 192, 192},
	{210, 192, 256}, {211, 200, 64}, {212, 200, 128}, {213, 200, 192}, {214, 208, 64},
	{215, 208, 128}, {216, 208, 192}, {217, 216, 64}, {218, 216, 128}, {219, 216, 192},
	{220, 224, 64}, {221, 224, 128}, {222, 224, 192}, {223, 232, 64}, {224, 232, 128},
	{225, 232, 192}, {226, 240, 64}, {227, 240, 128}, {228, 240, 192}, {229, 248, 64},
	{230, 248, 128}, {231, 248, 192}, {232, 256, 192}, {233, 264, 64}, {234, 264, 128},
	{235, 272, 64}, {236, 272, 128}, {237, 280, 64}, {238, 280, 128}, {239, 288, 64},
	{240, 288, 128}, {241, 296, 64}, {242, 296, 128}, {243, 304, 64}, {244, 304, 128},
	{245, 312, 64}, {246, 312, 128}, {247, 320, 64}, {248, 320, 128}, {249, 328, 64},
	{250, 328, 128}, {251, 336, 64}, {252, 336, 128}, {253, 344, 64}, {254, 344, 128},
	{255, 352, 64}, {256, 352, 128}, {257, 360, 64}, {258, 360, 128}, {259, 368, 64},
	{260, 368, 128}, {261, 376, 64}, {262, 376, 128}, {263, 384, 64}, {264, 384, 128},
	{265, 392, 64}, {266, 400, 64}, {267, 408, 64}, {268, 416, 64}, {269, 424, 64},
	{270, 432, 64}, {271, 440, 64}, {272, 448, 64}, {273, 456, 64}, {274, 464, 64},
	{275, 472, 64}, {276, 480, 64}, {277, 488, 64}, {278, 496, 64}, {279, 504, 64},
	{280, 520, 64}, {281, 528, 64}, {282, 536, 64}, {283, 544, 64}, {284, 552, 64},
	{285, 560, 64}, {286, 568, 64}, {287, 576, 64}, {288, 584, 64}, {289, 592, 64},
	{290, 600, 64}, {291, 608, 64}, {292, 616, 64}, {293, 624, 64}, {294, 632, 64},
	{295, 640, 64}, {296, 648, 64}, {297, 656, 64}, {298, 664, 64}, {299, 672, 64},
	{300, 680, 64}, {301, 688, 64}, {302, 696, 64}, {303, 704, 64}, {304, 712, 64},
	{305, 720, 64}, {306, 728, 64}, {307, 736, 64}, {308, 744, 64}, {309, 752, 64},
	{310, 760, 64}, {311, 768, 64}, {317, 64, 72}, {318, 64, 80}, {319, 64, 88},
	{320, 64, 104}, {321, 64, 112}, {322, 64, 120}, {323, 64, 136}, {324, 64, 144},
	{325, 64, 152}, {326, 64, 160}, {327, 64, 168}, {328, 64, 176}, {329, 64, 184},
	{330, 64, 200}, {331, 64, 208}, {332, 64, 216}, {333, 64, 224}, {334, 64, 232},
	{335, 64, 240}, {336, 64, 248}, {337, 64, 264}, {338, 64, 272}, {339, 64, 280},
	{340, 64, 288}, {341, 64, 296}, {342, 64, 304}, {343, 64, 312}, {344, 64, 328},
	{345, 64, 336}, {346, 64, 344}, {347, 64, 352}, {348, 64, 360}, {349, 64, 368},
	{350, 64, 376}, {351, 64, 392}, {352, 64, 400}, {353, 64, 408}, {354, 64, 416},
	{355, 64, 424}, {356, 64, 432}, {357, 64, 440}, {358, 64, 456}, {359, 64, 464},
	{360, 64, 472}, {361, 64, 480}, {362, 64, 488}, {363, 64, 496}, {364, 64, 504},
	{365, 64, 520}, {366, 64, 528}, {367, 64, 536}, {368, 64, 544}, {369, 64, 552},
	{370, 64, 560}, {371, 64, 568}, {372, 64, 584}, {373, 64, 592}, {374, 64, 600},
	{375, 64, 608}, {376, 64, 616}, {377, 64, 624}, {378, 64, 632}, {379, 64, 648},
	{380, 64, 656}, {381, 64, 664}, {382, 64, 672}, {383, 64, 680}, {384, 64, 688},
	{385, 64, 696}, {386, 64, 712}, {387, 64, 720}, {388, 64, 728}, {389, 64, 736},
	{390, 64, 744}, {391, 64, 752}, {392, 64, 760}, {399, 128, 72}, {400, 128, 80},
	{401, 128, 88}, {402, 128, 104}, {403, 128, 112}, {404, 128, 120}, {405, 128, 136},
	{406, 128, 144}, {407, 128, 152}, {408, 128, 168}, {409, 128, 176}, {410, 128, 184},
	{411, 128, 200}, {412, 128, 208}, {413, 128, 216}, {414, 128, 224}, {415, 128, 232},
	{416, 128, 240}, {417, 128, 248}, {418, 128, 264}, {419, 128, 272}, {420, 128, 280},
	{421, 128, 288}, {422, 128, 296}, {423, 128, 304}, {424, 128, 312}, {425, 128, 328},
	{426, 128, 336}, {427, 128, 344}, {428, 128, 352}, {429, 128, 360}, {430, 128, 368},
	{431, 128, 376}, {432, 128, 392}, {433, 128, 400}, {434, 128, 408}, {435, 128, 416},
	{436, 128, 424}, {437, 128, 432}, {438, 128, 440}, {439, 128, 448}, {440, 128, 456},
	{441, 128, 464}, {442, 128, 472}, {443, 128, 480}, {444, 128, 488}, {445, 128, 496},
	{446, 128, 504}, {447, 128, 512}, {455, 192, 72}, {456, 192, 80}, {457, 192, 88},
	{458, 192, 96}, {459, 192, 104}, {460, 192, 112}, {461, 192, 120}, {462, 192, 136},
	{463, 192, 144}, {464, 192, 152}, {465, 192, 160}, {466, 192, 168}, {467, 192, 176},
	{468, 192, 184}, {469, 192, 200}, {470, 192, 208}, {471, 192, 216}, {472, 192, 224},
	{473, 192, 232}, {474, 192, 240}, {475, 192, 248}, {476, 192, 264}, {477, 192, 272},
	{478, 192, 280}, {479, 192, 288}, {480, 192, 296}, {481, 192, 304}, {482, 192, 312},
	{483, 192, 320}, {484, 192, 328}, {485, 192, 336}, {492, 256, 72}, {493, 256, 80},
	{494, 256, 88}, {495, 256, 96}, {496, 256, 104}, {497, 256, 112}, {498, 256, 120},
	{499, 256, 136}, {500, 256, 144}, {501, 256, 152}, {502, 256, 160}, {503, 256, 168},
	{504, 256, 176}, {505, 256, 184}, {506, 256, 200}, {507, 256, 208}, {508, 256, 216},
	{509, 256, 224}, {510, 256, 232}, {511, 256, 240}, {512, 256, 248}, {513, 256, 256},
	{521, 320, 72}, {522, 320, 80}, {523, 320, 88}, {524, 320, 96}, {525, 320, 104},
	{526, 320, 112}, {527, 320, 120}, {528, 320, 136}, {529, 320, 144}, {530, 320, 152},
	{531, 320, 160}, {532, 320, 168}, {533, 320, 176}, {534, 320, 184}, {535, 320, 192},
	{536, 320, 200}, {544, 384, 72}, {545, 384, 80}, {546, 384, 88}, {547, 384, 96},
	{548, 384, 104}, {549, 384, 112}, {550, 384, 120}, {551, 384, 136}, {552, 384, 144},
	{553, 384, 152}, {554, 384, 160}, {555, 384, 168}, {563, 448, 72}, {564, 448, 80},
	{565, 448, 88}, {566, 448, 96}, {567, 448, 104}, {568, 448, 112}, {569, 448, 120},
	{570, 448, 128}, {571, 448, 136}, {572, 448, 144}, {580, 512, 72}, {581, 512, 80},
	{582, 512, 88}, {583, 512, 96}, {584, 512, 104}, {585, 512, 112}, {586, 512, 120},
	{587, 512, 128}, {595, 576, 72}, {596, 576, 80}, {597, 576, 88}, {598, 576, 96},
	{599, 576, 104}, {600, 576, 112}, {608, 640, 72}, {609, 640, 80}, {610, 640, 88},
	{611, 640, 96}, {619, 704, 72}, {620, 704, 80}, {621, 704, 88}, {629, 768, 72},
	{630, 768, 80}, {631, 256, 512}, {632, 256, 1024}, {633, 512, 512}, {634, 512, 1024},
};

/* The configuration of an algorithm as a key (id, tile, stages, split-K, reduction, swizzle,
 * custom option, cluster), for printing and for dropping duplicates. */
struct algo_key { int32_t id, splitk; uint32_t tile, stages, red, swz, custom; uint16_t cluster; };

static struct algo_key algo_key_of(const cublasLtMatmulAlgo_t *a)
{
	struct algo_key k;
	size_t w;

	memset(&k, 0, sizeof(k));
	cublasLtMatmulAlgoConfigGetAttribute(a, CUBLASLT_ALGO_CONFIG_ID, &k.id, sizeof(k.id), &w);
	cublasLtMatmulAlgoConfigGetAttribute(a, CUBLASLT_ALGO_CONFIG_TILE_ID, &k.tile, sizeof(k.tile), &w);
	cublasLtMatmulAlgoConfigGetAttribute(a, CUBLASLT_ALGO_CONFIG_STAGES_ID, &k.stages, sizeof(k.stages), &w);
	cublasLtMatmulAlgoConfigGetAttribute(a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &k.splitk, sizeof(k.splitk), &w);
	cublasLtMatmulAlgoConfigGetAttribute(a, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &k.red, sizeof(k.red), &w);
	cublasLtMatmulAlgoConfigGetAttribute(a, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, &k.swz, sizeof(k.swz), &w);
	cublasLtMatmulAlgoConfigGetAttribute(a, CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, &k.custom, sizeof(k.custom), &w);
	cublasLtMatmulAlgoConfigGetAttribute(a, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, &k.cluster,
					     sizeof(k.cluster), &w);
	return k;
}

static int algo_key_eq(const struct algo_key *a, const struct algo_key *b)
{
	return a->id == b->id && a->tile == b->tile && a->stages == b->stages &&
	       (a->splitk > 1 ? a->splitk : 1) == (b->splitk > 1 ? b->splitk : 1) && a->red == b->red &&
	       a->swz == b->swz && a->custom == b->custom && a->cluster == b->cluster;
}

/* "algo 66 tile 128x256 stages 35 cluster 2 splitK 1 swz 0" (tile sizes from our table) */
static void algo_describe(const cublasLtMatmulAlgo_t *a, char *buf, size_t n)
{
	struct algo_key k = algo_key_of(a);
	int r = 0, c = 0;

	for (size_t i = 0; i < sizeof(tile_sizes) / sizeof(tile_sizes[0]); i++)
		if (tile_sizes[i].id == k.tile) {
			r = tile_sizes[i].rows;
			c = tile_sizes[i].cols;
		}
	if (r)
		snprintf(buf, n, "algo %d tile %dx%d stages %u cluster %u splitK %d red %u swz %u opt %u",
			 k.id, r, c, k.stages, (unsigned)k.cluster, k.splitk, k.red, k.swz, k.custom);
	else
		snprintf(buf, n, "algo %d tile#%u stages %u cluster %u splitK %d red %u swz %u opt %u", k.id,
			 k.tile, k.stages, (unsigned)k.cluster, k.splitk, k.red, k.swz, k.custom);
}

/* Predicted fraction of peak for tiles of rows x cols split `splits` ways along K on `sms`
 * multiprocessors (one tile per SM at a time): the busy fraction of the last wave, times the
 * part of each tile inside the matrix, times a tile-size efficiency (operand reuse relative to
 * 128x256, square-rooted: small tiles lose less than their intensity suggests), times a small
 * cost per extra split (the reduction pass). */
static double wave_model(int n, int m, int rows, int cols, int splits, int sms)
{
	double tiles = (double)((n + rows - 1) / rows) * ((m + cols - 1) / cols) * splits;
	double waves = tiles / sms, busy = waves / ceil(waves);
	double inside = (double)n * m * splits / (tiles * rows * cols);
	double reuse = 2.0 * rows * cols / (rows + cols) / (2.0 * 128 * 256 / 384);

	return busy * inside * sqrt(reuse < 1.0 ? reuse : 1.0) * (1.0 - 0.05 * (splits - 1));
}

struct proposal { int id, tile; double score; };

static int proposal_cmp(const void *a, const void *b)
{
	const struct proposal *x = a, *y = b;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->tile < y->tile ? -1 : x->tile > y->tile;
}

/* Appends v to the list (n entries, capacity cap) unless present. */
static void add_unique(uint32_t *list, int *n, int cap, uint32_t v)
{
	for (int i = 0; i < *n; i++)
		if (list[i] == v)
			return;
	if (*n < cap)
		list[(*n)++] = v;
}

/* Appends to P's candidates up to GEMM_ENUM_MAX configurations of the heuristic's own
 * algorithm ids (on sm90 one warp-specialized family; the other ids cuBLASLt lists are
 * older kernels, 2-30x slower on these shapes): every tile size the id supports, ranked by
 * wave_model, and per tile up to GEMM_ENUM_PER_TILE (custom option, cluster shape) pairs,
 * those the heuristic used first, each with the first stage setting that passes
 * cublasLtMatmulAlgoCheck. Host-side only, bounded by GEMM_ENUM_CHECKS checks. */
static void plan_enumerate(struct wan_gemm *g, struct gemm_plan *p, cudaDataType_t tin,
			   cudaDataType_t tout, uint32_t epi_bits)
{
	enum { NT = sizeof(tile_sizes) / sizeof(tile_sizes[0]), LIST = 32 };
	uint32_t ids[LIST], opts[LIST], clusters[LIST], hstages[LIST];
	int nids = 0, nopts = 0, ncl = 0, nhs = 0, nprop = 0, added = 0;
	struct proposal *prop = NULL;

	for (int i = 0; i < p->nheur; i++) {
		struct algo_key k = algo_key_of(&p->cand[i]);

		add_unique(ids, &nids, LIST, (uint32_t)k.id);
		add_unique(opts, &nopts, LIST, k.custom);
		add_unique(clusters, &ncl, LIST, k.cluster);
		add_unique(hstages, &nhs, LIST, k.stages);
	}
	add_unique(clusters, &ncl, LIST, 3); /* 2x1 */
	add_unique(clusters, &ncl, LIST, 5); /* 1x2 */
	add_unique(clusters, &ncl, LIST, 2); /* 1x1 */
	prop = calloc((size_t)nids * NT, sizeof(*prop));
	if (!prop)
		return;
	for (int i = 0; i < nids; i++) {
		cublasLtMatmulAlgo_t a;
		uint32_t epimask = 0, tiles[1024];
		size_t w = 0, nt;

		if (cublasLtMatmulAlgoInit(g->lt, CUBLAS_COMPUTE_32F, CUDA_R_32F, tin, tin, tout, tout,
					   (int)ids[i], &a) != CUBLAS_STATUS_SUCCESS ||
		    cublasLtMatmulAlgoCapGetAttribute(&a, CUBLASLT_ALGO_CAP_EPILOGUE_MASK, &epimask,
						      sizeof(epimask), &w) != CUBLAS_STATUS_SUCCESS ||
		    (epimask & epi_bits) != epi_bits ||
		    cublasLtMatmulAlgoCapGetAttribute(&a, CUBLASLT_ALGO_CAP_TILE_IDS, NULL, 0, &w) !=
			    CUBLAS_STATUS_SUCCESS)
			continue;
		nt = w / sizeof(uint32_t);
		if (nt > 1024)
			nt = 1024;
		if (nt == 0 || cublasLtMatmulAlgoCapGetAttribute(&a, CUBLASLT_ALGO_CAP_TILE_IDS, tiles,
								   nt * sizeof(uint32_t), &w) != CUBLAS_STATUS_SUCCESS)
			continue;
		for (size_t t = 0; t < nt; t++)
			for (int s = 0; s < NT; s++)
				if (tile_sizes[s].id == tiles[t]) {
					prop[nprop].id = (int)ids[i];
					prop[nprop].tile = tile_sizes[s].id;
					prop[nprop].score = wave_model(p->n, p->m, tile_sizes[s].rows,
								       tile_sizes[s].cols, 1, g->sms);
					nprop++;
				}
	}
	qsort(prop, (size_t)nprop, sizeof(*prop), proposal_cmp);
	for (int i = 0; i < nprop && added < GEMM_ENUM_MAX && p->checks < GEMM_ENUM_CHECKS; i++) {
		cublasLtMatmulAlgo_t base;
		uint32_t tile = (uint32_t)prop[i].tile, stages[LIST], ol[LIST], red = 0;
		int32_t sk = 1, omax = 0;
		size_t w = 0, ns;
		int per_tile = 0, nol = nopts, nst = nhs;

		if (cublasLtMatmulAlgoInit(g->lt, CUBLAS_COMPUTE_32F, CUDA_R_32F, tin, tin, tout, tout,
					   prop[i].id, &base) != CUBLAS_STATUS_SUCCESS)
			continue;
		/* options: the heuristic's first, then 0..max; stages: the heuristic's, then the list */
		memcpy(ol, opts, sizeof(ol));
		if (cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_CUSTOM_OPTION_MAX, &omax,
						      sizeof(omax), &w) != CUBLAS_STATUS_SUCCESS)
			omax = 0;
		for (int o = 0; o <= omax && o < LIST; o++)
			add_unique(ol, &nol, LIST, (uint32_t)o);
		memcpy(stages, hstages, sizeof(stages));
		if (cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_STAGES_IDS, NULL, 0, &w) ==
		    CUBLAS_STATUS_SUCCESS && (ns = w / sizeof(uint32_t)) > 0) {
			uint32_t cap[256];

			if (ns > 256)
				ns = 256;
			if (cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_STAGES_IDS, cap,
							      ns * sizeof(uint32_t), &w) == CUBLAS_STATUS_SUCCESS)
				for (size_t j = 0; j < ns; j++)
					add_unique(stages, &nst, LIST, cap[j]);
		}
		if (nst == 0)
			stages[nst++] = CUBLASLT_MATMUL_STAGES_UNDEFINED;
		for (int o = 0; o < nol && per_tile < GEMM_ENUM_PER_TILE; o++)
			for (int c = 0; c < ncl && per_tile < GEMM_ENUM_PER_TILE; c++)
				for (int j = 0; j < nst && p->checks < GEMM_ENUM_CHECKS; j++) {
					cublasLtMatmulAlgo_t a = base;
					cublasLtMatmulHeuristicResult_t chk;
					uint16_t cl = (uint16_t)clusters[c];
					struct algo_key key;
					int dup = 0;

					if (cublasLtMatmulAlgoConfigSetAttribute(&a, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile,
										 sizeof(tile)) ||
					    cublasLtMatmulAlgoConfigSetAttribute(&a, CUBLASLT_ALGO_CONFIG_STAGES_ID,
										 &stages[j], sizeof(stages[j])) ||
					    cublasLtMatmulAlgoConfigSetAttribute(&a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &sk,
										 sizeof(sk)) ||
					    cublasLtMatmulAlgoConfigSetAttribute(&a, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME,
										 &red, sizeof(red)) ||
					    cublasLtMatmulAlgoConfigSetAttribute(&a, CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION,
										 &ol[o], sizeof(ol[o])) ||
					    cublasLtMatmulAlgoConfigSetAttribute(&a, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID,
										 &cl, sizeof(cl)))
						break;
					p->checks++;
					if (cublasLtMatmulAlgoCheck(g->lt, p->desc, p->la, p->lb, p->lc, p->lc, &a, &chk) !=
						    CUBLAS_STATUS_SUCCESS ||
					    chk.workspaceSize > g->workspace_bytes)
						continue;
					key = algo_key_of(&a);
					for (int q = 0; q < p->ncand && !dup; q++) {
						struct algo_key oth = algo_key_of(&p->cand[q]);

						dup = algo_key_eq(&key, &oth);
					}
					if (!dup && p->ncand < GEMM_CAND_MAX && added < GEMM_ENUM_MAX) {
						p->src[p->ncand] = SRC_ENUM;
						p->cand[p->ncand++] = a;
						added++;
						per_tile++;
					}
					break; /* next cluster shape */
				}
	}
	free(prop);
}

static int plan_build(struct wan_gemm *g, struct gemm_plan *p, char *err, size_t errlen)
{
	cublasLtMatmulPreference_t pref = NULL;
	cublasLtMatmulHeuristicResult_t heur[GEMM_TUNE_ALGOS];
	cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
	cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
	static const cudaDataType_t types[3] = { CUDA_R_16BF, CUDA_R_16F, CUDA_R_32F };
	cudaDataType_t tin = types[p->tin], tout = types[p->tout], bias_type = tout;
	int found = 0, rc = 0;

	LT_TRY(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
	LT_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
	LT_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
	if (p->epi == WAN_EPI_BIAS)
		epi = CUBLASLT_EPILOGUE_BIAS;
	else if (p->epi == WAN_EPI_BIAS_GELU)
		epi = CUBLASLT_EPILOGUE_GELU_BIAS;
	LT_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
	if (p->epi != WAN_EPI_NONE)
		LT_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
						      &bias_type, sizeof(bias_type)));
	/* A = W: column-major [K, N] with ld = ldw; B = X: [K, M] ld ldx; C = Y: [N, M] ld ldy. */
	LT_TRY(cublasLtMatrixLayoutCreate(&p->la, tin, p->k, p->n, p->ldw));
	LT_TRY(cublasLtMatrixLayoutCreate(&p->lb, tin, p->k, p->m, p->ldx));
	LT_TRY(cublasLtMatrixLayoutCreate(&p->lc, tout, p->n, p->m, p->ldy));
	LT_TRY(cublasLtMatmulPreferenceCreate(&pref));
	LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
						    &g->workspace_bytes, sizeof(g->workspace_bytes)));
	LT_TRY(cublasLtMatmulAlgoGetHeuristic(g->lt, p->desc, p->la, p->lb, p->lc, p->lc, pref,
					      g->tune ? GEMM_TUNE_ALGOS : 1, heur, &found));
	if (found < 1) {
		snprintf(err, errlen, "cuBLASLt has no algorithm for M=%d N=%d K=%d (types %d/%d)", p->m,
			 p->n, p->k, p->tin, p->tout);
		rc = -1;
		goto cleanup;
	}
	p->algo = heur[0].algo;
	for (int i = 0; i < found && i < GEMM_TUNE_ALGOS; i++)
		if (heur[i].state == CUBLAS_STATUS_SUCCESS) {
			p->src[p->ncand] = SRC_HEUR;
			p->cand[p->ncand++] = heur[i].algo;
		}
	p->nheur = p->ncand;
	/* split-K variants of the first few candidates: a grid of N=1536 output tiles fills the
	 * 132 SMs only ~2.2 times (the FFN down and the O projections) */
	for (int i = 0, n0 = p->ncand; g->tune && i < n0 && i < 4; i++)
		for (int sk = 2; sk <= 4 && p->ncand < p->nheur + GEMM_SPLITK_EXTRA; sk++) {
			cublasLtMatmulAlgo_t a = p->cand[i];
			cublasLtMatmulHeuristicResult_t chk;
			int32_t splits = sk;

			if (cublasLtMatmulAlgoConfigSetAttribute(&a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splits,
								 sizeof(splits)) != CUBLAS_STATUS_SUCCESS ||
			    cublasLtMatmulAlgoCheck(g->lt, p->desc, p->la, p->lb, p->lc, p->lc, &a, &chk) !=
				    CUBLAS_STATUS_SUCCESS ||
			    chk.workspaceSize > g->workspace_bytes)
				continue;
			p->src[p->ncand] = SRC_SPLITK;
			p->cand[p->ncand++] = a;
		}
	/* our own configurations, for shapes that fill the GPU at least once with 128x128 tiles
	 * (below that the heuristic's small-tile answers are the candidates that matter) */
	if (g->tune && g->enumerate && (double)p->m * p->n >= (double)g->sms * 128 * 128)
		plan_enumerate(g, p, tin, tout, (uint32_t)epi);
	p->tuned = p->ncand < 2;
cleanup:
	if (pref)
		cublasLtMatmulPreferenceDestroy(pref);
	return rc;
}

static struct gemm_plan *plan_get(struct wan_gemm *g, int m, int n, int k, int ldx, int ldw,
				  int ldy, int epi, int tin, int tout, char *err, size_t errlen)
{
	struct gemm_plan *p;

	for (int i = 0; i < g->nplans; i++) {
		p = &g->plans[i];
		if (p->m == m && p->n == n && p->k == k && p->ldx == ldx && p->ldw == ldw &&
		    p->ldy == ldy && p->epi == epi && p->tin == tin && p->tout == tout)
			return p;
	}
	if (g->nplans == GEMM_CACHE_MAX) {
		snprintf(err, errlen, "GEMM plan cache full (%d shapes)", GEMM_CACHE_MAX);
		return NULL;
	}
	p = &g->plans[g->nplans];
	memset(p, 0, sizeof(*p));
	p->m = m; p->n = n; p->k = k; p->ldx = ldx; p->ldw = ldw; p->ldy = ldy; p->epi = epi;
	p->tin = tin;
	p->tout = tout;
	if (plan_build(g, p, err, errlen)) {
		plan_release(p);
		return NULL;
	}
	g->nplans++;
	return p;
}

void wan_gemm_set_tuning(struct wan_gemm *g, int on)
{
	const char *e = getenv("WAN_GEMM_TUNE");

	const char *en = getenv("WAN_GEMM_ENUM");

	if (g) {
		g->tune = on && !(e && e[0] == '0');
		g->enumerate = !(en && en[0] == '0');
	}
}

static int overlaps(const void *a, size_t an, const void *b, size_t bn)
{
	const char *x = a, *y = b;

	return x < y + bn && y < x + an;
}

/* Runs candidate I of P `reps` times after one warm-up; returns the mean ms, or -1 when it
 * fails (cuBLASLt refused it at launch). */
static float time_cand(struct wan_gemm *g, struct gemm_plan *p, int i, int reps, cudaStream_t st,
		       const void *x, const void *w, void *y, cudaEvent_t e0, cudaEvent_t e1)
{
	const float one = 1.0f, zero = 0.0f;
	float ms = 0.0f;

	for (int r = 0; r <= reps; r++) {
		if (r == 1 && cudaEventRecord(e0, st) != cudaSuccess)
			return -1.0f;
		if (cublasLtMatmul(g->lt, p->desc, &one, w, p->la, x, p->lb, &zero, y, p->lc, y, p->lc,
				   &p->cand[i], g->workspace, g->workspace_bytes, st) != CUBLAS_STATUS_SUCCESS)
			return -1.0f;
	}
	if (cudaEventRecord(e1, st) != cudaSuccess || cudaEventSynchronize(e1) != cudaSuccess ||
	    cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess)
		return -1.0f;
	return ms / reps;
}

/* Times every candidate algorithm of P on these operands (device events, the mean of
 * GEMM_TUNE_REPS runs after one warm-up), then the GEMM_FINAL_N fastest and the heuristic's
 * first choice again with GEMM_FINAL_REPS runs each, and keeps the fastest of that round (ties:
 * the earlier candidate). Only outside stream capture and when Y overlaps no input (each run
 * rewrites Y with the same values). A candidate that fails is dropped; the plan keeps its
 * heuristic choice if nothing runs. WAN_GEMM_DEBUG=1 prints the winner per shape, =2 every
 * candidate. */
static void plan_tune(struct wan_gemm *g, struct gemm_plan *p, cudaStream_t st, const void *x,
		      const void *w, void *y)
{
	enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
	cudaEvent_t e0 = NULL, e1 = NULL;
	size_t xb = ((size_t)(p->m - 1) * p->ldx + p->k) * 2, wb = ((size_t)(p->n - 1) * p->ldw + p->k) * 2;
	size_t yb = ((size_t)(p->m - 1) * p->ldy + p->n) * (p->tout == 2 ? 4 : 2); /* f32 or 16-bit Y */
	float t1[GEMM_CAND_MAX], best = -1.0f, first = -1.0f;
	int fin[GEMM_FINAL_N + 1], nfin = 0, best_i = 0;
	const char *dbg = getenv("WAN_GEMM_DEBUG");
	int debug = dbg ? atoi(dbg) : 0;
	double t_start = wan_now_ms();

	p->tuned = 1;
	if (cudaStreamIsCapturing(st, &cs) != cudaSuccess || cs != cudaStreamCaptureStatusNone ||
	    overlaps(y, yb, x, xb) || overlaps(y, yb, w, wb))
		return;
	if (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess)
		goto cleanup;
	/* each round starts after a few untimed runs, so the first candidate does not pay for the
	 * clocks ramping up after host-side work */
	time_cand(g, p, 0, GEMM_FINAL_REPS, st, x, w, y, e0, e1);
	/* round 1: everything, briefly */
	for (int i = 0; i < p->ncand; i++) {
		t1[i] = time_cand(g, p, i, GEMM_TUNE_REPS, st, x, w, y, e0, e1);
		cudaGetLastError();
		if (debug >= 2) {
			char d[160];

			algo_describe(&p->cand[i], d, sizeof(d));
			fprintf(stderr, "gemm M=%d N=%d K=%d   #%-2d %s %.4f ms  %s\n", p->m, p->n, p->k, i,
				p->src[i] == SRC_HEUR ? "heur " : p->src[i] == SRC_SPLITK ? "splitk" : "enum ",
				t1[i], d);
		}
	}
	/* round 2: the heuristic's first choice and the GEMM_FINAL_N fastest (in candidate order
	 * for equal times), longer */
	if (t1[0] >= 0.0f)
		fin[nfin++] = 0;
	for (int f = 0; f < GEMM_FINAL_N; f++) {
		int pick = -1;

		for (int i = 0; i < p->ncand; i++) {
			int taken = 0;

			for (int j = 0; j < nfin; j++)
				taken |= fin[j] == i;
			if (!taken && t1[i] >= 0.0f && (pick < 0 || t1[i] < t1[pick]))
				pick = i;
		}
		if (pick < 0)
			break;
		fin[nfin++] = pick;
	}
	time_cand(g, p, 0, GEMM_FINAL_REPS, st, x, w, y, e0, e1);
	cudaGetLastError();
	for (int j = 0; j < nfin; j++) {
		float ms = time_cand(g, p, fin[j], GEMM_FINAL_REPS, st, x, w, y, e0, e1);

		cudaGetLastError();
		if (ms < 0.0f)
			continue;
		if (fin[j] == 0)
			first = ms;
		if (best < 0.0f || ms < best || (ms == best && fin[j] < best_i)) {
			best = ms;
			best_i = fin[j];
		}
	}
	if (best >= 0.0f)
		p->algo = p->cand[best_i];
	if (debug >= 1) {
		char d0[160], db[160];
		int ne = 0, nk = 0;

		for (int i = 0; i < p->ncand; i++) {
			ne += p->src[i] == SRC_ENUM;
			nk += p->src[i] == SRC_SPLITK;
		}
		algo_describe(&p->cand[0], d0, sizeof(d0));
		algo_describe(&p->algo, db, sizeof(db));
		fprintf(stderr,
			"gemm M=%d N=%d K=%d epi %d: %d heuristic + %d split-K + %d enumerated (%d checks), "
			"%.0f ms tuning\n  heuristic #0 %.4f ms [%s]\n  best #%d (%s) %.4f ms [%s]\n",
			p->m, p->n, p->k, p->epi, p->nheur, nk, ne, p->checks, wan_now_ms() - t_start, first, d0,
			best_i, p->src[best_i] == SRC_HEUR ? "heuristic" : p->src[best_i] == SRC_SPLITK ? "split-K" : "enumerated",
			best, db);
	}
cleanup:
	cudaGetLastError();
	if (e0)
		cudaEventDestroy(e0);
	if (e1)
		cudaEventDestroy(e1);
}

int wan_gemm_ex(struct wan_gemm *g, cudaStream_t st, enum wan_gemm_type tin,
		enum wan_gemm_type tout, int m, int n, int k,
		  const void *x, int ldx, const void *w, int ldw, const void *bias,
		  enum wan_gemm_epi epi, void *y, int ldy, char *err, size_t errlen)
{
	const float one = 1.0f, zero = 0.0f;
	struct gemm_plan *p;

	if (m <= 0 || n <= 0 || k <= 0 || ldx < k || ldw < k || ldy < n) {
		snprintf(err, errlen, "bad GEMM shape M=%d N=%d K=%d (ld %d/%d/%d)", m, n, k, ldx, ldw, ldy);
		return -1;
	}
	if ((int)tin < 0 || tin > WAN_GEMM_F16 || (int)tout < 0 || tout > WAN_GEMM_F32) {
		snprintf(err, errlen, "bad GEMM data types %d/%d", (int)tin, (int)tout);
		return -1;
	}
	if (epi != WAN_EPI_NONE && !bias) {
		snprintf(err, errlen, "GEMM bias epilogue without a bias");
		return -1;
	}
	p = plan_get(g, m, n, k, ldx, ldw, ldy, (int)epi, (int)tin, (int)tout, err, errlen);
	if (!p)
		return -1;
	if (epi != WAN_EPI_NONE)
		LT_RET(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
						      &bias, sizeof(bias)));
	if (!p->tuned)
		plan_tune(g, p, st, x, w, y);
	LT_RET(cublasLtMatmul(g->lt, p->desc, &one, w, p->la, x, p->lb, &zero, y, p->lc, y, p->lc,
			      &p->algo, g->workspace, g->workspace_bytes, st));
	return 0;
}

int wan_gemm_bf16(struct wan_gemm *g, cudaStream_t st, int m, int n, int k,
		  const void *x, int ldx, const void *w, int ldw, const void *bias,
		  enum wan_gemm_epi epi, void *y, int ldy, char *err, size_t errlen)
{
	return wan_gemm_ex(g, st, WAN_GEMM_BF16, WAN_GEMM_BF16, m, n, k, x, ldx, w, ldw, bias, epi, y,
			   ldy, err, errlen);
}
