#!/bin/sh
# run-gpu.sh: the GPU tests and benchmarks of the CUDA DiT in one go (for a lent GPU machine).
# Usage: run-gpu.sh BINDIR OUTDIR [ITERS]. BINDIR holds gpu_kernels, gpu_dit, gpu_dit_stream,
# heru-wan (or bench-dit) and optionally fix/ (tests/fixtures/wan/dit). Writes one log per
# step into OUTDIR and prints a summary last. The benchmarks run only when the kernel test
# shows cuDNN attention (without it the fallback kernel is too slow to time).
bin=${1:?bin dir}; out=${2:?out dir}; iters=${3:-20}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv > "$out/gpu.txt" 2>&1
WAN_ATTN_DEBUG=1 timeout 120 "$bin/gpu_kernels" > "$out/gpu_kernels.log" 2>&1
echo "gpu_kernels rc=$?" >> "$out/summary.txt"
timeout 120 "$bin/gpu_dit" > "$out/gpu_dit.log" 2>&1; echo "gpu_dit rc=$?" >> "$out/summary.txt"
if [ -x "$bin/gpu_dit_stream" ]; then
	fix=; [ -d "$bin/fix" ] && fix="$bin/fix"
	timeout 120 "$bin/gpu_dit_stream" $fix > "$out/gpu_dit_stream.log" 2>&1
	echo "gpu_dit_stream rc=$?" >> "$out/summary.txt"
fi
if [ -x "$bin/heru-wan" ]; then bench="$bin/heru-wan bench-dit"; else bench="$bin/bench-dit"; fi
b() { name=$1; shift; timeout 120 $bench --iters "$iters" "$@" > "$out/bench-$name.log" 2>&1; echo "bench $name rc=$?" >> "$out/summary.txt"; grep RESULT "$out/bench-$name.log" >> "$out/summary.txt"; }
if grep -q '\[cuDNN' "$out/gpu_kernels.log"; then
	b 13b-480-s1 --model 1.3b --height 480 --width 832 --steps 1
	b 13b-480-s4 --model 1.3b --height 480 --width 832 --steps 4
	b 13b-512-s1 --model 1.3b --height 512 --width 512 --steps 1
	b 13b-480-s2 --model 1.3b --height 480 --width 832 --steps 2
	b 14b-480-s1 --model 14b --height 480 --width 832 --steps 1
	b 13b-480-s4-nobatch --model 1.3b --height 480 --width 832 --steps 4 --mode nobatch
else
	b 13b-512-s1-fallback --model 1.3b --height 512 --width 512 --steps 1 --iters 2
fi
cat "$out/summary.txt"
