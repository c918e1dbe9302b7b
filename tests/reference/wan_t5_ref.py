#!/usr/bin/env python3
"""A PyTorch implementation of the umT5 encoder as Wan2.1 runs it (spec §6, weights §3.4),
written from the spec, and the generator of the tiny-config goldens the C tests read.

  python3 tests/reference/wan_t5_ref.py [OUTDIR]     (default tests/fixtures/wan/t5)

Writes:
  t5_tiny_config.json        tiny config, keys as upstream's T5Encoder arguments
  t5_tiny.safetensors        random fp32 weights with the real key names
  t5_tiny_bf16.pth           the same weights rounded to bf16, as torch.save(state_dict)
                             (the layout of models_t5_umt5-xxl-enc-bf16.pth)
  t5_tiny_golden.safetensors inputs and outputs:
     ids_a, mask_a [1,512] i64   37 real tokens (EOS last) then padding (also as ids, mask)
     ids_b, mask_b [1,512] i64   512 real tokens
     context_a, context_b [1,512,dim] f32   fp32 weights, fp32 math
     context_a_bf16 [1,512,dim] f32         bf16 weights upcast, fp32 math
     buckets [1201] i64          relative bucket for rel = j - i in -600..600
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch

# vocab_size matches the tokenizer fixtures, so encode-prompt runs end to end on them
TINY = dict(vocab_size=2500, dim=64, dim_attn=64, dim_ffn=160, num_heads=4, num_layers=2, num_buckets=32)
MAX_DIST = 128
EPS = 1e-6
L = 512


def rel_bucket(rel, num_buckets, max_dist=MAX_DIST):
    """Bidirectional T5 bucket of rel = j - i (int64 tensor)."""
    half = num_buckets // 2
    bucket = (rel > 0).long() * half
    n = rel.abs()
    exact = half // 2
    large = exact + (torch.log(n.float() / exact) / math.log(max_dist / exact) * (half - exact)).long()
    large = torch.clamp(large, max=half - 1)
    return bucket + torch.where(n < exact, n, large)


def rms(x, w):
    x = x * torch.rsqrt(x.float().pow(2).mean(dim=-1, keepdim=True) + EPS)
    return w * x


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def encode(sd, cfg, ids, mask):
    """ids, mask: [B, L] int64. Returns [B, L, dim] with rows past the real tokens zeroed."""
    b, n = ids.shape
    heads, da = cfg['num_heads'], cfg['dim_attn']
    hd = da // heads
    x = sd['token_embedding.weight'][ids]                        # [B, L, dim], no scaling
    pos = torch.arange(n)
    rel = pos[None, :] - pos[:, None]                            # [i, j] = j - i
    bucket = rel_bucket(rel, cfg['num_buckets'])
    key_masked = (mask == 0).view(b, 1, 1, n)
    for i in range(cfg['num_layers']):
        p = 'blocks.%d.' % i
        h = rms(x, sd[p + 'norm1.weight'])
        q = (h @ sd[p + 'attn.q.weight'].t()).view(b, n, heads, hd)
        k = (h @ sd[p + 'attn.k.weight'].t()).view(b, n, heads, hd)
        v = (h @ sd[p + 'attn.v.weight'].t()).view(b, n, heads, hd)
        bias = sd[p + 'pos_embedding.embedding.weight'][bucket]  # [L, L, heads]
        bias = bias.permute(2, 0, 1).unsqueeze(0).expand(b, heads, n, n).clone()
        bias = bias.masked_fill(key_masked, torch.finfo(x.dtype).min)
        logits = torch.einsum('binc,bjnc->bnij', q, k) + bias   # no 1/sqrt(d)
        attn = torch.softmax(logits.float(), dim=-1).type_as(logits)
        o = torch.einsum('bnij,bjnc->binc', attn, v).reshape(b, n, da)
        x = x + o @ sd[p + 'attn.o.weight'].t()
        h = rms(x, sd[p + 'norm2.weight'])
        f = (h @ sd[p + 'ffn.fc1.weight'].t()) * gelu_tanh(h @ sd[p + 'ffn.gate.0.weight'].t())
        x = x + f @ sd[p + 'ffn.fc2.weight'].t()
    x = rms(x, sd['norm.weight'])
    lens = mask.gt(0).sum(dim=1)
    for bi in range(b):
        x[bi, int(lens[bi]):] = 0
    return x


def random_weights(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    d, da, f, h, nb = cfg['dim'], cfg['dim_attn'], cfg['dim_ffn'], cfg['num_heads'], cfg['num_buckets']

    def rnd(*shape, std):
        return torch.randn(*shape, generator=g) * std

    sd = {'token_embedding.weight': rnd(cfg['vocab_size'], d, std=1.0)}
    for i in range(cfg['num_layers']):
        p = 'blocks.%d.' % i
        sd[p + 'norm1.weight'] = 1.0 + rnd(d, std=0.1)
        for n in 'qkvo':
            shape = (da, d) if n != 'o' else (d, da)
            sd[p + 'attn.%s.weight' % n] = rnd(*shape, std=d ** -0.5 * (0.6 if n in 'qk' else 1.0))
        sd[p + 'norm2.weight'] = 1.0 + rnd(d, std=0.1)
        sd[p + 'ffn.gate.0.weight'] = rnd(f, d, std=d ** -0.5)
        sd[p + 'ffn.fc1.weight'] = rnd(f, d, std=d ** -0.5)
        sd[p + 'ffn.fc2.weight'] = rnd(d, f, std=f ** -0.5)
        sd[p + 'pos_embedding.embedding.weight'] = rnd(nb, h, std=1.0)
    sd['norm.weight'] = 1.0 + rnd(d, std=0.1)
    return sd


def save_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    names = {np.float32: 'F32', np.int64: 'I64'}
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        raw = a.tobytes()
        header[name] = {'dtype': names[a.dtype.type], 'shape': list(a.shape), 'data_offsets': [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h)
        for raw in blobs:
            f.write(raw)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'wan', 't5')
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(2)
    cfg = dict(TINY)
    with open(os.path.join(out, 't5_tiny_config.json'), 'w') as f:
        json.dump(cfg, f, indent=2)
        f.write('\n')
    sd = random_weights(cfg, 1234)
    save_safetensors(os.path.join(out, 't5_tiny.safetensors'), {k: v.numpy() for k, v in sd.items()})
    sd_bf16 = {k: v.to(torch.bfloat16) for k, v in sd.items()}
    torch.save(sd_bf16, os.path.join(out, 't5_tiny_bf16.pth'))

    g = torch.Generator().manual_seed(99)
    na = 37
    ids_a = torch.zeros(1, L, dtype=torch.int64)
    ids_a[0, :na - 1] = torch.randint(3, cfg['vocab_size'], (na - 1,), generator=g)
    ids_a[0, na - 1] = 1  # EOS
    mask_a = torch.zeros(1, L, dtype=torch.int64)
    mask_a[0, :na] = 1
    ids_b = torch.randint(3, cfg['vocab_size'], (1, L), generator=g)
    ids_b[0, L - 1] = 1
    mask_b = torch.ones(1, L, dtype=torch.int64)
    with torch.no_grad():
        ctx_a = encode(sd, cfg, ids_a, mask_a)
        ctx_b = encode(sd, cfg, ids_b, mask_b)
        ctx_a16 = encode({k: v.float() for k, v in sd_bf16.items()}, cfg, ids_a, mask_a)
    rel = torch.arange(-600, 601)
    save_safetensors(os.path.join(out, 't5_tiny_golden.safetensors'), {
        'ids': ids_a.numpy(), 'mask': mask_a.numpy(),  # t5-encode's input names
        'ids_a': ids_a.numpy(), 'mask_a': mask_a.numpy(), 'context_a': ctx_a.numpy(),
        'ids_b': ids_b.numpy(), 'mask_b': mask_b.numpy(), 'context_b': ctx_b.numpy(),
        'context_a_bf16': ctx_a16.numpy(), 'buckets': rel_bucket(rel, cfg['num_buckets']).numpy(),
    })
    print('wrote', out, 'context_a rms %.4f' % ctx_a[0, :na].pow(2).mean().sqrt())


if __name__ == '__main__':
    main()
