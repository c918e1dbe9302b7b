#!/usr/bin/env bash
# tests/sdk_cli.sh: heru-smoke and heru-bench against a real herud, as a user runs them:
#  1. heru-smoke starts its own herud when none answers, streams through the mock,
#     saves a JPEG, and stops that herud again;
#  2. against a running herud: the Wan model request walks the modes and falls back
#     to mock with the one-sentence reason; --require-core fails clearly (exit 1);
#     bad usage exits 2;
#  3. heru-bench with 2 clients reports delivered frames, latency and server CPU;
#  4. the server is still up afterwards.
set -u
b=${top_builddir:-.}
smoke=$b/server/heru-smoke
bench=$b/server/heru-bench
plugins=${HERU_PLUGIN_DIR:-$b/plugins/dev}
[ -x "$b/herud" ] && [ -x "$smoke" ] && [ -x "$bench" ] || { echo "SKIP: herud or the CLIs are not built"; exit 77; }

free_port() {
	if [ -n "${PYTHON3:-}" ] && [ -x "$PYTHON3" ]; then
		"$PYTHON3" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
	else
		echo $(( 20000 + (RANDOM * 7 + $$) % 40000 ))
	fi
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/heru-sdk-cli.XXXXXX")
hpid=
cleanup() { [ -n "$hpid" ] && kill "$hpid" 2>/dev/null && wait "$hpid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$tmp"/*.out "$tmp"/*.err "$tmp"/herud.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }; done; exit 1; }

gpu=no
if ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1' && [ -e /dev/nvidiactl ]; then gpu=yes; fi

# 1. heru-smoke starts (and stops) its own server
p1=$(free_port)
"$smoke" --url "http://127.0.0.1:$p1" --plugin-dir "$plugins" --backend mock --frames 8 --fps 20 \
	--width 160 --height 128 --save "$tmp/out.jpg" >"$tmp/s1.out" 2>"$tmp/s1.err" || fail "heru-smoke with its own server"
grep -q '^average latency per frame: [0-9.]* ms$' "$tmp/s1.out" || fail "no average latency line"
grep -q '^frames: sent 8, received [1-8],' "$tmp/s1.out" || fail "frames line"
grep -q 'starting .*herud' "$tmp/s1.err" || fail "heru-smoke did not say it started herud"
[ "$(head -c 2 "$tmp/out.jpg" | od -An -tx1 | tr -d ' ')" = ffd8 ] || fail "--save did not write a JPEG"
sleep 0.5
if (exec 3<>"/dev/tcp/127.0.0.1/$p1") 2>/dev/null; then fail "the herud started by heru-smoke is still running"; fi

# 2. against a running herud
p2=$(free_port)
"$b/herud" --listen "127.0.0.1:$p2" --plugin-dir "$plugins" --log-level warn >"$tmp/herud.log" 2>&1 &
hpid=$!
url=http://127.0.0.1:$p2
for _ in $(seq 1 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$p2") 2>/dev/null && break
	sleep 0.1
done
"$smoke" --url "$url" --frames 6 --fps 20 --width 160 --height 128 >"$tmp/s2.out" 2>"$tmp/s2.err" \
	|| fail "heru-smoke on the Wan model request (mock fallback)"
grep -q '^mode progression: mock -> core-imported' "$tmp/s2.out" || fail "mode progression"
if [ $gpu = no ]; then
	grep -q 'error: CUDA is required for wan-1.3b (no NVIDIA GPU found)$' "$tmp/s2.out" || fail "CUDA sentence"
fi
grep -q '^average latency per frame:' "$tmp/s2.out" || fail "no latency after the fallback"

"$smoke" --url "$url" --frames 4 --require-core --model wan-14b --topology distributed --world-size 2 \
	--timeout 60 >"$tmp/s3.out" 2>"$tmp/s3.err"
rc=$?
[ $rc -eq 1 ] || fail "--require-core without a working core exited $rc, not 1"
grep -q 'FAILED: the Wan core never became active' "$tmp/s3.err" || fail "--require-core message"

"$smoke" --url "$url" --model wan-2b >"$tmp/s4.out" 2>"$tmp/s4.err"
[ $? -eq 2 ] || fail "bad --model did not exit 2"
grep -q "model must be wan-1.3b or wan-14b" "$tmp/s4.err" || fail "bad --model message"

"$smoke" --url "$url" --backend mock --width 4000 --frames 2 >"$tmp/s5.out" 2>"$tmp/s5.err"
[ $? -eq 2 ] || fail "a config the server refuses did not exit 2"
grep -q 'output_width' "$tmp/s5.err" || fail "refused field not named"

# 3. heru-bench
"$bench" --url "$url" --clients 2 --fps 10 --seconds 2 --size 160x128 --drain 3 --json \
	>"$tmp/b.out" 2>"$tmp/b.err" || fail "heru-bench"
grep -q '"clients": *2' "$tmp/b.out" || fail "bench JSON"
delivered=$(sed -n 's/.*"delivered": *\([0-9]*\).*/\1/p' "$tmp/b.out")
[ -n "$delivered" ] && [ "$delivered" -gt 10 ] || fail "bench delivered only '${delivered}' frames"
grep -q '"latency_p99_ms": *[0-9]' "$tmp/b.out" || fail "bench latency"
grep -q '"server_cpu_percent": *[0-9]' "$tmp/b.out" || fail "bench server CPU"

# 4. still serving
kill -0 "$hpid" 2>/dev/null || fail "herud died"
"$smoke" --url "$url" --backend mock --frames 2 --width 160 --height 128 >"$tmp/s6.out" 2>&1 || fail "herud stopped answering"
echo "PASS: heru-smoke and heru-bench"
exit 0
