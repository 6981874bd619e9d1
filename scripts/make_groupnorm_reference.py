#!/usr/bin/python3
"""PyTorch reference for GroupNormalization at opsets 18 and 21.

torch 1.13 exports GroupNorm as InstanceNormalization (opsets <= 17), so
the Go tests build the graphs with GroupNormalization by hand (the mt
builder) from the tensors written here, and compare the engine with
F.group_norm in float64:

    a = Conv 3x3 2->4 (pad 1) of x           N x 4 x 4 x 4
    g = GroupNormalization(a, scale, bias)   num_groups 2, epsilon 1e-5
    logits = Gemm(tanh(g).flatten(1), fc.weight, fc.bias, transB)   N x 3

Opset 18 (to 20): scale and bias per group (2 elements, F.group_norm with
each repeated over the group's 2 channels); opset 21: per channel (4).

Usage (from the repository root, Debian's PyTorch):

    /usr/bin/python3 scripts/make_groupnorm_reference.py [--out testdata/models]

Writes groupnorm_ref.npz: "input" (4 x 2 x 4 x 4, standard normal rounded
to float32, seed 2), "labels" (int64, 4), the weights rounded to float32
("conv.weight", "conv.bias", "fc.weight", "fc.bias", "gn18.scale",
"gn18.bias", "gn21.scale", "gn21.bias"), and per opset o in {18, 21}:
"logits.o" (4 x 3), "loss.o" (mean cross-entropy), "grad.o.<name>" and
"hv.o.<name>" for the unit parameters conv.weight, conv.bias, fc.weight
and fc.bias (the engine's θ; scale and bias are constants to it), with
"v.<name>" a Rademacher vector (seed 3), by double backprop in float64.
"""

import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import tiny_reference as tr  # noqa: E402

GROUPS = 2
EPS = float(np.float32(1e-5))  # the graphs' epsilon attribute is a float32


def f32(t):
    return t.float().double()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "testdata", "models"))
    args = ap.parse_args()
    gen = torch.Generator().manual_seed(1)
    w = {
        "conv.weight": f32(torch.randn(4, 2, 3, 3, generator=gen) / 4),
        "conv.bias": f32(torch.randn(4, generator=gen) / 4),
        "fc.weight": f32(torch.randn(3, 64, generator=gen) / 8),
        "fc.bias": f32(torch.randn(3, generator=gen) / 4),
        "gn18.scale": f32(1 + torch.randn(2, generator=gen) / 4),
        "gn18.bias": f32(torch.randn(2, generator=gen) / 4),
        "gn21.scale": f32(1 + torch.randn(4, generator=gen) / 4),
        "gn21.bias": f32(torch.randn(4, generator=gen) / 4),
    }
    x = f32(torch.randn(4, 2, 4, 4, generator=torch.Generator().manual_seed(2)))
    labels = torch.randint(0, 3, (4,), generator=torch.Generator().manual_seed(2))
    names = ["conv.weight", "conv.bias", "fc.weight", "fc.bias"]
    v = tr.rademacher([w[n].shape for n in names])
    ref = {"input": x.numpy(), "labels": labels.numpy()}
    ref.update({k: t.numpy() for k, t in w.items()})
    for n, vi in zip(names, v):
        ref["v." + n] = vi.numpy()
    for opset in (18, 21):
        if opset == 18:
            scale = w["gn18.scale"].repeat_interleave(4 // GROUPS)
            bias = w["gn18.bias"].repeat_interleave(4 // GROUPS)
        else:
            scale, bias = w["gn21.scale"], w["gn21.bias"]
        params = [w[n].clone().requires_grad_(True) for n in names]

        def logits_of(ps):
            cw, cb, fw, fb = ps
            a = F.conv2d(x, cw, cb, padding=1)
            g = F.group_norm(a, GROUPS, scale, bias, EPS)
            return torch.tanh(g).flatten(1) @ fw.t() + fb

        loss, grad, hv = tr.hvp(lambda ps: F.cross_entropy(logits_of(ps), labels), params, v)
        with torch.no_grad():
            ref[f"logits.{opset}"] = logits_of(params).numpy()
        ref[f"loss.{opset}"] = np.array(loss.item())
        for n, g, h in zip(names, grad, hv):
            ref[f"grad.{opset}.{n}"], ref[f"hv.{opset}.{n}"] = g.numpy(), h.numpy()
        print(f"opset {opset}: loss {loss.item():.6f}, |H v| {torch.cat([h.flatten() for h in hv]).norm().item():.6g}")
    out = os.path.join(args.out, "groupnorm_ref.npz")
    tr.save_npz(out, ref)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
