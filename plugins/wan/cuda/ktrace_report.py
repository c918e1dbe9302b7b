#!/usr/bin/env python3
"""ktrace_report.py: the per-op-class table of one graphed DiT call from a ktrace.c trace.

Usage: ktrace_report.py TRACE.tsv [--min-launches N] [--graph ID]

One graph launch = the kernels sharing a correlation id. The call reported is the graph with
the largest median span among those launched at least N times (default 30: bench-dit's steady
S-slot call is launched 3 + 2 * iters times); --graph picks one. Kernels are classed by name
and by their place in the layer (the DiT's fixed op order, dit_cuda.c enqueue_range):
  QKV GEMM, q/k RMSNorm+RoPE+cache (k_qkv_rope_cache), self-attention (everything up to the
  O GEMM), O GEMM, norm3 (res_ln), cross-q GEMM, cross-q RMSNorm, cross-attention (up to the
  cross-o GEMM), cross-o GEMM, cross residual+LN, FFN up, FFN down, FFN residual+LN,
and the patch embedding / head outside the layers. The gap of a kernel is the idle time
between the end of every kernel before it (in start order) and its start; a negative value
(PDL overlap: it started before its predecessor ended) is summed separately. Times are means
over the call's launches after the first 3, in ms per call.
"""
import sys
from collections import defaultdict

OWN = {
    "k_qkv_rope_cache": "rope", "k_res_ln": "res_ln", "k_rmsnorm": "rmsnorm",
    "k_patchify": "embed", "k_bf16_to_f32": "embed", "k_unpatchify_x0": "head",
}
GEMM_TAGS = ("gemm", "nvjet", "xmma", "cutlass")
ATTN_TAGS = ("fmha", "sdpa", "attn", "flash", "cudnn", "fa3", "softmax")


def own_kind(name):
    for k, v in OWN.items():
        if k in name:
            return v
    return None


def is_gemm(name):
    n = name.lower()
    return any(t in n for t in GEMM_TAGS) and not any(t in n for t in ATTN_TAGS)


def classify(kernels):
    """kernels sorted by start; returns one class name per kernel."""
    cls = []
    state = "pre"        # before the first rope kernel: the patch embedding
    gi = 0               # GEMMs seen since this layer's rope kernel
    n = len(kernels)
    # the GEMM right before each rope kernel is that layer's QKV GEMM
    qkv_idx = set()
    for i, k in enumerate(kernels):
        if own_kind(k[-1]) == "rope":
            j = i - 1
            while j >= 0 and not is_gemm(kernels[j][-1]):
                j -= 1
            if j >= 0:
                qkv_idx.add(j)
    last_rope = max([i for i, k in enumerate(kernels) if own_kind(k[-1]) == "rope"], default=-1)
    for i, k in enumerate(kernels):
        name = k[-1]
        kind = own_kind(name)
        if i in qkv_idx:
            cls.append("gemm qkv")
            continue
        if kind == "rope":
            state, gi = "self", 0
            cls.append("qkv rmsnorm+rope+cache")
            continue
        if state == "pre":
            cls.append("embed (patchify, gemm, f32, ln)")
            continue
        if is_gemm(name):
            gi += 1
            names = {1: "gemm o", 2: "gemm cross-q", 3: "gemm cross-o", 4: "gemm ffn up", 5: "gemm ffn down"}
            if i > last_rope and gi > 5:
                cls.append("head (gemm, unpatchify)")
            else:
                cls.append(names.get(gi, "gemm other"))
            state = {1: "post_o", 2: "post_cq", 3: "post_co", 4: "post_up", 5: "post_down"}.get(gi, state)
            continue
        if kind == "res_ln":
            cls.append({"post_o": "res_ln norm3", "post_co": "res_ln cross+LN2",
                        "post_down": "res_ln ffn+LN1"}.get(state, "res_ln other"))
            continue
        if kind == "rmsnorm":
            cls.append("cross-q rmsnorm")
            state = "cross"
            continue
        if kind == "head" or (i > last_rope and state == "post_down" and gi > 5):
            cls.append("head (gemm, unpatchify)")
            continue
        if state == "self":
            cls.append("self-attention")
        elif state == "cross":
            cls.append("cross-attention")
        else:
            cls.append("other")
    return cls


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        return 2
    path, min_l, gsel = args[0], 30, None
    if "--min-launches" in args:
        min_l = int(args[args.index("--min-launches") + 1])
    if "--graph" in args:
        gsel = int(args[args.index("--graph") + 1])
    launches = defaultdict(list)      # correlation id -> kernels
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        if len(f) < 10:
            continue
        start, end, gid, node, corr = int(f[0]), int(f[1]), int(f[2]), int(f[3]), int(f[4])
        launches[corr].append((start, end, gid, node, f[6], f[7], int(f[8]), f[9]))
    by_graph = defaultdict(list)
    for corr, ks in launches.items():
        ks.sort()
        by_graph[ks[0][2]].append((ks[0][0], ks))
    print("graphs: id, launches, kernels per launch, median span ms")
    best, best_span = None, -1.0
    for gid, ls in sorted(by_graph.items()):
        ls.sort()
        spans = sorted((ks[-1][1] if False else max(k[1] for k in ks)) - ks[0][0] for _, ks in ls)
        med = spans[len(spans) // 2] / 1e6
        print("  %6d %5d %6d %9.3f" % (gid, len(ls), len(ls[0][1]), med))
        if (gsel is None and len(ls) >= min_l and med > best_span) or gsel == gid:
            best, best_span = gid, med
    if best is None:
        print("no graph launched %d times" % min_l)
        return 1
    ls = [ks for _, ks in sorted(by_graph[best])]
    use = ls[3:] if len(ls) > 6 else ls
    print("\ngraph %d: %d launches, %d used, %d kernels per launch" % (best, len(ls), len(use), len(ls[0])))
    tot = defaultdict(lambda: [0, 0.0, 0.0, 0.0])   # class -> count, kernel ns, gap ns, overlap ns
    spans, ksum, gsum, osum = [], [], [], []
    names = defaultdict(set)
    biggest = []
    for ks in use:
        cls = classify(ks)
        end_max = ks[0][0]
        sk = sg = so = 0
        for k, c in zip(ks, cls):
            gap = k[0] - end_max
            t = tot[c]
            t[0] += 1
            t[1] += k[1] - k[0]
            if gap >= 0:
                t[2] += gap
                sg += gap
            else:
                t[3] += -gap
                so += -gap
            sk += k[1] - k[0]
            end_max = max(end_max, k[1])
            names[c].add(k[-1][:90])
            biggest.append((gap, c, k[-1][:60]))
        spans.append(max(k[1] for k in ks) - ks[0][0])
        ksum.append(sk)
        gsum.append(sg)
        osum.append(so)
    nl = len(use)
    span = sum(spans) / nl / 1e6
    print("span %.3f ms (min %.3f, max %.3f); kernels %.3f ms; gaps %.3f ms; PDL overlap %.3f ms"
          % (span, min(spans) / 1e6, max(spans) / 1e6, sum(ksum) / nl / 1e6, sum(gsum) / nl / 1e6,
             sum(osum) / nl / 1e6))
    print("\n| op class | kernels/call | kernel ms | mean us | gaps before ms | mean gap us | overlap ms |")
    print("|---|---|---|---|---|---|---|")
    order = sorted(tot.items(), key=lambda kv: -kv[1][1])
    for c, (cnt, kn, gp, ov) in order:
        print("| %s | %.0f | %.3f | %.1f | %.3f | %.2f | %.3f |" % (
            c, cnt / nl, kn / nl / 1e6, kn / cnt / 1e3, gp / nl / 1e6, gp / cnt / 1e3, ov / nl / 1e6))
    print("\nkernel names per class:")
    for c, _ in order:
        for n in sorted(names[c])[:6]:
            print("  %-32s %s" % (c, n))
    biggest.sort(reverse=True)
    print("\nlargest gaps (us): " + "; ".join("%.1f %s" % (g / 1e3, c) for g, c, _ in biggest[:12]))
    # one middle layer of the median-span launch, kernel by kernel
    mid = sorted(use, key=lambda ks: max(k[1] for k in ks) - ks[0][0])[len(use) // 2]
    cls = classify(mid)
    ropes = [i for i, c in enumerate(cls) if c == "qkv rmsnorm+rope+cache"]
    if len(ropes) > 12:
        a, b = ropes[10] - 1, ropes[11] - 1
        print("\nlayer 10 of the median launch (start us from the layer's first kernel, dur us, gap us, grid, block, regs):")
        t0 = mid[a][0]
        prev_end = max(k[1] for k in mid[:a]) if a else t0
        for k, c in zip(mid[a:b], cls[a:b]):
            print("  %8.1f %8.1f %7.2f  %-26s %-14s %-10s %3d %s" % (
                (k[0] - t0) / 1e3, (k[1] - k[0]) / 1e3, (k[0] - prev_end) / 1e3, c, k[4], k[5], k[6], k[-1][:70]))
            prev_end = max(prev_end, k[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
