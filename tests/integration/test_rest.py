#!/usr/bin/env python3
"""herud REST endpoints, static files, limits and refusals over real HTTP."""
import os
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import herutest as H  # noqa: E402
from herutest import check  # noqa: E402

H.need_mock()
srv = H.Server()


def test_health():
    st, hdr, body = srv.get("/api/health")
    check(st == 200, "health answered %d" % st)
    check(body["status"] == "ok", "status is %r" % body["status"])
    check(isinstance(body["version"], str) and body["version"], "no version")
    check(body["uptime_s"] >= 0, "uptime")
    check("mock" in body["plugins"], "mock missing from plugins %r" % body["plugins"])
    check(isinstance(body["gpu"]["present"], bool) and isinstance(body["gpu"]["count"], int), "gpu object")


def test_config_get_creates_session():
    st, _, cfg = srv.get("/api/session/rest1/config")
    check(st == 200, "GET config answered %d" % st)
    for f in ("prompt", "prompt_dominance", "pose_lock", "depth_lock", "seg_lock", "motion_lock", "A", "B",
              "backend", "model_variant", "inference_topology", "distributed_world_size", "inference_steps",
              "target_fps", "output_width", "output_height", "weights_path", "seed", "vae", "revision",
              "runtime_status"):
        check(f in cfg, "config lacks %s" % f)
    rs = cfg["runtime_status"]
    for f in ("mode", "backend", "error", "load_progress"):
        check(f in rs, "runtime_status lacks %s" % f)
    check(cfg["output_width"] == 128, "session_defaults from the config file not applied")


def test_config_put_and_revision():
    _, _, before = srv.get("/api/session/rest2/config")
    st, _, after = srv.put("/api/session/rest2/config", {"prompt": "charcoal drawing", "seg_lock": 0.5})
    check(st == 200, "PUT answered %d: %r" % (st, after))
    check(after["prompt"] == "charcoal drawing" and after["seg_lock"] == 0.5, "patch not applied")
    check(after["revision"] == before["revision"] + 1, "revision did not increase by one")
    # the same values again: nothing changes, no new revision
    st, _, same = srv.put("/api/session/rest2/config", {"prompt": "charcoal drawing"})
    check(st == 200 and same["revision"] == after["revision"], "a no-op patch changed the revision")
    # GET sees it
    _, _, again = srv.get("/api/session/rest2/config")
    check(again["prompt"] == "charcoal drawing", "GET after PUT")


def settled(session):
    """The session's config once its first backend is up (runtime_status settles)."""
    deadline = time.time() + 10
    while True:
        _, _, cfg = srv.get("/api/session/%s/config" % session)
        if cfg["runtime_status"]["loading"] is None or time.time() > deadline:
            return cfg
        time.sleep(0.05)


def test_config_put_errors_change_nothing():
    before = settled("rest3")
    st, _, body = srv.put("/api/session/rest3/config",
                          {"prompt": "ok", "prompt_dominance": 2, "target_fps": "fast", "nope": 1, "revision": 9})
    check(st == 400, "bad patch answered %d" % st)
    fields = {e["field"]: e["reason"] for e in body["errors"]}
    for f in ("prompt_dominance", "target_fps", "nope", "revision"):
        check(f in fields, "error list lacks %s: %r" % (f, body["errors"]))
    check(isinstance(body["error"], str) and body["error"], "no error sentence")
    after = settled("rest3")
    check(after == before, "a refused patch changed the config")
    # malformed JSON and non-object bodies
    for raw in ("{\"prompt\": ", "[1,2]", "", "\"text\"", "{" * 100 + "}" * 100):
        st, _, body = srv.request("PUT", "/api/session/rest3/config", body=raw)
        check(st == 400, "body %r answered %d" % (raw[:20], st))
        check("error" in body, "no error for %r" % raw[:20])
    after = settled("rest3")
    check(after == before, "malformed bodies changed the config")


def test_stats():
    st, _, s = srv.get("/api/session/rest1/stats")
    check(st == 200, "stats answered %d" % st)
    for f in ("frames_in", "frames_out", "frames_dropped", "fps_in", "fps_out", "avg_latency_ms", "p50_ms",
              "p95_ms", "p99_ms", "clients", "backend", "mode"):
        check(f in s, "stats lacks %s" % f)


def test_plugins_and_refused():
    st, _, body = srv.get("/api/plugins")
    check(st == 200, "plugins answered %d" % st)
    ids = {p["id"]: p for p in body["plugins"]}
    check("mock" in ids, "mock not listed")
    m = ids["mock"]
    for f in ("kind", "version", "abi", "capabilities", "file"):
        check(f in m, "plugin entry lacks %s" % f)
    check(m["kind"] == "backend", "mock kind %r" % m["kind"])
    # a server whose plugin folder holds a file that is not a plugin lists it as refused
    tmp = tempfile.mkdtemp(prefix="herutest-plugins-")
    try:
        shutil.copy(os.path.join(H.PLUGIN_DIR, "mock.so"), tmp)
        with open(os.path.join(tmp, "broken.so"), "wb") as f:
            f.write(b"\x7fELF this is not a shared object")
        other = H.Server(plugin_dir=tmp)
        try:
            _, _, body = other.get("/api/plugins")
            refused = {r["file"]: r["reason"] for r in body["refused"]}
            check(any("broken.so" in f for f in refused), "broken.so not refused: %r" % body)
            check(all(r for r in refused.values()), "a refusal without a reason")
            st, _, h = other.get("/api/health")
            check(st == 200 and "mock" in h["plugins"], "server with a refused plugin is not healthy")
        finally:
            other.stop()
    finally:
        shutil.rmtree(tmp)


def test_metrics():
    srv.get("/api/session/rest1/stats")
    st, hdr, body = srv.get("/metrics")
    check(st == 200, "metrics answered %d" % st)
    check(hdr.get("Content-Type", "").startswith("text/plain"), "metrics content type %r" % hdr.get("Content-Type"))
    text = body.decode()
    for needle in ("# TYPE heru_frames_in_total counter", 'heru_frames_in_total{session="rest1"}',
                   'heru_latency_ms{session="rest1",quantile="0.99"}', "heru_uptime_seconds"):
        check(needle in text, "metrics lack %r" % needle)
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            float(value)  # every sample is a number


def test_static_files():
    st, hdr, body = srv.get("/")
    check(st == 200, "/ answered %d" % st)
    check(hdr["Content-Type"].startswith("text/html"), "index content type")
    with open(os.path.join(H.WEB_ROOT, "index.html"), "rb") as f:
        check(body == f.read(), "/ is not web/index.html")
    for path in ("/../configure.ac", "/%2e%2e/configure.ac", "/..%2fconfigure.ac", "/.hidden", "/nope.html",
                 "/%00", "/a%5c..%5cb"):
        st, _, _ = srv.get(path)
        check(st in (400, 404), "%s answered %d" % (path, st))
    st, hdr, _ = srv.request("DELETE", "/index.html")
    check(st == 405, "DELETE answered %d" % st)


def test_unknown_and_method():
    st, _, body = srv.get("/api/nothing")
    check(st == 404 and "error" in body, "unknown api path answered %d" % st)
    st, _, body = srv.request("PUT", "/api/session/rest1/stats", body="{}")
    check(st == 405, "PUT stats answered %d" % st)
    st, _, body = srv.get("/api/session/bad$id/config")
    check(st == 400, "bad session id answered %d" % st)
    st, _, body = srv.get("/api/session/" + "x" * 65 + "/config")
    check(st in (400, 404), "overlong session id answered %d" % st)


def test_oversized_header_and_body():
    st, _, _ = srv.get("/api/health", headers={"X-Big": "a" * 20000})
    check(st in (400, 413, 431), "oversized header answered %d" % st)
    big = '{"prompt": "' + "a" * 100000 + '"}'
    try:
        st, _, _ = srv.request("PUT", "/api/session/rest1/config", body=big)
        check(st in (400, 413), "oversized body answered %d" % st)
    except (ConnectionError, OSError):
        pass  # evhttp may close the connection after answering 413
    st, _, _ = srv.get("/api/health")
    check(st == 200, "server unhealthy after oversized requests")


def test_half_open_http():
    # a client that sends half a request and then nothing is dropped after http_timeout_s,
    # and does not block anyone else
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
    st, _, _ = srv.get("/api/health")
    check(st == 200, "others not served while a request is half open")
    s.settimeout(10)
    start = time.time()
    try:
        data = s.recv(4096)
    except OSError:
        data = b""
    check(time.time() - start < 9, "half-open connection was not closed by the timeout")
    s.close()
    # binary garbage instead of HTTP
    g = socket.create_connection(("127.0.0.1", srv.port))
    g.sendall(os.urandom(2000) + b"\r\n\r\n")
    g.settimeout(5)
    try:
        g.recv(4096)
    except OSError:
        pass
    g.close()
    st, _, _ = srv.get("/api/health")
    check(st == 200 and srv.alive(), "server unhealthy after garbage")


def test_token():
    tok = H.Server(args=["--token", "s3cret"])
    try:
        st, hdr, _ = tok.get("/api/health")
        check(st == 401, "no token answered %d" % st)
        st, _, _ = tok.get("/api/health", headers={"Authorization": "Bearer wrong"})
        check(st == 401, "wrong token answered %d" % st)
        st, _, _ = tok.get("/api/health", headers={"Authorization": "Bearer s3cret"})
        check(st == 200, "right token answered %d" % st)
        st, _, _ = tok.get("/api/health?token=s3cret")
        check(st == 200, "query token answered %d" % st)
        st, _, _ = tok.get("/")
        check(st == 200, "static files need no token")
        tok.ws(expect_status=401).sock.close()
        w = tok.ws(headers={"Sec-WebSocket-Protocol": "bearer.s3cret"})
        check(w.headers.get("sec-websocket-protocol") == "bearer.s3cret", "subprotocol not echoed")
        w.recv_json()
        w.close()
    finally:
        tok.stop()


def test_session_eviction():
    ev = H.Server(config={"max_sessions": 2, "session_idle_s": 2})
    try:
        st, _, a = ev.put("/api/session/ea/config", {"prompt": "kept?"})
        check(st == 200 and a["prompt"] == "kept?", "PUT ea")
        ev.get("/api/session/eb/config")
        w = ev.ws("eb")  # eb has a client: never evicted
        w.recv_json()
        # a third session takes the place of the least recently used one without clients (ea)
        st, _, _ = ev.get("/api/session/ec/config")
        check(st == 200, "third session answered %d" % st)
        _, _, h = ev.get("/api/health")
        check(sorted(h["sessions"]) == ["eb", "ec"], "sessions %r" % h["sessions"])
        # with both remaining sessions busy, a new one is refused
        w2 = ev.ws("ec")
        w2.recv_json()
        st, _, body = ev.get("/api/session/ed/config")
        check(st == 503 and "limit" in body["error"], "over the limit answered %d" % st)
        w2.close()
        # an evicted session comes back fresh (once the server has seen ec's client leave)
        deadline = time.time() + 5
        while True:
            st, _, a2 = ev.get("/api/session/ea/config")
            if st != 503 or time.time() > deadline:
                break
            time.sleep(0.1)
        check(st == 200 and a2["prompt"] != "kept?" and a2["revision"] == 1, "ea not fresh: %r" % a2["prompt"])
        # sessions without clients go after session_idle_s; the one with a client stays and streams
        deadline = time.time() + 8
        while time.time() < deadline:
            _, _, h = ev.get("/api/health")
            if h["sessions"] == ["eb"]:
                break
            time.sleep(0.3)
        check(h["sessions"] == ["eb"], "idle sessions not evicted: %r" % h["sessions"])
        w.send_frame_jpeg(1, 0, H.fixture("camera_160x120.jpg"))
        w.wait_binary()
        w.close()
    finally:
        ev.stop()


def test_refuses_public_bind_without_token():
    import subprocess
    herud = os.path.join(H.TOP_BUILDDIR, "herud")
    p = subprocess.run([herud, "--listen", "0.0.0.0:0", "--config", srv.config_path], capture_output=True,
                       timeout=20)
    check(p.returncode != 0, "herud bound 0.0.0.0 without a token")
    check(b"--token" in p.stderr, "the refusal does not mention --token: %r" % p.stderr)
    p = subprocess.run([herud, "--listen", "nonsense", "--config", srv.config_path], capture_output=True,
                       timeout=20)
    check(p.returncode != 0 and b"HOST:PORT" in p.stderr, "bad --listen accepted")
    p = subprocess.run([herud, "--print-schema"], capture_output=True, timeout=20)
    check(p.returncode == 0 and b"prompt_dominance" in p.stdout, "--print-schema")


H.run_then_stop(srv, [test_health, test_config_get_creates_session, test_config_put_and_revision,
                  test_config_put_errors_change_nothing, test_stats, test_plugins_and_refused, test_metrics,
                  test_static_files, test_unknown_and_method, test_oversized_header_and_body, test_half_open_http,
                  test_token, test_session_eviction, test_refuses_public_bind_without_token])
