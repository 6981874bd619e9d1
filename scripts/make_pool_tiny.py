#!/usr/bin/python3
"""Export a tiny CNN whose features are GlobalMaxPool and GlobalLpPool of
computed tensors, the test of the engine's global pooling kernels on a
real torch.onnx export.

Usage (from the repository root, Debian's PyTorch and onnx):

    /usr/bin/python3 scripts/make_pool_tiny.py [--out testdata/models]

Writes pool_tiny_op13.onnx and pool_tiny_op17.onnx (the same module
exported by torch.onnx.export at opsets 13 and 17): input "input"
N x 1 x 8 x 8 (float32, dynamic batch), output "logits" N x 3. Random
weights (seed 1):

    a = Conv 3x3 1->4 (pad 1), h = Relu(a), b = Conv 1x1 4->3 of h
    gmax = nn.AdaptiveMaxPool2d(1)(h)           GlobalMaxPool, N x 4 x 1 x 1
    gmaxb = nn.AdaptiveMaxPool2d(1)(tanh(b))    GlobalMaxPool, N x 3 x 1 x 1
    g1d = F.adaptive_max_pool1d(a.flatten(2), 1)  GlobalMaxPool (1-D), N x 4 x 1
    gl2 = GlobalLpPool p=2 of a                 N x 4 x 1 x 1
    gl3 = GlobalLpPool p=3 of b                 N x 3 x 1 x 1
    gl1 = GlobalLpPool p=1 of tanh(b)           N x 3 x 1 x 1
    logits = the sum of a Linear ->3 of each feature (flattened): a
        Concat of the features would leave every channel unprunable

torch.onnx exports adaptive max pooling to size 1 as GlobalMaxPool only
when the input's spatial size is unknown at export (with it known it
writes a MaxPool whose kernel is the whole plane), so the module is
exported with dynamic height and width, and the file's input then has its
height and width fixed to 8 (dim_value; the engine takes only the batch
as symbolic) — the graph is unchanged. torch.onnx emits GlobalLpPool for
none of its functions (nn.LPPool2d becomes Pow, AveragePool, Sign, Abs,
Relu, Mul, Pow), so it is a torch.autograd.Function with a `symbolic`
static method that emits the ONNX node, torch.onnx's documented mechanism
for operators it does not map itself; outside the export the module
computes it with plain torch ops, (Σ |x|^p)^(1/p) over H and W, which the
reference uses.

Also writes pool_tiny_ref.npz, computed by the module in float64 on the
float32 weights: "input" (4 x 1 x 8 x 8, standard normal rounded to
float32, seed 2), "labels" (int64, 4), "logits" (4 x 3), "loss" (mean
cross-entropy), and per parameter (its initializer name) "grad.<name>",
"v.<name>" (a Rademacher vector, seed 3) and "hv.<name>" = H v by double
backprop. The script checks that both files pass onnx.checker (full
check), hold every parameter as an initializer of its own name and contain
three GlobalMaxPool (one 1-D) and three GlobalLpPool nodes and no MaxPool,
and that the ONNX graphs evaluated by scripts/onnx_torch.py (float64, the
file's own initializers) give the module's logits and, with the
initializers as autograd leaves, its H v.
"""

import os
import sys

import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import tiny_reference as tr  # noqa: E402


def lp_plain(x, p):
    """(Σ |x|^p)^(1/p) over every axis after the channels, keepdim."""
    dims = tuple(range(2, x.dim()))
    return x.abs().pow(p).sum(dims, keepdim=True).pow(1.0 / p)


class GlobalLp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, p):
        return lp_plain(x, p)

    @staticmethod
    def symbolic(g, x, p):
        return g.op("GlobalLpPool", x, p_i=int(p))


def global_lp(x, p):
    """The GlobalLpPool node when exporting, else plain torch ops."""
    if torch.onnx.is_in_onnx_export():
        return GlobalLp.apply(x, p)
    return lp_plain(x, p)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_a = nn.Conv2d(1, 4, 3, padding=1)
        self.conv_b = nn.Conv2d(4, 3, 1)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.heads = nn.ModuleList([nn.Linear(c, 3) for c in (4, 3, 4, 4, 3, 3)])

    def forward(self, x):
        a = self.conv_a(x)
        h = torch.relu(a)
        b = self.conv_b(h)
        tb = torch.tanh(b)
        feats = [self.pool(h), self.pool(tb), F.adaptive_max_pool1d(a.flatten(2), 1),
                 global_lp(a, 2), global_lp(b, 3), global_lp(tb, 1)]
        return sum(head(f.flatten(1)) for head, f in zip(self.heads, feats))


def export(m, x32, path, opset):
    """Export m at opset with dynamic height and width, then fix the
    input's height and width to x32's."""
    torch.onnx.export(m, (x32,), path + ".tmp", input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}},
                      opset_version=opset)
    mp = onnx.load(path + ".tmp")
    os.remove(path + ".tmp")
    dims = mp.graph.input[0].type.tensor_type.shape.dim
    for i in (2, 3):
        dims[i].Clear()
        dims[i].dim_value = x32.shape[i]
    del mp.graph.value_info[:]  # inferred with the symbolic height and width
    onnx.save(mp, path)
    return mp


def main():
    args, m, x32, labels = tr.setup(__doc__, Tiny)
    paths = {}
    for opset in (13, 17):
        path = os.path.join(args.out, f"pool_tiny_op{opset}.onnx")
        mp = export(m, x32, path, opset)
        paths[opset] = path
        tr.check_export(mp, path, m.state_dict())
        ops = [n.op_type for n in mp.graph.node]
        if ops.count("GlobalMaxPool") != 3 or ops.count("GlobalLpPool") != 3 or "MaxPool" in ops:
            raise SystemExit(f"{path}: nodes {ops}, want three GlobalMaxPool and three GlobalLpPool, no MaxPool")
        print(f"wrote {path} ({os.path.getsize(path)} bytes): {ops}")

    # The float64 reference on the float32 weights.
    tr.reference(tr.float64_module(m, Tiny), {"input": x32.double()}, labels, paths,
                 os.path.join(args.out, "pool_tiny_ref.npz"))


if __name__ == "__main__":
    main()
