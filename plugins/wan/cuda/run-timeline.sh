#!/bin/sh
# run-timeline.sh: the timeline / PDL round of the CUDA DiT on a lent GPU machine (NOTES.md
# "pdl"). Usage: run-timeline.sh BINDIR OUTDIR [ITERS] [STEPS...]. BINDIR holds gpu_kernels,
# gpu_dit, gpu_dit_stream, heru-wan, libktrace.so (ktrace.c) and ktrace_report.py. Logs SM
# clock and power every 100 ms for the whole run (smi.csv, phase marks in phases.txt), runs the
# GPU tests (gpu_dit also with WAN_PDL=0), 1.3B 480x832 S=4 bench-dit with the graph's
# programmatic edges printed, then the STEPS (see below: benchmarks and kernel traces, CUPTI,
# of the graphed S=4 call with a per-op-class table each). Stops starting new steps after
# $BUDGET seconds (default 330). Prints the summary last.
bin=${1:?bin dir}; out=${2:?out dir}; iters=${3:-20}
[ $# -ge 3 ] && shift 3 || shift $#
budget=${BUDGET:-330}
t0=$(date +%s)
mkdir -p "$out"
sum="$out/summary.txt"
: > "$sum"
mark() { echo "$(date +%s.%N) $1" >> "$out/phases.txt"; }
left() { [ $(( $(date +%s) - t0 )) -lt "$budget" ]; }
{
	nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.sm,power.limit --format=csv
	which nsys ncu 2>&1
	ls /usr/local/cuda/extras/CUPTI/lib64 2>&1 | head -3
} > "$out/gpu.txt" 2>&1
fields=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu
nvidia-smi --query-gpu=clocks_event_reasons.active --format=csv > /dev/null 2>&1 &&
	fields=$fields,clocks_event_reasons.active
nvidia-smi --query-gpu=$fields --format=csv,noheader -lms 100 > "$out/smi.csv" 2>&1 &
smi=$!
mark start
mark gpu_kernels
timeout 150 "$bin/gpu_kernels" > "$out/gpu_kernels.log" 2>&1
echo "gpu_kernels rc=$?" >> "$sum"
grep -h "PDL" "$out/gpu_kernels.log" >> "$sum"
for p in 1 0; do
	mark "gpu_dit pdl$p"
	WAN_PDL=$p timeout 120 "$bin/gpu_dit" > "$out/gpu_dit-pdl$p.log" 2>&1
	echo "gpu_dit WAN_PDL=$p rc=$?" >> "$sum"
done
if cmp -s "$out/gpu_dit-pdl1.log" "$out/gpu_dit-pdl0.log"; then
	echo "gpu_dit logs identical with PDL on and off" >> "$sum"
else
	echo "gpu_dit logs DIFFER with PDL on and off" >> "$sum"
fi
mark gpu_dit_stream
fix=; [ -d "$bin/fix" ] && fix="$bin/fix"
timeout 120 "$bin/gpu_dit_stream" $fix > "$out/gpu_dit_stream.log" 2>&1
echo "gpu_dit_stream rc=$?" >> "$sum"
# b NAME [VAR=value ...] -- bench arguments
b() {
	name=$1; shift; vars=
	while [ "$1" != "--" ]; do vars="$vars $1"; shift; done; shift
	left || { echo "bench $name skipped (time)" >> "$sum"; return; }
	mark "bench $name"
	timeout 100 env $vars "$bin/heru-wan" bench-dit --iters "$iters" "$@" > "$out/bench-$name.log" 2>&1
	echo "bench $name$vars rc=$?" >> "$sum"
	grep RESULT "$out/bench-$name.log" | sed 's/model=1.3b res=480x832 //' >> "$sum"
}
# t NAME [VAR=value ...]: the S=4 call traced (10 iterations: the steady graph is launched 23 times)
t() {
	name=$1; shift
	left || { echo "trace $name skipped (time)" >> "$sum"; return; }
	mark "trace $name"
	timeout 100 env "$@" KTRACE_OUT="$out/t-$name.tsv" LD_PRELOAD="$bin/libktrace.so" \
		"$bin/heru-wan" bench-dit --iters 10 --model 1.3b --height 480 --width 832 --steps 4 \
		> "$out/trace-$name.log" 2>&1
	echo "trace $name $* rc=$?" >> "$sum"
	grep "RESULT\|ktrace" "$out/trace-$name.log" >> "$sum"
	python3 "$bin/ktrace_report.py" "$out/t-$name.tsv" --min-launches 20 > "$out/timeline-$name.txt" 2>&1
	head -30 "$out/timeline-$name.txt" >> "$sum"
	gzip -f "$out/t-$name.tsv"
}
s4="--model 1.3b --height 480 --width 832 --steps 4"
s1="--model 1.3b --height 480 --width 832 --steps 1"
b s4 WAN_GRAPH_DEBUG=1 -- $s4
grep -m2 "programmatic" "$out/bench-s4.log" >> "$sum"
# the steps: NAME:VAR=v,VAR=v:ARGS (bench-dit ARGS; "s4"/"s1" stand for 1.3B 480x832 S=4/S=1),
# trace-NAME:VAR=v,... (the S=4 call traced); default: the PDL round of NOTES.md "pdl"
[ $# -gt 0 ] || set -- "s4-pdl0:WAN_PDL=0:s4" "trace-pdl0:WAN_PDL=0" "trace-pdl1:WAN_PDL=1" \
	"s1-pdl1::s1" "s1-pdl0:WAN_PDL=0:s1" "s4-pdl1-again::s4" "s4-pdl0-again:WAN_PDL=0:s4"
for step in "$@"; do
	name=${step%%:*}; rest=${step#*:}; vars=$(echo "${rest%%:*}" | tr ',' ' '); args=${rest#*:}
	case "$args" in s4) args=$s4 ;; s1) args=$s1 ;; esac
	case "$name" in
	trace-*) t "${name#trace-}" $vars ;;
	*) b "$name" $vars -- $args ;;
	esac
done
mark end
kill "$smi" 2>/dev/null
# clocks and power per phase (samples drawing > 150 W)
python3 - "$out" >> "$sum" 2>&1 <<'EOF'
import sys, datetime
out = sys.argv[1]
ph = []
for line in open(out + "/phases.txt"):
    t, name = line.split(" ", 1)
    ph.append((float(t), name.strip()))
rows = []
for line in open(out + "/smi.csv"):
    f = [x.strip() for x in line.split(",")]
    try:
        ts = datetime.datetime.strptime(f[0], "%Y/%m/%d %H:%M:%S.%f").timestamp()
        rows.append((ts, float(f[1].split()[0]), float(f[3].split()[0]), f[4], f[5] if len(f) > 5 else ""))
    except (ValueError, IndexError):
        pass
print("clocks per phase (busy samples, > 150 W): n, SM MHz min/median/max, W median/max, temp, event reasons")
for i, (t, name) in enumerate(ph[:-1]):
    t1 = ph[i + 1][0]
    s = [r for r in rows if t <= r[0] < t1 and r[2] > 150]
    if not s:
        continue
    clk = sorted(r[1] for r in s)
    pw = sorted(r[2] for r in s)
    reasons = sorted(set(r[4] for r in s))
    print("  %-22s %4d  %5.0f %5.0f %5.0f  %5.0f %5.0f  %s  %s" % (
        name, len(s), clk[0], clk[len(clk) // 2], clk[-1], pw[len(pw) // 2], pw[-1], s[-1][3], " ".join(reasons)[:60]))
EOF
for f in "$out"/gpu.txt "$out"/gpu_*.log "$out"/bench-*.log "$out"/trace-*.log "$out"/timeline-*.txt "$sum"; do
	[ -f "$f" ] && { echo "==== $(basename "$f")"; cat "$f"; }
done > "$out.log"
cat "$sum"
