#!/usr/bin/python3
"""Export a tiny CNN whose features are the ONNX reductions other than
ReduceMean and ReduceSum on computed tensors, the test of the engine's
reduction kernels on a real torch.onnx export.

Usage (from the repository root, Debian's PyTorch and onnx):

    /usr/bin/python3 scripts/make_reduce_tiny.py [--out testdata/models]

Writes reduce_tiny_op13.onnx and reduce_tiny_op17.onnx (the same module
exported by torch.onnx.export at opsets 13 and 17; torch 1.13 exports no
opset 18, where the axes become inputs: the Go tests cover that form on
built graphs and on the opset-21 QDQ export): input "input" N x 1 x 8 x 8
(float32, dynamic batch), output "logits" N x 3. Random weights (seed 1):

    a = Conv 3x3 1->4 (pad 1), h = Relu(a)
    gmax = h.amax((2, 3))                     ReduceMax, global max pooling, N x 4
    gmin = a.amin((2, 3))                     ReduceMin, N x 4
    u = F.normalize(Conv 1x1 4->4 of h, dim=1)  ReduceL2 (+ Clip, Expand, Div)
    lse = torch.logsumexp(Conv 1x1 4->3 of u, 1, keepdim=True)  ReduceLogSumExp, N x 1 x 8 x 8
    p = torch.prod(1 + tanh(Conv 1x1 4->2 of h) / 2, 3)   ReduceProd, N x 2 x 8
    l1 = torch.norm(u, p=1, dim=(2, 3))       ReduceL1, N x 4
    ss = sum of a^2 over the channels, keepdim   ReduceSumSquare, N x 1 x 8 x 8
    ls = log of the sum of sigmoid(a) over H, W  ReduceLogSum, N x 4
    logits = Linear 160->3 of the concatenated flattened features

torch.onnx emits ReduceSumSquare and ReduceLogSum for none of its
functions ((a ** 2).sum() is Pow + ReduceSum), so those two are
torch.autograd.Function objects with a `symbolic` static method that emits
the ONNX node (axes attribute, keepdims), torch.onnx's documented mechanism
for operators it does not map itself; outside the export the module
computes them with plain torch ops, which the reference uses. The others
are plain exports.

Also writes reduce_tiny_ref.npz, computed by the module in float64 on the
float32 weights: "input" (4 x 1 x 8 x 8, standard normal rounded to
float32, seed 2), "labels" (int64, 4), "logits" (4 x 3), "loss" (mean
cross-entropy), and per parameter (its initializer name) "grad.<name>",
"v.<name>" (a Rademacher vector, seed 3) and "hv.<name>" = H v by double
backprop. The script checks that both files pass onnx.checker (full check),
hold every parameter as an initializer of its own name and contain every
one of the eight reductions, and that the ONNX graphs evaluated by
scripts/onnx_torch.py (float64, the file's own initializers) give the
module's logits and, with the initializers as autograd leaves, its H v.
"""

import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import tiny_reference as tr  # noqa: E402

REDUCTIONS = ["ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMin",
              "ReduceProd", "ReduceSumSquare"]

PLAIN = {
    "ReduceSumSquare": lambda x, dims, keep: (x * x).sum(dims, keepdim=keep),
    "ReduceLogSum": lambda x, dims, keep: torch.log(x.sum(dims, keepdim=keep)),
}


def _function(op):
    class Reduction(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, dims, keep):
            return PLAIN[op](x, dims, keep)

        @staticmethod
        def symbolic(g, x, dims, keep):
            return g.op(op, x, axes_i=list(dims), keepdims_i=int(keep))

    Reduction.__name__ = op
    return Reduction


FUNCTIONS = {op: _function(op) for op in PLAIN}


def reduction(op, x, dims, keep):
    """The ONNX node op of x when exporting, else plain torch ops."""
    if torch.onnx.is_in_onnx_export():
        return FUNCTIONS[op].apply(x, dims, keep)
    return PLAIN[op](x, dims, keep)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_a = nn.Conv2d(1, 4, 3, padding=1)
        self.conv_b = nn.Conv2d(4, 4, 1)
        self.conv_c = nn.Conv2d(4, 3, 1)
        self.conv_d = nn.Conv2d(4, 2, 1)
        self.fc = nn.Linear(4 + 4 + 64 + 16 + 4 + 64 + 4, 3)

    def forward(self, x):
        a = self.conv_a(x)
        h = torch.relu(a)
        gmax = h.amax((2, 3))
        gmin = a.amin((2, 3))
        u = F.normalize(self.conv_b(h), dim=1)
        lse = torch.logsumexp(self.conv_c(u), 1, keepdim=True)
        p = torch.prod(1 + torch.tanh(self.conv_d(h)) / 2, 3)
        l1 = torch.norm(u, p=1, dim=(2, 3))
        ss = reduction("ReduceSumSquare", a, (1,), True)
        ls = reduction("ReduceLogSum", torch.sigmoid(a), (2, 3), False)
        feats = [gmax, gmin, lse.flatten(1), p.flatten(1), l1, ss.flatten(1), ls]
        return self.fc(torch.cat(feats, 1))


def main():
    args, m, x32, labels = tr.setup(__doc__, Tiny)
    paths = {}
    for opset in (13, 17):
        path = os.path.join(args.out, f"reduce_tiny_op{opset}.onnx")
        mp = tr.export(m, {"input": x32}, path, opset, m.state_dict())
        paths[opset] = path
        found = sorted({n.op_type for n in mp.graph.node if n.op_type in REDUCTIONS})
        if found != REDUCTIONS:
            raise SystemExit(f"{path}: reductions {found}, want {REDUCTIONS}")
        print(f"wrote {path} ({os.path.getsize(path)} bytes): {[n.op_type for n in mp.graph.node]}")

    # The float64 reference on the float32 weights.
    tr.reference(tr.float64_module(m, Tiny), {"input": x32.double()}, labels, paths,
                 os.path.join(args.out, "reduce_tiny_ref.npz"))


if __name__ == "__main__":
    main()
