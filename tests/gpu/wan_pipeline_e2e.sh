#!/bin/sh
# wan_pipeline_e2e.sh: the Wan plugin pipeline on a GPU machine, end to end (CUDA path).
#
# Usage: wan_pipeline_e2e.sh BINDIR OUTDIR
# BINDIR holds herud, heru-smoke, heru-wan, wan13b_cuda.so, mock.so, wan_cuda_engine.so,
# lib/ (the shared libraries the GPU machine may lack: jansson, libevent, wslay, turbojpeg),
# fix/ (bytefb.model: a byte-fallback tokenizer fixture from tests/fixtures/wan/t5/) and
# t5_4096.safetensors + t5_4096_config.json, or make_tiny_t5.py to make them (a 1-layer umT5 of random weights whose output
# dim is the DiT's text_dim 4096; the real umT5-XXL is 11 GB).
# Makes a weights folder in /tmp: DiT 1.3B random weights (heru-wan random-weights, bf16),
# Wan VAE and TAEHV random weights at the real shapes (heru-wan random-vae) and a
# heru-model.json naming them (WIDTH x HEIGHT, default 512x512). Then runs herud with the
# plugins on the GPU and streams with heru-smoke, one herud per run of RUNS (default
# "wan-s1:wan:1 wan-s2:wan:2 tae-s1:taehv:1": NAME:DECODER:STEPS, the decoder `wan` or
# `taehv`). Logs, stats (the session's /stats polled every second) and nvidia-smi memory
# samples go to OUTDIR; a summary is printed last. FRAMES (120) and FPS (30) set the camera.
# Preparing BINDIR from a CUDA build B (configure found nvcc) of this tree:
#   mkdir -p D/lib D/fix && cp B/herud B/heru-wan B/server/heru-smoke B/plugins/mock/.libs/mock.so \
#     B/plugins/wan/.libs/wan13b_cuda.so B/plugins/wan/.libs/wan_cuda_engine.so \
#     tests/gpu/make_tiny_t5.py D/ && cp tests/fixtures/wan/t5/bytefb.model D/fix/ &&
#   for l in libjansson.so.4 libevent-2.1.so.7 libevent_core-2.1.so.7 libevent_pthreads-2.1.so.7 \
#     libwslay.so.1 libturbojpeg.so.0; do cp -L /usr/lib/x86_64-linux-gnu/$l D/lib/; done
# Set HERU_CUDNN_LIB to a cuDNN folder when the build's cuDNN is newer than the machine's.
bin=$(cd "${1:?bin dir}" && pwd); out=${2:?out dir}
mkdir -p "$out"
export LD_LIBRARY_PATH="$bin/lib:${HERU_CUDNN_LIB:-}:${LD_LIBRARY_PATH:-}"
W=/tmp/heru-wan-e2e; P=/tmp/heru-wan-e2e-plugins; PORT=${PORT:-8765}; URL=http://127.0.0.1:$PORT
rm -rf "$W" "$P"; mkdir -p "$W/ckpts/wan_causal_dmd_v2v" "$P/wan-cuda"
cp "$bin/wan13b_cuda.so" "$bin/mock.so" "$P/" && cp "$bin/wan_cuda_engine.so" "$P/wan-cuda/"
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv > "$out/gpu.txt" 2>&1
# curl, or python3 where the machine has no curl
get() {
	if command -v curl > /dev/null; then curl -sf "$1"; else
	python3 -c 'import sys,urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1],timeout=5).read().decode())' "$1" 2> /dev/null; fi
}
log() { echo "$*" | tee -a "$out/summary.txt"; }

t0=$(date +%s%3N)
timeout 120 "$bin/heru-wan" random-weights --model 1.3b --out "$W/ckpts/wan_causal_dmd_v2v/model.pt" \
	--dtype bf16 --prefix model. --seed 1 > "$out/weights.log" 2>&1
rc=$?
log "random-weights rc=$rc ($(( $(date +%s%3N) - t0 )) ms)"
t0=$(date +%s%3N)
timeout 120 "$bin/heru-wan" random-vae --out "$W/vae.safetensors" --taehv-out "$W/taehv.safetensors" \
	>> "$out/weights.log" 2>&1
rc=$?
log "random-vae rc=$rc ($(( $(date +%s%3N) - t0 )) ms)"
if [ ! -f "$bin/t5_4096.safetensors" ]; then # else made here (needs python3)
	python3 "$bin/make_tiny_t5.py" "$bin" >> "$out/weights.log" 2>&1 || log "make_tiny_t5.py failed"
fi
cat > "$W/heru-model.json" <<JSON
{"vae_weights": "vae.safetensors", "taehv_weights": "taehv.safetensors",
 "t5_weights": "$bin/t5_4096.safetensors", "t5_config": "$bin/t5_4096_config.json",
 "tokenizer": "$bin/fix/bytefb.model", "width": ${WIDTH:-512}, "height": ${HEIGHT:-512}}
JSON
ls -la "$W" "$W/ckpts/wan_causal_dmd_v2v" >> "$out/weights.log"

nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv -lms 500 > "$out/gpu-mem.csv" 2>&1 &
smi=$!

# run NAME VAE STEPS FRAMES FPS: one herud (session_defaults.vae = VAE), one heru-smoke session
run() {
	name=$1 vae=$2 steps=$3 frames=$4 fps=$5
	echo "{\"session_defaults\": {\"vae\": \"$vae\"}}" > "$out/herud-$name.json"
	HERU_WEIGHTS=$W "$bin/herud" --listen 127.0.0.1:$PORT --plugin-dir "$P" --web-root /nonexistent \
		--config "$out/herud-$name.json" --log-level debug > "$out/herud-$name.log" 2>&1 &
	hp=$!
	i=0; while [ $i -lt 50 ] && ! get $URL/api/health > /dev/null; do sleep 0.1; i=$((i+1)); done
	( while kill -0 $hp 2> /dev/null; do
		get $URL/api/session/$name/stats; echo; sleep 1; done ) > "$out/stats-$name.jsonl" 2>&1 &
	sp=$!
	timeout ${SMOKE_LIMIT:-150} "$bin/heru-smoke" --url $URL --session "$name" --steps "$steps" --frames "$frames" \
		--width ${WIDTH:-512} --height ${HEIGHT:-512} --fps "$fps" --require-core --timeout ${CORE_TIMEOUT:-120} --save "$out/$name.jpg" > "$out/smoke-$name.log" 2>&1
	rc=$?
	log "smoke $name (vae $vae, S=$steps) rc=$rc"
	grep -E "^\[|progression|frames:|latency" "$out/smoke-$name.log" | tee -a "$out/summary.txt"
	get $URL/api/session/$name/stats > "$out/stats-$name-final.json"
	get $URL/metrics > "$out/metrics-$name.txt"
	kill $hp; wait $hp; kill $sp 2> /dev/null
	tail -n 1 "$out/stats-$name.jsonl" | head -c 3000 >> "$out/summary.txt"; echo >> "$out/summary.txt"
}
for r in ${RUNS:-wan-s1:wan:1 wan-s2:wan:2 tae-s1:taehv:1}; do
	IFS=: read -r rn rv rs <<EOF2
$r
EOF2
	run "$rn" "$rv" "$rs" ${FRAMES:-120} ${FPS:-30}
done
kill $smi
log "peak GPU memory used: $(awk -F', ' 'NR>1 {gsub(/ MiB/,"",$2); if ($2+0>m) m=$2+0} END {print m}' "$out/gpu-mem.csv") MiB"
cat "$out/summary.txt"
