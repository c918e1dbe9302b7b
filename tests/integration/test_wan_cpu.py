#!/usr/bin/env python3
"""The Wan backend end to end on the CPU: herud with HERU_WAN_DEVICE=cpu and a tiny weights
folder (DiT random weights from `heru-wan random-weights`, the tiny VAE / umT5 / tokenizer
fixtures of the engine tests, heru-model.json at 32x32), a session switched to wan-1.3b,
camera frames streamed over the WebSocket, generated frames back with core-runtime-active."""
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import herutest as H  # noqa: E402
from herutest import check  # noqa: E402

WAN_FIX = os.path.join(H.TOP_SRCDIR, "tests", "fixtures", "wan")
HERU_WAN = os.path.join(H.TOP_BUILDDIR, "heru-wan")
CAM = H.fixture("camera_160x120.jpg")

for need in (os.path.join(H.PLUGIN_DIR, "wan13b_cuda.so"), os.path.join(H.PLUGIN_DIR, "mock.so"),
             HERU_WAN):
    if not os.path.exists(need):
        print("SKIP: %s not built" % need)
        sys.exit(H.SKIP)


def make_weights(root):
    """The StreamDiffusionV2 layout with tiny files; heru-model.json names the fixtures."""
    ckpt = os.path.join(root, "ckpts", "wan_causal_dmd_v2v")
    os.makedirs(ckpt)
    dit_cfg = os.path.join(root, "dit.json")
    with open(dit_cfg, "w") as f:
        json.dump({"dim": 64, "ffn_dim": 96, "num_heads": 2, "num_layers": 2, "in_dim": 16,
                   "out_dim": 16, "text_len": 512, "text_dim": 64, "freq_dim": 32,
                   "eps": 1e-6}, f)
    subprocess.run([HERU_WAN, "random-weights", "--model", dit_cfg, "--out",
                    os.path.join(ckpt, "model.pt"), "--seed", "3", "--dtype", "f32",
                    "--prefix", "model.", "--threads", "1"], check=True)
    # wan-14b reads its own checkpoint folder; the tiny config stands in for both sizes
    os.makedirs(ckpt + "_14b")
    with open(os.path.join(ckpt, "model.pt"), "rb") as src, \
            open(os.path.join(ckpt + "_14b", "model.pt"), "wb") as dst:
        dst.write(src.read())
    with open(os.path.join(root, "heru-model.json"), "w") as f:
        json.dump({"dit_config": "dit.json",
                   "vae_weights": os.path.join(WAN_FIX, "vae", "tiny_vae.safetensors"),
                   "vae_config": os.path.join(WAN_FIX, "vae", "tiny_config.json"),
                   "taehv_weights": os.path.join(WAN_FIX, "vae", "tiny_taehv.safetensors"),
                   "t5_weights": os.path.join(WAN_FIX, "t5", "t5_tiny.safetensors"),
                   "t5_config": os.path.join(WAN_FIX, "t5", "t5_tiny_config.json"),
                   "tokenizer": os.path.join(WAN_FIX, "t5", "bytefb.model"),
                   "width": 32, "height": 32}, f)


class Streamer(H.Streamer):
    """Records answers (time, jpeg), every runtime_status mode change and every error."""

    def __init__(self, srv, session):
        self.answers = []
        self.modes = []
        self.errors = []
        super().__init__(srv, session, CAM)

    def on_binary(self, data):
        self.answers.append((time.time(), data))

    def on_json(self, m):
        if m["type"] == "config.current":
            rs = m["payload"]["runtime_status"]
            if not self.modes or self.modes[-1] != rs["mode"]:
                self.modes.append(rs["mode"])
        elif m["type"] == "error":
            self.errors.append(m["payload"])


def wait_status(srv, session, pred, timeout=60):
    """wait_config with PRED on the runtime_status."""
    return H.wait_config(srv, session, lambda cfg: pred(cfg["runtime_status"]), timeout)


def test_wan_cpu_streams_generated_frames():
    tmp = tempfile.TemporaryDirectory(prefix="herutest-wan-")
    make_weights(tmp.name)
    os.environ["HERU_WAN_DEVICE"] = "cpu"
    srv = H.Server()
    try:
        st = Streamer(srv, "wan")
        time.sleep(0.5)
        n_mock = len(st.answers)
        check(n_mock > 3, "no mock frames before the switch (%d)" % n_mock)
        code, _, body = srv.put("/api/session/wan/config", {
            "backend": "auto", "model_variant": "wan-1.3b", "weights_path": tmp.name,
            "inference_steps": 2, "vae": "wan", "prompt": "a red fox in the snow"})
        check(code == 200, "config PUT refused: %r" % (body,))
        wait_status(srv, "wan", lambda rs: rs["backend"] == "wan13b_cuda" and rs["error"] is None)
        t_switch = time.time()
        cfg = wait_status(srv, "wan", lambda rs: rs["mode"] == "core-runtime-active", timeout=60)
        check(cfg["runtime_status"]["backend"] == "wan13b_cuda", "backend %r" % cfg["runtime_status"])
        # generated frames keep coming while active
        n0 = len(st.answers)
        time.sleep(1.5)
        new = [a for a in st.answers if a[0] > t_switch]
        check(len(st.answers) - n0 >= 4, "fewer than 4 frames in 1.5 s of streaming (%d)" %
              (len(st.answers) - n0))
        check(len(new) >= 9, "too few generated frames (%d)" % len(new))
        # the answers are JPEGs at the session's output size (the host scales 32x32 up)
        last = new[-1][1]
        check(last[:4] == b"HRF1", "binary answer without the HRF1 header")
        fid = int.from_bytes(last[4:8], "big")
        check(1 <= fid <= st.sent, "answer id %d was never sent" % fid)
        w, h = H.jpeg_size(last[16:])
        check((w, h) == (128, 96), "generated frame is %dx%d, not the output size" % (w, h))
        # the serving instance goes warm-up -> active once its stream emits steadily
        wan_modes = st.modes[st.modes.index("core-imported"):]
        check(wan_modes[:2] == ["core-imported", "core-warmup"] and
              wan_modes.index("core-runtime-active") > 1,
              "mode progression %r is not imported -> warmup -> active" % st.modes)
        check(st.closed is None, "client closed: %r" % (st.closed,))
        # a prompt change restarts the stream: warm-up again, then active again
        srv.put("/api/session/wan/config", {"prompt": "an owl at night"})
        wait_status(srv, "wan", lambda rs: rs["mode"] == "core-warmup", timeout=20)
        wait_status(srv, "wan", lambda rs: rs["mode"] == "core-runtime-active", timeout=60)
        _, _, stats = srv.get("/api/session/wan/stats")
        check(isinstance(stats, dict), "stats: %r" % (stats,))
        st.finish()
    finally:
        srv.stop()
        os.environ.pop("HERU_WAN_DEVICE", None)
        tmp.cleanup()


def test_wan14b_dist_reports_distributed_modes():
    tmp = tempfile.TemporaryDirectory(prefix="herutest-wan-")
    make_weights(tmp.name)
    os.environ["HERU_WAN_DEVICE"] = "cpu"
    srv = H.Server()
    try:
        st = Streamer(srv, "dist")
        srv.put("/api/session/dist/config", {
            "backend": "auto", "model_variant": "wan-14b", "inference_topology": "distributed",
            "distributed_world_size": 1, "weights_path": tmp.name, "inference_steps": 1,
            "vae": "taehv"})
        wait_status(srv, "dist", lambda rs: rs["backend"] == "wan14b_dist" and rs["error"] is None)
        wait_status(srv, "dist", lambda rs: rs["mode"] == "core-distributed-active", timeout=60)
        time.sleep(0.5)
        wan_modes = st.modes[st.modes.index("core-imported"):]
        check("core-distributed-warmup" in wan_modes and
              wan_modes.index("core-distributed-warmup") < wan_modes.index("core-distributed-active"),
              "mode progression %r" % st.modes)
        # world size 2 is refused with one sentence; the session keeps serving
        srv.put("/api/session/dist/config", {"distributed_world_size": 2})
        cfg = wait_status(srv, "dist", lambda rs: rs["error"] is not None and rs["loading"] is None,
                          timeout=20)
        check("world size" in cfg["runtime_status"]["error"] or "GPUs" in cfg["runtime_status"]["error"],
              "error %r" % cfg["runtime_status"]["error"])
        check(st.closed is None, "client closed: %r" % (st.closed,))
        st.finish()
    finally:
        srv.stop()
        os.environ.pop("HERU_WAN_DEVICE", None)
        tmp.cleanup()


def test_missing_vae_names_the_path():
    tmp = tempfile.TemporaryDirectory(prefix="herutest-wan-")
    os.makedirs(os.path.join(tmp.name, "ckpts", "wan_causal_dmd_v2v"))
    open(os.path.join(tmp.name, "ckpts", "wan_causal_dmd_v2v", "model.pt"), "w").close()
    os.environ["HERU_WAN_DEVICE"] = "cpu"
    srv = H.Server()
    try:
        srv.put("/api/session/miss/config", {"backend": "auto", "weights_path": tmp.name})
        cfg = wait_status(srv, "miss", lambda rs: rs["error"] is not None and rs["loading"] is None,
                          timeout=20)
        err = cfg["runtime_status"]["error"]
        check("wan_models/Wan2.1-T2V-1.3B/Wan2.1_VAE.pth" in err and "huggingface-cli" in err,
              "error %r does not name the VAE path and how to get it" % err)
        check(cfg["runtime_status"]["backend"] == "mock", "not back on mock: %r" % cfg["runtime_status"])
    finally:
        srv.stop()
        os.environ.pop("HERU_WAN_DEVICE", None)
        tmp.cleanup()


H.run([test_wan_cpu_streams_generated_frames, test_wan14b_dist_reports_distributed_modes,
       test_missing_vae_names_the_path])
