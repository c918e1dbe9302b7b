"""herutest: helpers for herud integration tests (Python 3 standard library only).

Starts the real herud on a free loopback port and talks to it with real clients:
http.client for REST and a small masking WebSocket client over a plain socket.
"""
import base64
import hashlib
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

SKIP = 77
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

TOP_SRCDIR = os.environ.get("top_srcdir") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOP_BUILDDIR = os.environ.get("top_builddir") or os.getcwd()
PLUGIN_DIR = os.environ.get("HERU_PLUGIN_DIR") or os.path.join(TOP_BUILDDIR, "plugins", "dev")
WEB_ROOT = os.environ.get("HERU_WEB_ROOT") or os.path.join(TOP_SRCDIR, "web")
FIXTURES = os.path.join(TOP_SRCDIR, "tests", "fixtures", "server")


def fixture(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


def need_mock():
    """Exit 77 (skip) when mock.so is not built."""
    if not os.path.exists(os.path.join(PLUGIN_DIR, "mock.so")):
        print("SKIP: mock.so not found in %s" % PLUGIN_DIR)
        sys.exit(SKIP)


class Failure(AssertionError):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


# Limits small enough that tests of timeouts and slow readers finish quickly.
TEST_CONFIG = {
    "http_timeout_s": 3,
    "ws_idle_timeout_s": 30,
    "slow_client_close_s": 2,
    "send_queue_bytes": 65536,
    "send_queue_frames": 2,
    "max_ws_message_bytes": 2 * 1024 * 1024,
    "max_header_bytes": 8192,
    "max_body_bytes": 65536,
    "session_defaults": {"output_width": 128, "output_height": 96, "target_fps": 60},
}


class Server:
    """A herud process on 127.0.0.1:<free port>."""

    def __init__(self, config=None, args=(), plugin_dir=None):
        herud = os.path.join(TOP_BUILDDIR, "herud")
        if not os.path.exists(herud):
            print("SKIP: %s not built" % herud)
            sys.exit(SKIP)
        self.tmp = tempfile.TemporaryDirectory(prefix="herutest-")
        cfg = dict(TEST_CONFIG)
        cfg.update(config or {})
        self.config_path = os.path.join(self.tmp.name, "heru.json")
        with open(self.config_path, "w") as f:
            json.dump(cfg, f)
        cmd = [herud, "--listen", "127.0.0.1:0", "--config", self.config_path,
               "--plugin-dir", plugin_dir or PLUGIN_DIR, "--web-root", WEB_ROOT] + list(args)
        self.lines = []
        self.cv = threading.Condition()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.port = None
        deadline = time.time() + 20
        with self.cv:
            while self.port is None:
                for line in self.lines:
                    if "listening on http://127.0.0.1:" in line:
                        self.port = int(line.rsplit(":", 1)[1].split()[0])
                if self.port is None:
                    if self.proc.poll() is not None or time.time() > deadline:
                        raise Failure("herud did not start:\n" + "".join(self.lines))
                    self.cv.wait(0.2)

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace")
            sys.stderr.write("  herud| " + line)
            with self.cv:
                self.lines.append(line)
                self.cv.notify_all()

    def log_text(self):
        with self.cv:
            return "".join(self.lines)

    def wait_log(self, needle, timeout=10):
        deadline = time.time() + timeout
        with self.cv:
            while not any(needle in l for l in self.lines):
                if time.time() > deadline:
                    raise Failure("log line %r never came" % needle)
                self.cv.wait(0.2)

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGINT, timeout=20):
        """Stop with SIGINT and check a clean exit (sanitizers report nothing)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Failure("herud did not stop within %d s of signal %d" % (timeout, sig))
        self.reader.join(5)
        text = self.log_text()
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer"):
            check(bad not in text, "sanitizer report in herud output (%s)" % bad)
        check(rc == 0, "herud exited with %d" % rc)
        self.tmp.cleanup()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    # ---- HTTP ----
    def request(self, method, path, body=None, headers=None, timeout=10):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            ctype = r.getheader("Content-Type", "")
            parsed = None
            if ctype.startswith("application/json"):
                parsed = json.loads(data)
            return r.status, dict(r.getheaders()), parsed if parsed is not None else data
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def put(self, path, body, **kw):
        return self.request("PUT", path, body=body, **kw)

    def ws(self, session="main", **kw):
        return WebSocket(self.port, "/ws/session/" + session, **kw)


class WsClosed(Exception):
    def __init__(self, code, reason):
        super().__init__("closed %s %r" % (code, reason))
        self.code = code
        self.reason = reason


class WebSocket:
    """A minimal RFC 6455 client: masks what it sends, answers pings."""

    OP_CONT, OP_TEXT, OP_BIN, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10

    def __init__(self, port, path, headers=None, timeout=10, expect_status=101):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1:%d" % port, "Upgrade: websocket",
                 "Connection: keep-alive, Upgrade", "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise Failure("connection closed during the WebSocket handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status_line = head.split(b"\r\n")[0].decode()
        self.status = int(status_line.split()[1])
        self.headers = {}
        for l in head.split(b"\r\n")[1:]:
            k, _, v = l.decode().partition(":")
            self.headers[k.strip().lower()] = v.strip()
        if self.status != expect_status:
            raise Failure("WebSocket upgrade answered %s, expected %s" % (status_line, expect_status))
        if self.status == 101:
            want = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
            check(self.headers.get("sec-websocket-accept") == want, "bad Sec-WebSocket-Accept")
        self.closed = None

    def send_frame(self, opcode, payload, fin=True, mask=True):
        if isinstance(payload, str):
            payload = payload.encode()
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload)
        if n < 126:
            hdr = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
        else:
            hdr = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
        if mask:
            mkey = os.urandom(4)
            masked = bytes(b ^ mkey[i % 4] for i, b in enumerate(payload)) if n < 4096 else _xor(payload, mkey)
            self.sock.sendall(hdr + mkey + masked)
        else:
            self.sock.sendall(hdr + payload)

    def send_text(self, text):
        self.send_frame(self.OP_TEXT, text)

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def send_binary(self, data):
        self.send_frame(self.OP_BIN, data)

    def send_frame_jpeg(self, frame_id, ts, jpeg):
        self.send_binary(b"HRF1" + struct.pack(">Id", frame_id, ts) + jpeg)

    def _read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed by the server")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self):
        b0, b1 = self._read_exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read_exact(8))[0]
        check(not (b1 & 0x80), "server frames must not be masked")
        return b0 & 0x80, b0 & 0x0F, self._read_exact(n)

    def recv(self, timeout=10):
        """Next data message as (opcode, bytes); raises WsClosed on a close frame."""
        self.sock.settimeout(timeout)
        data, op0 = b"", None
        while True:
            fin, op, payload = self.recv_frame()
            if op == self.OP_PING:
                self.send_frame(self.OP_PONG, payload)
                continue
            if op == self.OP_PONG:
                continue
            if op == self.OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                self.closed = (code, payload[2:].decode("utf-8", "replace"))
                try:
                    self.send_frame(self.OP_CLOSE, payload[:2])
                except OSError:
                    pass
                raise WsClosed(code, self.closed[1])
            if op != self.OP_CONT:
                op0 = op
            data += payload
            if fin:
                return op0, data

    def recv_json(self, timeout=10):
        op, data = self.recv(timeout)
        check(op == self.OP_TEXT, "expected a text message, got opcode %d" % op)
        return json.loads(data)

    def wait_for(self, pred, timeout=10, what="message"):
        """Read messages until pred(op, data) is true; returns that (op, data)."""
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise Failure("timed out waiting for " + what)
            try:
                op, data = self.recv(left)
            except socket.timeout:
                raise Failure("timed out waiting for " + what)
            if pred(op, data):
                return op, data

    def wait_type(self, mtype, timeout=10, pred=None):
        def match(op, data):
            if op != self.OP_TEXT:
                return False
            m = json.loads(data)
            return m.get("type") == mtype and (pred is None or pred(m["payload"]))
        op, data = self.wait_for(match, timeout, "a %s message" % mtype)
        return json.loads(data)["payload"]

    def wait_binary(self, timeout=10):
        op, data = self.wait_for(lambda op, d: op == self.OP_BIN, timeout, "a binary frame")
        check(data[:4] == b"HRF1", "binary answer lacks the HRF1 magic")
        fid, ts = struct.unpack(">Id", data[4:16])
        return fid, ts, data[16:]

    def wait_close(self, timeout=10):
        deadline = time.time() + timeout
        while True:
            try:
                self.recv(max(0.1, deadline - time.time()))
            except WsClosed as e:
                return e.code, e.reason
            except (socket.timeout, TimeoutError):
                raise Failure("timed out waiting for a close frame")
            if time.time() > deadline:
                raise Failure("timed out waiting for a close frame")

    def close(self, code=1000):
        try:
            self.send_frame(self.OP_CLOSE, struct.pack("!H", code))
            self.sock.settimeout(2)
            while True:
                try:
                    self.recv(2)
                except WsClosed:
                    break
        except (OSError, EOFError, Failure):
            pass
        self.sock.close()


def _xor(data, key):
    n = len(data)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def jpeg_size(data):
    """(width, height) from a JPEG's SOF marker."""
    i = 2
    while i + 9 < len(data):
        check(data[i] == 0xFF, "corrupt JPEG marker stream")
        marker = data[i + 1]
        seglen = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + seglen
    raise Failure("no SOF marker in JPEG")


def with_huge_dimensions(jpeg, w=60000, h=60000):
    """The same JPEG with its SOF claiming W x H (a tiny file that decodes to gigabytes)."""
    data = bytearray(jpeg)
    i = 2
    while i + 9 < len(data):
        marker = data[i + 1]
        seglen = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            data[i + 5:i + 9] = struct.pack(">HH", h, w)
            return bytes(data)
        i += 2 + seglen
    raise Failure("no SOF marker in JPEG")


class Streamer:
    """Sends JPEG every 40 ms (frame ids 1, 2, ...) on its own WebSocket to SESSION until
    finish(); on_binary(data) and on_json(message) see every answer, a subclass records what
    it needs. closed: (code, reason) when the server closed, ("exception", repr) on an error."""

    def __init__(self, srv, session, jpeg):
        self.w = srv.ws(session)
        self.w.recv_json()
        self.jpeg = jpeg
        self.closed = None
        self.stop = False
        self.sent = 0
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def on_binary(self, data):
        pass

    def on_json(self, m):
        pass

    def run(self):
        next_send = 0
        try:
            while not self.stop:
                now = time.time()
                if now >= next_send:
                    self.sent += 1
                    self.w.send_frame_jpeg(self.sent, now * 1000, self.jpeg)
                    next_send = now + 0.04
                try:
                    op, data = self.w.recv(0.02)
                except (TimeoutError, OSError) as e:
                    if isinstance(e, TimeoutError) or "timed out" in str(e):
                        continue
                    raise
                if op == self.w.OP_BIN:
                    self.on_binary(data)
                else:
                    self.on_json(json.loads(data))
        except WsClosed as e:
            self.closed = (e.code, e.reason)
        except Exception as e:  # noqa: BLE001
            self.closed = ("exception", repr(e))

    def finish(self):
        self.stop = True
        self.t.join(5)
        self.w.close()


def wait_config(srv, session, pred, timeout):
    """Poll GET /api/session/SESSION/config every 50 ms until pred(config) holds and return
    that config; Failure (naming the last runtime_status) after TIMEOUT seconds."""
    deadline = time.time() + timeout
    cfg = None
    while time.time() < deadline:
        _, _, cfg = srv.get("/api/session/%s/config" % session)
        if pred(cfg):
            return cfg
        time.sleep(0.05)
    raise Failure("runtime_status never matched; last: %r" % (cfg or {}).get("runtime_status"))


def run(tests):
    """Run test functions in order; print PASS/FAIL lines; exit 0/1."""
    failed = 0
    for t in tests:
        start = time.time()
        try:
            t()
            print("PASS: %s (%.1f s)" % (t.__name__, time.time() - start))
        except Exception as e:  # noqa: BLE001 (report and continue)
            failed += 1
            import traceback
            traceback.print_exc()
            print("FAIL: %s: %s" % (t.__name__, e))
        sys.stdout.flush()
    sys.exit(1 if failed else 0)


def run_then_stop(srv, tests):
    """run(tests) against the shared server SRV, then stop it: a server that does not shut
    down cleanly fails the script (exit 1)."""
    try:
        run(tests)
    finally:
        if srv.alive():
            try:
                srv.stop()
            except Exception as e:  # noqa: BLE001
                print("FAIL: clean shutdown: %s" % e)
                sys.exit(1)
