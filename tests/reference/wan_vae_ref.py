#!/usr/bin/env python3
"""PyTorch reference for the Wan2.1 causal 3D VAE and the TAEHV decoder, written from
../shared/design/wan-inference-spec.md (§3.3, §3.5, §5) to produce golden tensors for the C
reference (tests/check_vae.c, tests/check_taehv.c).

Usage: wan_vae_ref.py OUTDIR  -- writes tiny_config.json, tiny_vae.safetensors,
tiny_taehv.safetensors and tiny_golden.safetensors (random weights, seed 0).

The streaming calls run over 4 chunks so every cache path is used: encode 5, 4, 4, 4 frames
(2+1+1+1 latents); decode 2, 1, 1, 1 latents (5+4+4+4 frames); TAEHV 2, 1, 1, 1 latents in the
StreamDiffusionV2 context mode and in the incremental MemBlock mode (4+4+4+4 frames each).
Everything is fp32 on the CPU; needs torch >= 1.11 (for nearest-exact) and numpy.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
        0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
       3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]


def save_safetensors(path, tensors):
    """Minimal safetensors writer (f32 only): 8-byte LE header size, JSON header, raw data."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name].detach().cpu().numpy().astype('<f4'))
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ---------------------------------------------------------------- Wan VAE (spec §5)

class Weights:
    """Random weights keyed by the upstream state-dict names (spec §3.3)."""

    def __init__(self, gen):
        self.gen = gen
        self.t = {}

    def conv(self, name, cout, cin, *k):
        fan = cin * math.prod(k)
        w = (torch.rand((cout, cin) + tuple(k), generator=self.gen) * 2 - 1) * math.sqrt(3.0 / fan)
        self.t[name + ".weight"] = w
        self.t[name + ".bias"] = torch.randn(cout, generator=self.gen) * 0.05
        return name

    def gamma(self, name, c, ndim):
        self.t[name] = 1.0 + 0.1 * torch.randn((c,) + (1,) * (ndim - 1), generator=self.gen)
        return name


def rms(x, g):
    # L2-normalize over channels (dim 1), * sqrt(C) * gamma; F.normalize eps is 1e-12
    c = x.shape[1]
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12) * math.sqrt(c) * g


class Cache:
    """Per-conv feature caches of one coder plus the resample first-call states."""

    def __init__(self):
        self.slots = {}


def causal_conv(W, name, x, cache, key, sp=1):
    """k_t=3 causal conv: [cached input frames (<=2), x] with zero frames filling up to 2 in
    front; the cache keeps the last 2 frames of [old cache, x]. SP: spatial padding."""
    w, b = W[name + ".weight"], W[name + ".bias"]
    old = cache.slots.get(key)
    front = old if old is not None else x[:, :, :0]
    xin = torch.cat([front, x], 2)
    cache.slots[key] = xin[:, :, -2:].clone()
    xin = F.pad(xin, (sp, sp, sp, sp, 2 - front.shape[2], 0))
    return F.conv3d(xin, w, b)


def conv1x1x1(W, name, x):
    return F.conv3d(x, W[name + ".weight"], W[name + ".bias"])


def per_frame(x, fn):
    b, c, t, h, w = x.shape
    y = fn(x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w))
    return y.reshape(b, t, y.shape[1], y.shape[2], y.shape[3]).permute(0, 2, 1, 3, 4)


def resblock(W, p, cin, cout, x, cache):
    h = conv1x1x1(W, p + ".shortcut", x) if cin != cout else x
    y = F.silu(rms(x, W[p + ".residual.0.gamma"]))
    y = causal_conv(W, p + ".residual.2", y, cache, p + ".a")
    y = F.silu(rms(y, W[p + ".residual.3.gamma"]))
    y = causal_conv(W, p + ".residual.6", y, cache, p + ".b")
    return y + h


def attention(W, p, x):
    def f(z):  # z [N, C, h, w]
        n, c, h, w = z.shape
        zn = rms(z, W[p + ".norm.gamma"])
        qkv = F.conv2d(zn, W[p + ".to_qkv.weight"], W[p + ".to_qkv.bias"])
        qkv = qkv.reshape(n, 3 * c, h * w).transpose(1, 2)  # [N, hw, 3C]
        q, k, v = qkv[..., :c], qkv[..., c:2 * c], qkv[..., 2 * c:]
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(c), dim=-1) @ v
        a = a.transpose(1, 2).reshape(n, c, h, w)
        return z + F.conv2d(a, W[p + ".proj.weight"], W[p + ".proj.bias"])
    return per_frame(x, f)


def downsample(W, p, mode, x, cache):
    w, b = W[p + ".resample.1.weight"], W[p + ".resample.1.bias"]
    x = per_frame(x, lambda z: F.conv2d(F.pad(z, (0, 1, 0, 1)), w, b, stride=2))
    if mode != "downsample3d":
        return x
    key = p + ".time"
    if key not in cache.slots:  # first call: remember, no time_conv
        cache.slots[key] = x[:, :, -1:].clone()
        return x
    xin = torch.cat([cache.slots[key], x], 2)
    cache.slots[key] = x[:, :, -1:].clone()
    return F.conv3d(xin, W[p + ".time_conv.weight"], W[p + ".time_conv.bias"], stride=(2, 1, 1))


class WanVAE:
    def __init__(self, cfg, gen):
        self.cfg = cfg
        W = Weights(gen)
        d, z, mult, nrb = cfg["dim"], cfg["z_dim"], cfg["dim_mult"], cfg["num_res_blocks"]
        tds, attn = cfg["temperal_downsample"], cfg["attn_scales"]
        n = len(mult)
        # encoder
        enc = []
        dims = [d] + [d * m for m in mult]
        W.conv("encoder.conv1", dims[0], 3, 3, 3, 3)
        idx, scale = 0, 1.0
        for i in range(n):
            cin, cout = dims[i], dims[i + 1]
            for _ in range(nrb):
                enc.append(self._rb(W, "encoder.downsamples.%d" % idx, cin, cout)); idx += 1
                if scale in attn:
                    enc.append(self._attn(W, "encoder.downsamples.%d" % idx, cout)); idx += 1
                cin = cout
            if i != n - 1:
                mode = "downsample3d" if tds[i] else "downsample2d"
                enc.append(self._rs(W, "encoder.downsamples.%d" % idx, cout, mode)); idx += 1
                scale /= 2.0
        enc += self._middle(W, "encoder.middle", cout)
        W.gamma("encoder.head.0.gamma", cout, 4)
        W.conv("encoder.head.2", 2 * z, cout, 3, 3, 3)
        self.enc, self.enc_c = enc, cout
        W.conv("conv1", 2 * z, 2 * z, 1, 1, 1)
        W.conv("conv2", z, z, 1, 1, 1)
        # decoder
        dec = []
        dims = [d * mult[-1]] + [d * m for m in mult[::-1]]
        W.conv("decoder.conv1", dims[0], z, 3, 3, 3)
        dec += self._middle(W, "decoder.middle", dims[0])
        idx, scale = 0, 1.0 / 2 ** (n - 2)
        for i in range(n):
            cin, cout = dims[i], dims[i + 1]
            if i >= 1:
                cin //= 2
            for _ in range(nrb + 1):
                dec.append(self._rb(W, "decoder.upsamples.%d" % idx, cin, cout)); idx += 1
                if scale in attn:
                    dec.append(self._attn(W, "decoder.upsamples.%d" % idx, cout)); idx += 1
                cin = cout
            if i != n - 1:
                mode = "upsample3d" if tds[::-1][i] else "upsample2d"
                dec.append(self._rs(W, "decoder.upsamples.%d" % idx, cout, mode)); idx += 1
                scale *= 2.0
        W.gamma("decoder.head.0.gamma", cout, 4)
        W.conv("decoder.head.2", 3, cout, 3, 3, 3)
        self.dec, self.dec_c = dec, cout
        self.W = W.t
        self.enc_cache, self.dec_cache = None, None

    @staticmethod
    def _rb(W, p, cin, cout):
        W.gamma(p + ".residual.0.gamma", cin, 4)
        W.conv(p + ".residual.2", cout, cin, 3, 3, 3)
        W.gamma(p + ".residual.3.gamma", cout, 4)
        W.conv(p + ".residual.6", cout, cout, 3, 3, 3)
        if cin != cout:
            W.conv(p + ".shortcut", cout, cin, 1, 1, 1)
        return ("rb", p, cin, cout)

    @staticmethod
    def _attn(W, p, c):
        W.gamma(p + ".norm.gamma", c, 3)
        W.conv(p + ".to_qkv", 3 * c, c, 1, 1)
        W.conv(p + ".proj", c, c, 1, 1)
        return ("attn", p)

    @staticmethod
    def _rs(W, p, c, mode):
        if mode.startswith("down"):
            W.conv(p + ".resample.1", c, c, 3, 3)
            if mode == "downsample3d":
                W.conv(p + ".time_conv", c, c, 3, 1, 1)
        else:
            W.conv(p + ".resample.1", c // 2, c, 3, 3)
            if mode == "upsample3d":
                W.conv(p + ".time_conv", 2 * c, c, 3, 1, 1)
        return (mode, p)

    def _middle(self, W, p, c):
        return [self._rb(W, p + ".0", c, c), self._attn(W, p + ".1", c), self._rb(W, p + ".2", c, c)]

    def _run(self, layers, first_conv, head, head_c, x, cache):
        W = self.W
        x = causal_conv(W, first_conv, x, cache, first_conv)
        for layer in layers:
            kind, p = layer[0], layer[1]
            if kind == "rb":
                x = resblock(W, p, layer[2], layer[3], x, cache)
            elif kind == "attn":
                x = attention(W, p, x)
            elif kind.startswith("down"):
                x = downsample(W, p, kind, x, cache)
            else:
                x = upsample(W, p, kind, x, cache)
        x = F.silu(rms(x, W[head + ".0.gamma"]))
        return causal_conv(W, head + ".2", x, cache, head)

    def stream_encode(self, frames):
        """frames [T,3,H,W] -> raw mu [F,z,H/8,W/8]."""
        x = frames.permute(1, 0, 2, 3).unsqueeze(0)
        outs = []
        if self.enc_cache is None:
            self.enc_cache = Cache()
            parts = [x[:, :, :1], x[:, :, 1:]] if x.shape[2] > 1 else [x]
        else:
            parts = [x[:, :, i:i + 4] for i in range(0, x.shape[2], 4)]
        for part in parts:
            outs.append(self._run(self.enc, "encoder.conv1", "encoder.head", self.enc_c, part,
                                  self.enc_cache))
        out = conv1x1x1(self.W, "conv1", torch.cat(outs, 2))
        z = self.cfg["z_dim"]
        return out[0, :z].permute(1, 0, 2, 3).contiguous()

    def stream_decode(self, lat):
        """latents [F,z,h,w] -> frames [T,3,8h,8w] in [-1,1]."""
        z = lat.permute(1, 0, 2, 3).unsqueeze(0)
        mean = torch.tensor(MEAN).view(1, 16, 1, 1, 1)
        std = torch.tensor(STD).view(1, 16, 1, 1, 1)
        x = conv1x1x1(self.W, "conv2", z * std + mean)
        if self.dec_cache is None:
            self.dec_cache = Cache()
            parts = [x[:, :, :1], x[:, :, 1:]] if x.shape[2] > 1 else [x]
        else:
            parts = [x[:, :, i:i + 1] for i in range(x.shape[2])]
        outs = [self._run(self.dec, "decoder.conv1", "decoder.head", self.dec_c, p, self.dec_cache)
                for p in parts]
        return torch.cat(outs, 2).clamp(-1, 1)[0].permute(1, 0, 2, 3).contiguous()


def upsample(W, p, mode, x, cache):
    if mode == "upsample3d":
        key = p + ".time"
        state = cache.slots.get(key + ".state")
        if state is None:  # 'Rep': no time upsampling on the first call
            cache.slots[key + ".state"] = "rep"
        else:
            if state == "rep":  # second call: zero front padding, then the cache is [0, x]
                cache.slots[key] = torch.zeros_like(x[:, :, :2])
                cache.slots[key + ".state"] = "run"
            c = x.shape[1]
            y = causal_conv(W, p + ".time_conv", x, cache, key, sp=0)  # [B, 2C, T, h, w]
            b_, _, t, h, w = y.shape
            # channels [0,C) -> frame 2t, [C,2C) -> frame 2t+1
            x = y.reshape(b_, 2, c, t, h, w).permute(0, 2, 3, 1, 4, 5).reshape(b_, c, 2 * t, h, w)
    w, b = W[p + ".resample.1.weight"], W[p + ".resample.1.bias"]
    return per_frame(x, lambda z: F.conv2d(F.interpolate(z, scale_factor=2.0, mode="nearest-exact"),
                                           w, b, padding=1))


# ---------------------------------------------------------------- TAEHV (spec §3.5, §5.7)

class TAEHV:
    def __init__(self, widths, gen, tgrow_extra_rows=True):
        n = widths
        self.t = {}
        self.layers = []
        kinds = ["clamp", ("conv", 16, n[0], True), "relu", ("mem", n[0]), ("mem", n[0]), ("mem", n[0]),
                 "up", ("tgrow", n[0], 1), ("conv", n[0], n[1], False), ("mem", n[1]), ("mem", n[1]),
                 ("mem", n[1]), "up", ("tgrow", n[1], 2), ("conv", n[1], n[2], False), ("mem", n[2]),
                 ("mem", n[2]), ("mem", n[2]), "up", ("tgrow", n[2], 2), ("conv", n[2], n[3], False),
                 "relu", ("conv", n[3], 3, True)]
        self.file = {}

        def conv(name, cout, cin, k, bias):
            w = (torch.rand(cout, cin, k, k, generator=gen) * 2 - 1) * math.sqrt(3.0 / (cin * k * k))
            self.t[name + ".weight"] = w
            if bias:
                self.t[name + ".bias"] = torch.randn(cout, generator=gen) * 0.05
        for i, k in enumerate(kinds):
            if isinstance(k, tuple) and k[0] == "conv":
                conv("decoder.%d" % i, k[2], k[1], 3, k[3])
            elif isinstance(k, tuple) and k[0] == "mem":
                c = k[1]
                conv("decoder.%d.conv.0" % i, c, 2 * c, 3, True)
                conv("decoder.%d.conv.2" % i, c, c, 3, True)
                conv("decoder.%d.conv.4" % i, c, c, 3, True)
            elif isinstance(k, tuple) and k[0] == "tgrow":
                conv("decoder.%d.conv" % i, k[1] * k[2], k[1], 1, False)
            self.layers.append(k)
        # center the random decoder's output in [0, 1] so few pixels clamp
        self.t["decoder.22.bias"] += 0.5
        self.file = dict(self.t)
        # The file's TGrow(stride 1) has extra leading rows: the loader keeps the last ones.
        if tgrow_extra_rows:
            w = self.t["decoder.7.conv.weight"]
            self.file["decoder.7.conv.weight"] = torch.cat([torch.randn_like(w), w], 0)
        self.mem = {}

    def _frame(self, li, x, out):
        """Runs layers li.. on one frame x [1,C,h,w], depth-first; appends finished frames."""
        while li < len(self.layers):
            k = self.layers[li]
            if k == "clamp":
                x = torch.tanh(x / 3) * 3
            elif k == "relu":
                x = F.relu(x)
            elif k == "up":
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            elif k[0] == "conv":
                x = F.conv2d(x, self.t["decoder.%d.weight" % li], self.t.get("decoder.%d.bias" % li),
                             padding=1)
            elif k[0] == "mem":
                past = self.mem.get(li, torch.zeros_like(x))
                self.mem[li] = x
                p = "decoder.%d.conv." % li
                y = F.relu(F.conv2d(torch.cat([x, past], 1), self.t[p + "0.weight"], self.t[p + "0.bias"], padding=1))
                y = F.relu(F.conv2d(y, self.t[p + "2.weight"], self.t[p + "2.bias"], padding=1))
                y = F.conv2d(y, self.t[p + "4.weight"], self.t[p + "4.bias"], padding=1)
                x = F.relu(y + x)
            elif k[0] == "tgrow":
                g = F.conv2d(x, self.t["decoder.%d.conv.weight" % li])
                c = k[1]
                for s in range(k[2]):
                    self._frame(li + 1, g[:, s * c:(s + 1) * c], out)
                return
            li += 1
        out.append(x[0])

    def decode(self, lat):
        """lat [F,16,h,w] -> [4F,3,8h,8w] in [0,1]-ish, memory continuing from self.mem."""
        out = []
        for t in range(lat.shape[0]):
            self._frame(0, lat[t:t + 1], out)
        return torch.stack(out, 0)


def to_pixels(v):
    return (v * 2 - 1).clamp(-1, 1)


def taehv_stream(model, chunks, incremental):
    outs, ctx, first = [], None, True
    model.mem = {}
    for lat in chunks:
        if incremental:
            v = model.decode(lat)
            if first:
                v = v[4:]
        else:
            win = lat if ctx is None else torch.cat([ctx, lat], 0)
            model.mem = {}
            v = model.decode(win)
            keep = 4 * (lat.shape[0] - 1) if first else 4 * lat.shape[0]
            v = v[v.shape[0] - keep:]
            ctx = win[-3:]
        first = False
        outs.append(to_pixels(v))
    return torch.cat(outs, 0)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    torch.set_grad_enabled(False)
    cfg = {"dim": 8, "z_dim": 16, "dim_mult": [1, 2, 2, 2], "num_res_blocks": 2,
           "attn_scales": [], "temperal_downsample": [False, True, True],
           "decoder_widths": [16, 8, 8, 8]}
    gen = torch.Generator().manual_seed(0)
    H, W = 32, 48
    vae = WanVAE(cfg, gen)
    tae = TAEHV(cfg["decoder_widths"], gen)
    frames = torch.rand(17, 3, H, W, generator=gen) * 2 - 1
    # smooth in time a little so the causal caches matter visibly
    for t in range(1, 17):
        frames[t] = 0.7 * frames[t - 1] + 0.3 * frames[t]
    lat_in = torch.randn(5, 16, H // 8, W // 8, generator=gen)

    enc = [vae.stream_encode(frames[:5])] + [vae.stream_encode(frames[5 + 4 * i:9 + 4 * i]) for i in range(3)]
    dec_chunks = [lat_in[:2], lat_in[2:3], lat_in[3:4], lat_in[4:5]]
    dec = [vae.stream_decode(c) for c in dec_chunks]
    ctx = taehv_stream(tae, dec_chunks, incremental=False)
    inc = taehv_stream(tae, dec_chunks, incremental=True)

    with open(os.path.join(out, "tiny_config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
        f.write("\n")
    save_safetensors(os.path.join(out, "tiny_vae.safetensors"), vae.W)
    save_safetensors(os.path.join(out, "tiny_taehv.safetensors"), tae.file)
    save_safetensors(os.path.join(out, "tiny_golden.safetensors"), {
        "frames": frames, "latents": torch.cat(enc, 0), "latents_in": lat_in,
        "decoded": torch.cat(dec, 0), "taehv_context": ctx, "taehv_incremental": inc})
    for name, v in [("latents", torch.cat(enc, 0)), ("decoded", torch.cat(dec, 0)),
                    ("taehv_context", ctx), ("taehv_incremental", inc)]:
        print("%-18s %-18s mean %+.4f std %.4f |x|>=0.999: %.3f" % (
            name, list(v.shape), v.mean().item(), v.std().item(), (v.abs() >= 0.999).float().mean().item()))


if __name__ == "__main__":
    main()
