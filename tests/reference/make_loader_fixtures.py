#!/usr/bin/python3
"""Makes the tensor-file fixtures of tests/check_wt_file.c (tests/fixtures/wan/loader/).

Run with Debian's /usr/bin/python3 (torch 1.13 CPU, numpy):
    /usr/bin/python3 tests/reference/make_loader_fixtures.py [OUTDIR]

A tiny Wan2.1 DiT state dict (tiny.json: dim 16, 2 heads, 2 layers, text_dim 16, freq_dim 16),
with the key names and shapes of wan-inference-spec.md section 3.1 written out here
independently of the C table, is saved as:
  - safetensors f32 and bf16 (written with numpy: 8-byte LE header length, JSON, raw data),
  - a sharded safetensors pair + model.safetensors.index.json,
  - torch.save .pt files: {"generator": sd with "model." prefix} in bf16 (with _metadata,
    as module.state_dict() has), a bare f32 sd, {"state_dict": sd} in fp16, a
    {"generator_ema": ..., "optimizer": {...}, "step": 3} checkpoint with non-tensor values, a
    bare sd with a non-contiguous and a storage-sharing view,
  - zip64 variants: one rewritten by Python's zipfile (force_zip64), one written by hand with
    zip64 extra fields in the central directory, a zip64 end record and locator,
  - broken files: truncated .pt, deflated .pt, a .pt missing a storage, a pickle calling
    os.system, a truncated safetensors.
expected.json holds, per dtype set and tensor, the float64 sum and a position-weighted sum
of the values as stored (after rounding to that dtype), which the C test recomputes.
"""
import collections
import io
import json
import os
import pickle
import struct
import sys
import zipfile
import zlib

import numpy as np
import torch

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "wan", "loader")
os.makedirs(OUT, exist_ok=True)

CFG = {"dim": 16, "ffn_dim": 32, "num_heads": 2, "num_layers": 2, "in_dim": 16, "out_dim": 16,
       "text_len": 512, "freq_dim": 16, "eps": 1e-06, "text_dim": 16}


def dit_shapes(c):
    D, F = c["dim"], c["ffn_dim"]
    s = collections.OrderedDict()
    s["patch_embedding.weight"] = (D, c["in_dim"], 1, 2, 2)
    s["patch_embedding.bias"] = (D,)
    s["text_embedding.0.weight"] = (D, c["text_dim"])
    s["text_embedding.0.bias"] = (D,)
    s["text_embedding.2.weight"] = (D, D)
    s["text_embedding.2.bias"] = (D,)
    s["time_embedding.0.weight"] = (D, c["freq_dim"])
    s["time_embedding.0.bias"] = (D,)
    s["time_embedding.2.weight"] = (D, D)
    s["time_embedding.2.bias"] = (D,)
    s["time_projection.1.weight"] = (6 * D, D)
    s["time_projection.1.bias"] = (6 * D,)
    for i in range(c["num_layers"]):
        b = "blocks.%d." % i
        s[b + "modulation"] = (1, 6, D)
        for attn in ("self_attn", "cross_attn"):
            for p in "qkvo":
                s[b + attn + "." + p + ".weight"] = (D, D)
                s[b + attn + "." + p + ".bias"] = (D,)
            s[b + attn + ".norm_q.weight"] = (D,)
            s[b + attn + ".norm_k.weight"] = (D,)
            if attn == "self_attn":
                s[b + "norm3.weight"] = (D,)
                s[b + "norm3.bias"] = (D,)
        s[b + "ffn.0.weight"] = (F, D)
        s[b + "ffn.0.bias"] = (F,)
        s[b + "ffn.2.weight"] = (D, F)
        s[b + "ffn.2.bias"] = (D,)
    s["head.modulation"] = (1, 2, D)
    s["head.head.weight"] = (4 * c["out_dim"], D)
    s["head.head.bias"] = (4 * c["out_dim"],)
    return s


g = torch.Generator().manual_seed(1234)
SD = collections.OrderedDict()
for name, shape in dit_shapes(CFG).items():
    SD[name] = torch.randn(shape, generator=g, dtype=torch.float32)


def checksums(t):
    v = t.detach().float().double().reshape(-1).numpy()
    w = (np.arange(v.size) % 7 + 1).astype(np.float64)
    return [float(v.sum()), float((v * w).sum())]


def cast(sd, dtype, prefix=""):
    out = collections.OrderedDict()
    for k, v in sd.items():
        out[prefix + k] = v.to(dtype).contiguous()
    return out


ST_DTYPES = {torch.float32: ("F32", np.float32), torch.float16: ("F16", np.float16)}


def save_safetensors(path, sd):
    header, blobs, off = {}, [], 0
    for k, v in sd.items():
        if v.dtype == torch.bfloat16:
            raw = v.view(torch.int16).numpy().astype("<i2").tobytes()
            dt = "BF16"
        else:
            dt, npdt = ST_DTYPES[v.dtype]
            raw = v.numpy().astype(np.dtype(npdt).newbyteorder("<")).tobytes()
        header[k] = {"dtype": dt, "shape": list(v.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def p(name):
    return os.path.join(OUT, name)


expected = {"sets": {}, "files": []}
for label, dtype in (("f32", torch.float32), ("bf16", torch.bfloat16), ("f16", torch.float16)):
    expected["sets"][label] = {k: checksums(v.to(dtype)) for k, v in SD.items()}


def record(fname, set_name, prefix="", dtype="F32", extras=None):
    expected["files"].append({"file": fname, "set": set_name, "prefix": prefix, "dtype": dtype,
                              "extras": extras or {}})


# safetensors, single file
save_safetensors(p("tiny_f32.safetensors"), SD)
record("tiny_f32.safetensors", "f32")
save_safetensors(p("tiny_bf16.safetensors"), cast(SD, torch.bfloat16))
record("tiny_bf16.safetensors", "bf16", dtype="BF16")

# sharded: globals + block 0 in shard 1, the rest in shard 2
keys = list(SD.keys())
half = [k for k in keys if not k.startswith("blocks.1.") and not k.startswith("head.")]
rest = [k for k in keys if k not in half]
shards = {"model-00001-of-00002.safetensors": half, "model-00002-of-00002.safetensors": rest}
wmap = {}
for fname, ks in shards.items():
    save_safetensors(p(fname), collections.OrderedDict((k, SD[k]) for k in ks))
    for k in ks:
        wmap[k] = fname
with open(p("model.safetensors.index.json"), "w") as f:
    json.dump({"metadata": {"total_size": sum(v.numel() * 4 for v in SD.values())},
               "weight_map": dict(sorted(wmap.items()))}, f, indent=2)
record("model.safetensors.index.json", "f32")

# torch.save checkpoints
gen = cast(SD, torch.bfloat16, "model.")
gen._metadata = collections.OrderedDict([("", {"version": 1}), ("model", {"version": 1})])
torch.save({"generator": gen}, p("sdv2_generator_bf16.pt"))
record("sdv2_generator_bf16.pt", "bf16", prefix="model.", dtype="BF16")

torch.save(cast(SD, torch.float32), p("bare_f32.pt"))
record("bare_f32.pt", "f32")

torch.save({"state_dict": cast(SD, torch.float16)}, p("state_dict_f16.pth"))
record("state_dict_f16.pth", "f16", dtype="F16")

# generator_ema wins over state_dict; non-tensor values must not disturb loading
decoy = collections.OrderedDict([("decoy", torch.zeros(3))])
torch.save({"step": 3, "optimizer": {"lr": 0.1, "betas": (0.9, 0.999), "name": "adamw",
                                     "flags": [True, False, None], "state": {0: {"n": 7}}},
            "generator_ema": cast(SD, torch.bfloat16, "model."), "state_dict": decoy,
            "big": 2 ** 40, "neg": -5}, p("ema_with_optimizer.pt"))
record("ema_with_optimizer.pt", "bf16", prefix="model.", dtype="BF16")

# views: a transposed (non-contiguous) tensor and a row sharing its storage at an offset
base = torch.arange(12, dtype=torch.float32).reshape(3, 4) * 0.5 - 1
views = cast(SD, torch.float32)
views["extra.transposed"] = base.t()
views["extra.row"] = base[2]
views["extra.param"] = torch.nn.Parameter(base[1].clone())  # _rebuild_parameter
views["extra.long"] = torch.tensor([700, -5, 2 ** 40], dtype=torch.int64)
views["extra.bf16_t"] = base.bfloat16().t()  # a 2-byte strided gather
torch.save(views, p("views_f32.pt"))
record("views_f32.pt", "f32", extras={
    "extra.transposed": {"shape": [4, 3], "values": base.t().reshape(-1).tolist()},
    "extra.row": {"shape": [4], "values": base[2].tolist()},
    "extra.param": {"shape": [4], "values": base[1].tolist()},
    "extra.long": {"shape": [3], "int": True, "values": [700, -5, 2 ** 40]},
    "extra.bf16_t": {"shape": [4, 3], "values": base.bfloat16().t().float().reshape(-1).tolist()}})


def rewrite_zip(src, dst, compression=zipfile.ZIP_STORED, force_zip64=False, drop=None):
    with zipfile.ZipFile(src) as zi, zipfile.ZipFile(dst, "w", compression) as zo:
        for info in zi.infolist():
            if drop and info.filename.endswith(drop):
                continue
            data = zi.read(info.filename)
            zinfo = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            zinfo.compress_type = compression
            with zo.open(zinfo, "w", force_zip64=force_zip64) as w:
                w.write(data)


rewrite_zip(p("sdv2_generator_bf16.pt"), p("zip64_python.pt"), force_zip64=True)
record("zip64_python.pt", "bf16", prefix="model.", dtype="BF16")


def write_zip64_by_hand(src, dst):
    """Stored entries whose central directory records carry 0xffffffff sizes and offsets with
    the real values in zip64 extra fields, then a zip64 end record, its locator, and an end
    record full of 0xffff / 0xffffffff."""
    with zipfile.ZipFile(src) as zi:
        entries = [(i.filename, zi.read(i.filename)) for i in zi.infolist()]
    out = io.BytesIO()
    central = []
    for name, data in entries:
        nb = name.encode()
        off = out.tell()
        crc = zlib.crc32(data)
        extra = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034b50, 45, 0, 0, 0, 0, crc,
                              0xffffffff, 0xffffffff, len(nb), len(extra)))
        out.write(nb + extra + data)
        cextra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), off)
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 45, 45, 0, 0, 0, 0, crc,
                                   0xffffffff, 0xffffffff, len(nb), len(cextra), 0, 0, 0, 0,
                                   0xffffffff) + nb + cextra)
    cd_off = out.tell()
    for c in central:
        out.write(c)
    cd_size = out.tell() - cd_off
    z64 = out.tell()
    out.write(struct.pack("<IQHHIIQQQQ", 0x06064b50, 44, 45, 45, 0, 0, len(central),
                          len(central), cd_size, cd_off))
    out.write(struct.pack("<IIQI", 0x07064b50, 0, z64, 1))
    out.write(struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, 0xffff, 0xffff, 0xffffffff,
                          0xffffffff, 0))
    with open(dst, "wb") as f:
        f.write(out.getvalue())


write_zip64_by_hand(p("bare_f32.pt"), p("zip64_manual.pt"))
record("zip64_manual.pt", "f32")
# the hand-written zip64 file must be a valid zip that torch itself loads
assert torch.load(p("zip64_manual.pt"))["blocks.1.ffn.2.bias"].equal(SD["blocks.1.ffn.2.bias"])
assert torch.load(p("zip64_python.pt"))["generator"]["model.head.head.bias"].equal(
    SD["head.head.bias"].bfloat16())

# broken files (the C test expects an error naming the file and the reason)
broken = []
with open(p("state_dict_f16.pth"), "rb") as f:
    raw = f.read()
with open(p("bad_truncated.pt"), "wb") as f:
    f.write(raw[: len(raw) * 2 // 3])
broken.append({"file": "bad_truncated.pt", "error": "truncated"})
rewrite_zip(p("state_dict_f16.pth"), p("bad_deflated.pt"), compression=zipfile.ZIP_DEFLATED)
broken.append({"file": "bad_deflated.pt", "error": "compressed"})
rewrite_zip(p("state_dict_f16.pth"), p("bad_missing_storage.pt"), drop="/data/3")
broken.append({"file": "bad_missing_storage.pt", "error": "data/3"})


class Evil:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


with zipfile.ZipFile(p("bad_os_system.pt"), "w") as zo:
    zo.writestr("bad_os_system/data.pkl", pickle.dumps({"x": Evil()}, protocol=2))
    zo.writestr("bad_os_system/version", "3\n")
broken.append({"file": "bad_os_system.pt", "error": "'posix.system'"})
with zipfile.ZipFile(p("bad_opcode.pt"), "w") as zo:
    zo.writestr("bad_opcode/data.pkl", pickle.dumps({"x": {1, 2}}, protocol=4))
broken.append({"file": "bad_opcode.pt", "error": "opcode"})
with open(p("tiny_bf16.safetensors"), "rb") as f:
    raw = f.read()
with open(p("bad_truncated.safetensors"), "wb") as f:
    f.write(raw[:-100])
broken.append({"file": "bad_truncated.safetensors", "error": "truncated"})
expected["broken"] = broken

with open(p("tiny.json"), "w") as f:
    json.dump(CFG, f, indent=1)
with open(p("expected.json"), "w") as f:
    json.dump(expected, f, indent=1)
total = sum(os.path.getsize(p(n)) for n in os.listdir(OUT))
print("wrote %d files, %d bytes, to %s" % (len(os.listdir(OUT)), total, OUT))
