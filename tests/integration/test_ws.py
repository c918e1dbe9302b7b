#!/usr/bin/env python3
"""herud WebSocket protocol: every message, shared sessions, and each bad input,
with other clients still served."""
import base64
import json
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import herutest as H  # noqa: E402
from herutest import check  # noqa: E402

H.need_mock()
srv = H.Server()
CAM = H.fixture("camera_320x240.jpg")
CAM_SMALL = H.fixture("camera_160x120.jpg")


def connect(session):
    w = srv.ws(session)
    first = w.recv_json()
    check(first["type"] == "config.current", "first message is %r, not config.current" % first["type"])
    return w, first["payload"]


def roundtrip(w, fid, jpeg=CAM, timeout=10):
    w.send_frame_jpeg(fid, 1000.0 + fid, jpeg)
    deadline = time.time() + timeout
    while True:
        rid, ts, out = w.wait_binary(max(0.1, deadline - time.time()))
        if rid == fid:
            check(ts == 1000.0 + fid, "timestamp not echoed: %r" % ts)
            return out


def test_connect_gets_config():
    w, cfg = connect("ws1")
    check("revision" in cfg and "runtime_status" in cfg, "config.current lacks revision/runtime_status")
    w.close()


def test_binary_frame_roundtrip():
    w, _ = connect("ws2")
    out = roundtrip(w, 7)
    check(H.jpeg_size(out) == (128, 96), "output is %r, not output_width x output_height" % (H.jpeg_size(out),))
    # output size follows the config live
    w.send_json({"type": "config.update", "payload": {"output_width": 200, "output_height": 104}})
    w.wait_type("config.current", pred=lambda p: p["output_width"] == 200)
    out = roundtrip(w, 8)
    check(H.jpeg_size(out) == (200, 104), "output %r after resize" % (H.jpeg_size(out),))
    # the backend's own stats (mock: style, locks and their effect) reach the stats object
    deadline = time.time() + 5
    fid = 20
    while True:
        _, _, st = srv.get("/api/session/ws2/stats")
        if isinstance(st.get("backend_stats"), dict) or time.time() > deadline:
            break
        fid += 1
        roundtrip(w, fid)
        time.sleep(0.3)
    check(isinstance(st.get("backend_stats"), dict) and st["backend_stats"], "no backend_stats: %r" % st)
    w.close()


def test_json_frame_roundtrip():
    w, _ = connect("ws3")
    url = "data:image/jpeg;base64," + base64.b64encode(CAM_SMALL).decode()
    w.send_json({"type": "frame", "payload": {"id": 5, "ts": 77.5, "image": url}})
    p = w.wait_type("frame.processed")
    check(p["id"] == 5 and p["ts"] == 77.5, "id/ts not echoed: %r" % {k: p[k] for k in ("id", "ts")})
    check(p["image"].startswith("data:image/jpeg;base64,"), "image is not a JPEG data URL")
    jpeg = base64.b64decode(p["image"].split(",", 1)[1])
    check(H.jpeg_size(jpeg) == (p["width"], p["height"]) == (128, 96), "frame.processed size")
    # bare base64 works too
    w.send_json({"type": "frame", "payload": {"id": 6, "image": base64.b64encode(CAM_SMALL).decode()}})
    p = w.wait_type("frame.processed", pred=lambda p: p["id"] == 6)
    w.close()


def test_shared_session():
    a, _ = connect("ws4")
    b, _ = connect("ws4")
    a.send_json({"type": "config.update", "payload": {"prompt": "oil painting"}})
    for w in (a, b):
        p = w.wait_type("config.current", pred=lambda p: p["prompt"] == "oil painting")
        check(p["revision"] >= 2, "revision not increased")
    # output of a's frame reaches b too (binary, b sent nothing yet)
    a.send_frame_jpeg(11, 5.0, CAM)
    fid, ts, _ = b.wait_binary()
    check(fid == 11 and ts == 5.0, "b did not receive a's output")
    st, _, stats = srv.get("/api/session/ws4/stats")
    check(stats["clients"] == 2, "stats clients %r" % stats["clients"])
    a.close()
    b.close()


def test_presets():
    w, _ = connect("ws5")
    w.send_json({"type": "config.update", "payload": {
        "A": {"prompt": "pencil sketch", "prompt_dominance": 0.2},
        "B": {"prompt": "neon glow", "prompt_dominance": 1.0}}})
    w.wait_type("config.current", pred=lambda p: p["A"] is not None)
    w.send_json({"type": "preset.apply", "payload": {"preset": "B"}})
    p = w.wait_type("config.current", pred=lambda p: p["prompt"] == "neon glow")
    check(p["prompt_dominance"] == 1.0, "preset B not applied")
    w.send_json({"type": "preset.apply", "payload": {"mix": 0.25}})
    p = w.wait_type("config.current", pred=lambda p: p["prompt"] == "pencil sketch")
    check(abs(p["prompt_dominance"] - 0.4) < 1e-6, "mix 0.25 gave %r" % p["prompt_dominance"])
    w.send_json({"type": "preset.apply", "payload": {"preset": "C"}})
    e = w.wait_type("error")
    check(e["errors"] and e["errors"][0]["field"] == "preset", "bad preset error %r" % e)
    w.close()


def test_stats_pushed():
    w, _ = connect("ws6")
    t0 = time.time()
    s1 = w.wait_type("stats", timeout=3)
    s2 = w.wait_type("stats", timeout=3)
    dt = time.time() - t0
    check(dt < 3.5, "two stats messages took %.1f s" % dt)
    for f in ("frames_in", "frames_out", "frames_dropped", "fps_in", "fps_out", "avg_latency_ms", "p50_ms",
              "p95_ms", "p99_ms", "clients", "backend", "mode"):
        check(f in s2, "stats lacks %s" % f)
    w.close()


def expect_error(w, words):
    e = w.wait_type("error")
    check(isinstance(e["message"], str) and e["message"], "error without a sentence")
    check(words in e["message"] or any(words in x["reason"] for x in e.get("errors", [])),
          "error %r lacks %r" % (e, words))
    return e


def test_bad_messages_change_nothing():
    w, cfg0 = connect("ws7")
    other, _ = connect("ws7")
    w.send_text("{not json")
    expect_error(w, "not valid JSON")
    w.send_json({"type": "launch.missiles", "payload": {}})
    expect_error(w, "unknown message type")
    w.send_json({"payload": {}})
    expect_error(w, "type")
    w.send_json({"type": "config.update", "payload": {"prompt_dominance": "lots", "pose_lock": -1,
                                                       "inference_steps": 99, "bogus": True}})
    e = expect_error(w, "nothing changed")
    fields = {x["field"] for x in e["errors"]}
    check(fields == {"prompt_dominance", "pose_lock", "inference_steps", "bogus"}, "error fields %r" % fields)
    w.send_json({"type": "config.update", "payload": [1]})
    expect_error(w, "payload")
    w.send_text("[" * 5000 + "]" * 5000)
    expect_error(w, "deeper")
    bad = srv.ws("ws7")
    bad.recv_json()
    bad.send_frame(bad.OP_TEXT, b"\xff\xfe invalid utf-8")
    code, _ = bad.wait_close()
    check(code == 1007, "invalid UTF-8 text closed with %r, not 1007" % code)
    bad.sock.close()
    # config unchanged (same revision), both clients still served
    st, _, cfg = srv.get("/api/session/ws7/config")
    check(cfg["revision"] == cfg0["revision"], "a refused message changed the revision")
    out = roundtrip(other, 3)
    check(len(out) > 100, "other client not served")
    out = roundtrip(w, 4)
    w.close()
    other.close()


def test_bad_frames():
    w, _ = connect("ws8")
    other, _ = connect("ws8")
    w.send_binary(b"HRF1" + struct.pack(">Id", 1, 0) + b"this is not a jpeg at all")
    expect_error(w, "not a JPEG")
    w.send_frame_jpeg(2, 0, H.with_huge_dimensions(CAM))
    expect_error(w, "exceeds the limit")
    w.send_binary(os.urandom(3000))
    expect_error(w, "HRF1")
    w.send_binary(b"HRF")
    expect_error(w, "shorter")
    w.send_frame_jpeg(3, 0, CAM[:200])  # header only, scan missing
    expect_error(w, "JPEG")
    w.send_json({"type": "frame", "payload": {"id": 4, "image": "data:image/png;base64,AAAA"}})
    expect_error(w, "data:image/jpeg")
    w.send_json({"type": "frame", "payload": {"id": "x", "image": ""}})
    expect_error(w, "id")
    st, _, stats = srv.get("/api/session/ws8/stats")
    check(stats["frame_errors"] >= 6, "frame_errors %r" % stats["frame_errors"])
    roundtrip(other, 9)
    roundtrip(w, 10)
    w.close()
    other.close()


def test_oversized_message_closed_1009():
    w, _ = connect("ws9")
    other, _ = connect("ws9")
    try:
        w.send_binary(b"HRF1" + b"\0" * 12 + b"x" * (3 * 1024 * 1024))
    except OSError:
        pass
    code, reason = w.wait_close()
    check(code == 1009, "oversized message closed with %r" % code)
    w.sock.close()
    roundtrip(other, 1)
    other.close()


def test_protocol_violation_closed():
    w, _ = connect("ws10")
    w.send_frame(w.OP_TEXT, b'{"type":"x"}', mask=False)  # clients must mask
    code, _ = w.wait_close()
    check(code == 1002, "unmasked frame closed with %r" % code)
    w.sock.close()
    other, _ = connect("ws10")
    roundtrip(other, 1)
    other.close()


def test_upgrade_refusals():
    def raw_upgrade(headers):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(("GET /ws/session/ws11 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % srv.port +
                   "".join("%s: %s\r\n" % kv for kv in headers.items()) + "\r\n").encode())
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        return int(data.split()[1])
    good = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version": "13"}
    check(raw_upgrade(dict(good, **{"Sec-WebSocket-Version": "8"})) == 426, "version 8 not 426")
    check(raw_upgrade(dict(good, **{"Sec-WebSocket-Key": "short"})) == 400, "bad key not 400")
    check(raw_upgrade(dict(good, Connection="keep-alive")) == 400, "no Connection: upgrade not 400")
    check(raw_upgrade({k: v for k, v in good.items() if k != "Upgrade"}) == 426, "no Upgrade not 426")
    check(raw_upgrade(dict(good, Origin="http://evil.example")) == 403, "foreign Origin not 403")
    check(raw_upgrade(dict(good, Origin="http://127.0.0.1:%d" % srv.port)) == 101, "same Origin refused")
    st, _, _ = srv.get("/api/health")
    check(st == 200, "server unhealthy after refused upgrades")


def test_bytes_right_after_handshake():
    # a client may send its first message in the same packet as the handshake
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    msg = json.dumps({"type": "config.update", "payload": {"prompt": "fast starter"}}).encode()
    mkey = b"\1\2\3\4"
    frame = bytes([0x81, 0x80 | len(msg)]) + mkey + bytes(b ^ mkey[i % 4] for i, b in enumerate(msg))
    s.sendall(("GET /ws/session/ws12 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode() + frame)
    s.close()
    deadline = time.time() + 5
    while time.time() < deadline:
        _, _, cfg = srv.get("/api/session/ws12/config")
        if cfg["prompt"] == "fast starter":
            return
        time.sleep(0.1)
    raise H.Failure("message sent with the handshake was lost")


def test_fragments_and_ping():
    w, _ = connect("ws15")
    msg = json.dumps({"type": "config.update", "payload": {"prompt": "fragmented hello"}}).encode()
    w.send_frame(w.OP_TEXT, msg[:10], fin=False)
    w.send_frame(w.OP_PING, b"are you there")  # control frames may come between fragments
    w.send_frame(w.OP_CONT, msg[10:30], fin=False)
    w.send_frame(w.OP_CONT, msg[30:], fin=True)
    fin, op, payload = w.recv_frame()
    while op != w.OP_PONG:
        fin, op, payload = w.recv_frame()
    check(payload == b"are you there", "pong payload %r" % payload)
    w.wait_type("config.current", pred=lambda p: p["prompt"] == "fragmented hello")
    w.close()


def test_slow_reader_closed_others_served():
    slow = srv.ws("ws13")
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    fast, _ = connect("ws13")
    fast.send_json({"type": "config.update", "payload": {"output_width": 640, "output_height": 480}})
    fast.wait_type("config.current", pred=lambda p: p["output_width"] == 640)
    # stream until the server gives up on the slow client (which never reads)
    got = 0
    t0 = time.time()
    fid = 100
    closed = False
    while time.time() - t0 < 30:
        fid += 1
        fast.send_frame_jpeg(fid, 0, CAM)
        try:
            fast.wait_binary(2)
            got += 1
        except H.Failure:
            pass
        if fid % 5 == 0:
            _, _, stats = srv.get("/api/session/ws13/stats")
            if stats["clients"] == 1:
                closed = True
                break
    check(closed, "slow client not closed within 30 s")
    check(stats["dropped_send"] > 0, "no send drops counted for the slow client: %r" % stats)
    # the fast client kept being served all along, and still is
    check(got >= 5, "fast client got only %d frames while a slow one stalled" % got)
    fast.send_frame_jpeg(99999, 0, CAM)
    fast.wait_for(lambda op, d: op == fast.OP_BIN and d[4:8] == (99999).to_bytes(4, "big"), 10, "a frame")
    # the slow client finds a close frame with 4001 after its backlog
    slow.sock.settimeout(5)
    code = None
    try:
        while True:
            slow.recv(5)
    except H.WsClosed as e:
        code = e.code
    except (OSError, EOFError, H.Failure):
        pass
    check(code in (4001, None), "slow client closed with %r" % code)
    slow.sock.close()
    fast.close()


def test_output_paced_at_target_fps():
    w, _ = connect("ws14")
    w.send_json({"type": "config.update", "payload": {"target_fps": 5}})
    w.wait_type("config.current", pred=lambda p: p["target_fps"] == 5)
    # offer 25 frames/s for 2 s; at most 5 frames/s may come out (plus one in flight)
    t0 = time.time()
    fid = 0
    while time.time() - t0 < 2.0:
        fid += 1
        w.send_frame_jpeg(fid, 0, CAM_SMALL)
        time.sleep(0.04)
    _, _, s1 = srv.get("/api/session/ws14/stats")
    elapsed = time.time() - t0
    check(s1["frames_out"] <= 5 * elapsed + 2, "%d frames out in %.1f s at target_fps 5" % (s1["frames_out"], elapsed))
    check(s1["frames_out"] >= 2, "pacing stopped the output (%d frames)" % s1["frames_out"])
    check(s1["dropped_inbox"] > 0, "frames beyond the pace were not dropped in the inbox")
    w.close()


def test_idle_client_closed():
    idle = H.Server(config={"ws_idle_timeout_s": 2})
    try:
        w = idle.ws("idle")
        w.recv_json()
        # a half-open client: reads nothing, answers no ping
        w.sock.settimeout(8)
        code = None
        start = time.time()
        try:
            while True:
                fin, op, payload = w.recv_frame()
                if op == w.OP_CLOSE:
                    code = struct.unpack("!H", payload[:2])[0]
                    break
        except (OSError, EOFError):
            pass
        check(code == 4002, "idle client closed with %r" % code)
        check(time.time() - start < 7, "idle close took too long")
        w.sock.close()
        # a client that answers pings stays
        w2 = idle.ws("idle")
        w2.recv_json()
        t0 = time.time()
        while time.time() - t0 < 4:
            w2.recv(3)  # answers pings inside recv
        w2.send_frame_jpeg(1, 0, CAM)
        w2.wait_binary()
        w2.close()
    finally:
        idle.stop()


H.run_then_stop(srv, [test_connect_gets_config, test_binary_frame_roundtrip, test_json_frame_roundtrip, test_shared_session,
                  test_presets, test_stats_pushed, test_bad_messages_change_nothing, test_bad_frames,
                  test_oversized_message_closed_1009, test_protocol_violation_closed, test_upgrade_refusals,
                  test_bytes_right_after_handshake, test_fragments_and_ping, test_slow_reader_closed_others_served, test_output_paced_at_target_fps,
                  test_idle_client_closed])
