/* ktrace.c: a kernel timeline of any CUDA program, for the lent GPU machines where Nsight
 * Systems cannot make a report (NOTES.md "pdl"). Built by hand, not by the project's build
 * (CUPTI is a development-only dependency):
 *
 *   gcc -O2 -shared -fPIC -I/usr/local/cuda/include plugins/wan/cuda/ktrace.c \
 *       -L/usr/local/cuda/lib -lcupti -o libktrace.so
 *   KTRACE_OUT=trace.tsv LD_PRELOAD=./libktrace.so heru-wan bench-dit ...
 *   python3 plugins/wan/cuda/ktrace_report.py trace.tsv
 *
 * DESIGN: a preloaded library whose constructor enables CUPTI's concurrent-kernel activity
 * records (one record per kernel execution, graph kernel nodes included, with the GPU's own
 * start/end timestamps in ns); CUPTI hands back filled buffers on its own thread, which
 * writes one tab-separated line per kernel: start, end, graph id, graph node id, correlation
 * id (one per launch call: every kernel of one graph launch shares it), stream, grid, block,
 * registers, name. KTRACE_ALL=1 keeps kernels launched outside graphs too (default: graph
 * kernels only, the timeline of a replayed call). The destructor flushes what is left. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <cupti.h>

#define BUF_BYTES (8u << 20)

static FILE *out;                /* owned; closed by the destructor */
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static int keep_all;
static unsigned long long nrec, ndropped;

static void CUPTIAPI buf_request(uint8_t **buf, size_t *size, size_t *max_records)
{
	*buf = aligned_alloc(8, BUF_BYTES);
	*size = *buf ? BUF_BYTES : 0;
	*max_records = 0;
}

static void CUPTIAPI buf_complete(CUcontext ctx, uint32_t stream, uint8_t *buf, size_t size,
				  size_t valid)
{
	CUpti_Activity *rec = NULL;
	size_t dropped = 0;

	(void)ctx;
	(void)stream;
	(void)size;
	pthread_mutex_lock(&out_lock);
	while (cuptiActivityGetNextRecord(buf, valid, &rec) == CUPTI_SUCCESS) {
		const CUpti_ActivityKernel10 *k = (const CUpti_ActivityKernel10 *)rec;

		if (rec->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL || !out)
			continue;
		if (!k->graphId && !keep_all)
			continue;
		fprintf(out, "%llu\t%llu\t%u\t%llu\t%u\t%u\t%d,%d,%d\t%d,%d,%d\t%u\t%s\n",
			(unsigned long long)k->start, (unsigned long long)k->end, k->graphId,
			(unsigned long long)k->graphNodeId, k->correlationId, k->streamId, k->gridX,
			k->gridY, k->gridZ, k->blockX, k->blockY, k->blockZ, k->registersPerThread,
			k->name ? k->name : "?");
		nrec++;
	}
	if (cuptiActivityGetNumDroppedRecords(ctx, stream, &dropped) == CUPTI_SUCCESS)
		ndropped += dropped;
	pthread_mutex_unlock(&out_lock);
	free(buf);
}

__attribute__((constructor)) static void ktrace_init(void)
{
	const char *path = getenv("KTRACE_OUT"), *all = getenv("KTRACE_ALL");

	keep_all = all && all[0] == '1';
	out = fopen(path ? path : "ktrace.tsv", "w");
	if (!out) {
		fprintf(stderr, "ktrace: cannot write %s\n", path ? path : "ktrace.tsv");
		return;
	}
	if (cuptiActivityRegisterCallbacks(buf_request, buf_complete) != CUPTI_SUCCESS ||
	    cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) != CUPTI_SUCCESS)
		fprintf(stderr, "ktrace: CUPTI refused kernel activity tracing\n");
}

__attribute__((destructor)) static void ktrace_fini(void)
{
	cuptiActivityFlushAll(1);
	pthread_mutex_lock(&out_lock);
	if (out) {
		fclose(out);
		out = NULL;
	}
	fprintf(stderr, "ktrace: %llu kernel records written, %llu dropped\n", nrec, ndropped);
	pthread_mutex_unlock(&out_lock);
}
