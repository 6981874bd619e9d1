#!/usr/bin/python3
"""Export a tiny CNN with PixelShuffle, PixelUnshuffle, SpaceToDepth, a
DCR DepthToSpace, an einsum attention score and an einsum bilinear term,
torch.gather, torch.cumsum and torch.triu/tril on computed tensors: the test
of the engine's layout operators and Einsum on a real torch.onnx export.

Usage (from the repository root, Debian's PyTorch and onnx):

    /usr/bin/python3 scripts/make_layout_tiny.py [--out testdata/models]

Writes layout_tiny_op14.onnx and layout_tiny_op17.onnx (the same module
exported by torch.onnx.export at opsets 14 and 17; this PyTorch exports no
opset 18): input "input" N x 1 x 8 x 8 (float32, dynamic batch), output
"logits" N x 3. Random weights (seed 1):

    a = Conv 3x3 1->4 (pad 1) of x               N x 4 x 8 x 8
    u = PixelUnshuffle(2)(relu(a))               N x 16 x 4 x 4 (Reshape, Transpose, Reshape)
    p = PixelShuffle(2)(Conv 1x1 16->8 of u)     N x 2 x 8 x 8  (DepthToSpace CRD)
    s = space_to_depth(tanh(Conv 3x3 2->2 of p)) N x 8 x 4 x 4  (SpaceToDepth)
    r = depth_to_space_dcr(Conv 1x1 8->8 of s)   N x 2 x 8 x 8  (DepthToSpace DCR)
    q = s.flatten(2); k = (Conv 1x1 8->8 of s).flatten(2)       N x 8 x 16
    att = einsum('bcq,bdq->bcd', q, k) / 4       N x 8 x 8      (Einsum)
    t = triu(att, -1) - tril(att, -2) / 2        (Trilu upper k -1, lower k -2)
    c = cumsum(t, 2)                             (CumSum)
    g = gather(c, 2, idx.expand(N, 8, 3))        N x 8 x 3      (GatherElements)
    e = einsum('bcd,de->bce', c, bil)            N x 8 x 3      (Einsum with a weight: a unit)
    logits = Linear 26->3 of [tanh(g + e).flatten(1), mean of r over H, W]

torch.onnx maps PixelShuffle to DepthToSpace CRD but PixelUnshuffle to
Reshape/Transpose/Reshape (its channel order is not ONNX SpaceToDepth's),
so space_to_depth and depth_to_space_dcr, which compute ONNX's orders with
plain torch reshapes and permutes, are torch.autograd.Function objects
whose `symbolic` emits the ONNX node (torch.onnx's documented mechanism,
as in make_variadic_tiny.py). idx (int64 1 x 8 x 3, values in [0, 8):
torch.gather takes no negative indices) is a buffer; bil (8 x 3) is a
parameter, which the engine quantizes as the Einsum's weight (a unit like
MatMul's, output channels on its axis 1).

Also writes layout_tiny_ref.npz, computed by the module in float64 on the
float32 weights: "input" (4 x 1 x 8 x 8, standard normal rounded to
float32, seed 2), "labels" (int64, 4), "logits" (4 x 3), "loss" (mean
cross-entropy), and per parameter (its initializer name) "grad.<name>",
"v.<name>" (a Rademacher vector, seed 3) and "hv.<name>" = H v by double
backprop. The script checks that both files pass onnx.checker (full check),
hold every parameter as an initializer of its own name and contain the
operators listed above, and that the ONNX graphs evaluated by
scripts/onnx_torch.py (float64, the file's own initializers) give the
module's logits and, with the initializers as autograd leaves, its H v.
"""

import os
import sys

import torch
import torch.nn as nn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import tiny_reference as tr  # noqa: E402


def _s2d(x, b):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4).reshape(n, c * b * b, h // b, w // b)


def _d2s_dcr(x, b):
    n, c, h, w = x.shape
    return x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c // (b * b), h * b, w * b)


class SpaceToDepth(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return _s2d(x, 2)

    @staticmethod
    def symbolic(g, x):
        return g.op("SpaceToDepth", x, blocksize_i=2)


class DepthToSpaceDCR(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return _d2s_dcr(x, 2)

    @staticmethod
    def symbolic(g, x):
        return g.op("DepthToSpace", x, blocksize_i=2, mode_s="DCR")


def space_to_depth(x):
    return SpaceToDepth.apply(x) if torch.onnx.is_in_onnx_export() else _s2d(x, 2)


def depth_to_space_dcr(x):
    return DepthToSpaceDCR.apply(x) if torch.onnx.is_in_onnx_export() else _d2s_dcr(x, 2)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_a = nn.Conv2d(1, 4, 3, padding=1)
        self.conv_b = nn.Conv2d(16, 8, 1)
        self.conv_c = nn.Conv2d(2, 2, 3, padding=1)
        self.conv_d = nn.Conv2d(8, 8, 1)
        self.conv_k = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8 * 3 + 2, 3)
        self.unshuffle = nn.PixelUnshuffle(2)
        self.shuffle = nn.PixelShuffle(2)
        gen = torch.Generator().manual_seed(4)
        self.register_buffer("idx", torch.randint(0, 8, (1, 8, 3), generator=gen))
        self.bil = nn.Parameter(torch.randn(8, 3, generator=gen) / 3)

    def forward(self, x):
        u = self.unshuffle(torch.relu(self.conv_a(x)))
        p = self.shuffle(self.conv_b(u))
        s = space_to_depth(torch.tanh(self.conv_c(p)))
        r = depth_to_space_dcr(self.conv_d(s))
        q, k = s.flatten(2), self.conv_k(s).flatten(2)
        att = torch.einsum("bcq,bdq->bcd", q, k) / 4
        t = torch.triu(att, -1) - torch.tril(att, -2) / 2
        c = torch.cumsum(t, 2)
        g = torch.gather(c, 2, self.idx.expand(x.shape[0], 8, 3))
        e = torch.einsum("bcd,de->bce", c, self.bil)
        return self.fc(torch.cat([torch.tanh(g + e).flatten(1), r.mean((2, 3))], 1))


WANT = {"DepthToSpace": 2, "SpaceToDepth": 1, "Einsum": 2, "GatherElements": 1, "CumSum": 1, "Trilu": 2}


def main():
    args, m, x32, labels = tr.setup(__doc__, Tiny)
    paths = {}
    for opset in (14, 17, 18):
        path = os.path.join(args.out, f"layout_tiny_op{opset}.onnx")
        try:
            mp = tr.export(m, {"input": x32}, path, opset, [k for k, _ in m.named_parameters()])
        except ValueError as err:  # torch 1.13: "Unsupported ONNX opset version: 18"
            if opset == 18:
                print(f"opset 18 not exported: {err}")
                continue
            raise
        paths[opset] = path
        got = {op: sum(n.op_type == op for n in mp.graph.node) for op in WANT}
        if got != WANT:
            raise SystemExit(f"{path}: layout nodes {got}, want {WANT}")
        modes = sorted(a.s.decode() for n in mp.graph.node if n.op_type == "DepthToSpace" for a in n.attribute if a.name == "mode")
        if modes != ["CRD", "DCR"]:
            raise SystemExit(f"{path}: DepthToSpace modes {modes}, want CRD and DCR")
        print(f"wrote {path} ({os.path.getsize(path)} bytes): {[n.op_type for n in mp.graph.node]}")

    # The float64 reference on the float32 weights.
    tr.reference(tr.float64_module(m, Tiny), {"input": x32.double()}, labels, paths,
                 os.path.join(args.out, "layout_tiny_ref.npz"))


if __name__ == "__main__":
    main()
