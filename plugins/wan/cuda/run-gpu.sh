#!/bin/sh
# run-gpu.sh: the GPU tests and benchmarks of the CUDA DiT in one go (for a lent GPU machine).
# Usage: run-gpu.sh BINDIR OUTDIR [ITERS] [ab5]. BINDIR holds gpu_kernels, gpu_dit,
# gpu_dit_stream, optionally gpu_dit_prepare, heru-wan (or bench-dit) and optionally fix/
# (tests/fixtures/wan/dit). Writes
# one log per step into OUTDIR and prints a summary last. The benchmarks run only when the
# kernel test shows cuDNN attention (without it the fallback kernel is too slow to time).
# "ab5" adds 1.3B 480x832 S=4 runs with each optimisation of v5 switched off in turn
# (WAN_GEMM_ENUM=0: the heuristic's GEMM candidates only; WAN_K_ROWS=1: one token per block in
# the row kernels) and with both off.
bin=${1:?bin dir}; out=${2:?out dir}; iters=${3:-20}; ab=${4:-}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv > "$out/gpu.txt" 2>&1
WAN_ATTN_DEBUG=1 timeout 300 "$bin/gpu_kernels" > "$out/gpu_kernels.log" 2>&1
echo "gpu_kernels rc=$?" >> "$out/summary.txt"
timeout 120 "$bin/gpu_dit" > "$out/gpu_dit.log" 2>&1; echo "gpu_dit rc=$?" >> "$out/summary.txt"
if [ -x "$bin/gpu_dit_stream" ]; then
	fix=; [ -d "$bin/fix" ] && fix="$bin/fix"
	timeout 120 "$bin/gpu_dit_stream" $fix > "$out/gpu_dit_stream.log" 2>&1
	echo "gpu_dit_stream rc=$?" >> "$out/summary.txt"
fi
if [ -x "$bin/gpu_dit_prepare" ]; then
	timeout 120 "$bin/gpu_dit_prepare" > "$out/gpu_dit_prepare.log" 2>&1
	echo "gpu_dit_prepare rc=$?" >> "$out/summary.txt"
fi
if [ -x "$bin/heru-wan" ]; then bench="$bin/heru-wan bench-dit"; else bench="$bin/bench-dit"; fi
# b NAME [VAR=value ...] -- bench arguments
b() {
	name=$1; shift; vars=
	while [ "$1" != "--" ]; do vars="$vars $1"; shift; done; shift
	timeout 120 env $vars $bench --iters "$iters" "$@" > "$out/bench-$name.log" 2>&1
	echo "bench $name$vars rc=$?" >> "$out/summary.txt"
	grep -A10 "per-component" "$out/bench-$name.log" | grep " ms" >> "$out/summary.txt"
	grep RESULT "$out/bench-$name.log" >> "$out/summary.txt"
}
if grep -q '\[cuDNN' "$out/gpu_kernels.log"; then
	b 13b-480-s4 WAN_GEMM_DEBUG=1 WAN_ATTN_DEBUG=1 -- --model 1.3b --height 480 --width 832 --steps 4
	if [ "$ab" = ab5 ]; then
		b 13b-480-s4-noenum WAN_GEMM_ENUM=0 -- --model 1.3b --height 480 --width 832 --steps 4
		b 13b-480-s4-rows1 WAN_K_ROWS=1 -- --model 1.3b --height 480 --width 832 --steps 4
		b 13b-480-s4-noenum-rows1 WAN_GEMM_ENUM=0 WAN_K_ROWS=1 -- --model 1.3b --height 480 --width 832 --steps 4
	fi
	b 13b-480-s1 WAN_GEMM_DEBUG=1 -- --model 1.3b --height 480 --width 832 --steps 1
	b 13b-512-s1 -- --model 1.3b --height 512 --width 512 --steps 1
	b 13b-480-s2 -- --model 1.3b --height 480 --width 832 --steps 2
	b 14b-480-s1 -- --model 14b --height 480 --width 832 --steps 1
else
	b 13b-512-s1-fallback -- --model 1.3b --height 512 --width 512 --steps 1 --iters 2
fi
# one file back: every log, the summary last
for f in "$out"/gpu.txt "$out"/gpu_*.log "$out"/bench-*.log "$out/summary.txt"; do
	[ -f "$f" ] && { echo "==== $(basename "$f")"; cat "$f"; }
done > "$out.log"
cat "$out/summary.txt"
