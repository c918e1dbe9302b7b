#!/bin/sh
# run-gpu.sh: the GPU checks and benchmarks of the CUDA DiT in one go (for a lent GPU machine).
# Usage: run-gpu.sh BINDIR OUTDIR [quick]. BINDIR holds gpu_kernels, gpu_dit and bench-dit.
# Writes one log per step into OUTDIR and prints a summary table last.
bin=${1:?bin dir}; out=${2:?out dir}; mode=${3:-full}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv > "$out/gpu.txt" 2>&1
for t in gpu_kernels gpu_dit; do
	timeout 240 "$bin/$t" > "$out/$t.log" 2>&1; echo "$t rc=$?" >> "$out/summary.txt"
done
b() { name=$1; shift; timeout 200 "$bin/bench-dit" "$@" > "$out/bench-$name.log" 2>&1; echo "bench $name rc=$?" >> "$out/summary.txt"; grep RESULT "$out/bench-$name.log" >> "$out/summary.txt"; }
b 13b-480-s1 --model 1.3b --height 480 --width 832 --steps 1
b 13b-480-s2 --model 1.3b --height 480 --width 832 --steps 2
b 13b-480-s4 --model 1.3b --height 480 --width 832 --steps 4
b 13b-512-s1 --model 1.3b --height 512 --width 512 --steps 1
if [ "$mode" = full ]; then
	b 13b-480-s4-nobatch --model 1.3b --height 480 --width 832 --steps 4 --mode nobatch --iters 10
	b 14b-480-s1 --model 14b --height 480 --width 832 --steps 1 --iters 10
fi
cat "$out/summary.txt"
