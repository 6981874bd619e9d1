#!/usr/bin/python3
"""Export a tiny CNN with GroupNorm, torch.topk of a computed tensor, a
batched gather of the top-k positions (GatherND), a boolean-mask index
(NonZero and GatherND) and F.one_hot of computed indices: the test of the
engine's TopK, GatherND, OneHot and InstanceNormalization on a real
torch.onnx export.

Usage (from the repository root, Debian's PyTorch and onnx):

    /usr/bin/python3 scripts/make_misc_tiny.py [--out testdata/models]

Writes misc_tiny_op13.onnx and misc_tiny_op17.onnx (the same module
exported by torch.onnx.export at opsets 13 and 17; this PyTorch exports no
opset 18): input "input" N x 1 x 8 x 8 (float32, dynamic batch), output
"logits" N x 3. Random weights (seed 1):

    a = tanh(Conv 3x3 1->4 (pad 1) of x)          N x 4 x 8 x 8
    g = GroupNorm(2, 4)(a)                        (Reshape, InstanceNormalization, Reshape, Mul, Add)
    f = (Conv 1x1 4->4 of g).flatten(2)           N x 4 x 64
    v, i = topk(f, 5, dim=2)                      N x 4 x 5   (TopK: values and int64 indices)
    s = gather_nd(f.transpose(1, 2), i[:, 0, :, None], batch_dims=1)
                                                  N x 5 x 4   (GatherND of computed indices)
    m = g.permute(2, 3, 0, 1)[mask].mean(0)       N x 4       (NonZero of a mask buffer, GatherND)
    o = (one_hot(i[:, 1, 0], 64).float() * f[:, 2]).sum(1)
                                                  N           (OneHot of computed indices, Cast)
    logits = Linear 45->3 of [v.flatten(1), s.flatten(1), m, o]

torch.onnx exports x[idx0, idx1] with integer index tensors as a Gather of
the linearised index (Mul, Add, Gather), not GatherND, so the batched
gather of the top-k positions is a torch.autograd.Function whose `symbolic`
emits GatherND with batch_dims 1 (torch.onnx's documented mechanism, as in
make_layout_tiny.py); a boolean-mask index over leading axes exports
NonZero, Transpose and GatherND itself. The values of topk are
differentiable through the picked elements; the indices, the one-hot rows
and the mask carry no derivative.

Also writes misc_tiny_ref.npz, computed by the module in float64 on the
float32 weights (and GroupNorm's eps rounded to float32, as the exported
epsilon attribute is): "input" (4 x 1 x 8 x 8, standard normal rounded to
float32, seed 2), "labels" (int64, 4), "logits" (4 x 3), "loss" (mean
cross-entropy), and per parameter (its initializer name) "grad.<name>",
"v.<name>" (a Rademacher vector, seed 3; zero for the GroupNorm affine
parameters gn.weight and gn.bias, which the engine holds as constants: its
θ is the quantizable units' weights and biases) and "hv.<name>" = H v by
double backprop. The script checks that both files pass onnx.checker (full check),
hold every parameter as an initializer of its own name and contain the
operators listed above, that the top-5 values of every slice are at least
1e-4 apart (no tie, and no finite-difference step of the Go test
reorders them), and that the ONNX graphs evaluated by scripts/onnx_torch.py
(float64, the file's own initializers) give the module's logits and, with
the initializers as autograd leaves, its H v.
"""

import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import tiny_reference as tr  # noqa: E402


def _gather_nd_b1(x, idx):
    # batch_dims 1, one coordinate per tuple: out[n, j, :] = x[n, idx[n, j, 0], :].
    return torch.gather(x, 1, idx.expand(-1, -1, x.shape[2]))


class GatherNDB1(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, idx):
        return _gather_nd_b1(x, idx)

    @staticmethod
    def symbolic(g, x, idx):
        return g.op("GatherND", x, idx, batch_dims_i=1)


def gather_nd_b1(x, idx):
    return GatherNDB1.apply(x, idx) if torch.onnx.is_in_onnx_export() else _gather_nd_b1(x, idx)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_a = nn.Conv2d(1, 4, 3, padding=1)
        self.gn = nn.GroupNorm(2, 4)
        self.conv_b = nn.Conv2d(4, 4, 1)
        self.fc = nn.Linear(20 + 20 + 4 + 1, 3)
        gen = torch.Generator().manual_seed(4)
        self.register_buffer("mask", torch.rand(8, 8, generator=gen) > 0.6)
        with torch.no_grad():  # a non-trivial affine map after the normalization
            self.gn.weight.copy_(1 + torch.randn(4, generator=gen) / 4)
            self.gn.bias.copy_(torch.randn(4, generator=gen) / 4)

    def parts(self, x):
        a = torch.tanh(self.conv_a(x))
        g = self.gn(a)
        f = self.conv_b(g).flatten(2)
        v, i = torch.topk(f, 5, dim=2)
        s = gather_nd_b1(f.transpose(1, 2), i[:, 0, :].unsqueeze(-1))
        m = g.permute(2, 3, 0, 1)[self.mask].mean(0)
        o = (F.one_hot(i[:, 1, 0], 64).float() * f[:, 2]).sum(1, keepdim=True)
        return f, v, s, m, o

    def forward(self, x):
        _, v, s, m, o = self.parts(x)
        return self.fc(torch.cat([v.flatten(1), s.flatten(1), m, o], 1))


WANT = {"TopK": 1, "GatherND": 2, "NonZero": 1, "OneHot": 1, "InstanceNormalization": 1}


def main():
    args, m, x32, labels = tr.setup(__doc__, Tiny)
    paths = {}
    for opset in (13, 17):
        path = os.path.join(args.out, f"misc_tiny_op{opset}.onnx")
        mp = tr.export(m, {"input": x32}, path, opset, [k for k, _ in m.named_parameters()], do_constant_folding=False)
        paths[opset] = path
        got = {op: sum(n.op_type == op for n in mp.graph.node) for op in WANT}
        if got != WANT:
            raise SystemExit(f"{path}: nodes {got}, want {WANT}")
        print(f"wrote {path} ({os.path.getsize(path)} bytes): {[n.op_type for n in mp.graph.node]}")

    # The float64 reference on the float32 weights.
    m64 = tr.float64_module(m, Tiny)
    m64.gn.eps = float(np.float32(m64.gn.eps))  # the exported epsilon attribute is a float32
    x = x32.double()
    with torch.no_grad():
        f, _, _, _, _ = m64.parts(x)
        top6 = torch.topk(f, 6, dim=2).values
        gap = (top6[..., :-1] - top6[..., 1:]).min().item()
    if gap < 1e-4:
        raise SystemExit(f"the top-6 values of a slice are {gap:.3g} apart: a tie or a near tie")

    def v_of(names, v):
        # The engine's θ is the quantizable units' weights and biases; the
        # GroupNorm affine parameters are constants to it, so v is zero there.
        return [vi * 0 if n.startswith("gn.") else vi for n, vi in zip(names, v)]

    tr.reference(m64, {"input": x}, labels, paths, os.path.join(args.out, "misc_tiny_ref.npz"), v_of=v_of,
                 note=f"min top-6 gap {gap:.3g}, ")

if __name__ == "__main__":
    main()
