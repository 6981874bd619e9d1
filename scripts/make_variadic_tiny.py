#!/usr/bin/python3
"""Export a tiny CNN whose joins are three-input Max, Min, Sum and Mean nodes
on computed tensors (ONNX's variadic element-wise operators), the test of
the engine's variadic kernels on a real torch.onnx export.

Usage (from the repository root, Debian's PyTorch and onnx):

    /usr/bin/python3 scripts/make_variadic_tiny.py [--out testdata/models]

Writes variadic_tiny_op13.onnx and variadic_tiny_op17.onnx (the same module
exported by torch.onnx.export at opsets 13 and 17): input "input" N x 1 x 8
x 8 (float32, dynamic batch), output "logits" N x 3. Random weights (seed 1):

    a = Conv 3x3 1->4 (pad 1), b = Conv 1x1 1->4, c = Conv 3x3 1->4 (pad 1)
    s = Sum(a, b, c)                        the residual-style join, N x 4 x 8 x 8
    h = Relu(s); p = mean of h over H, W    ReduceMean, N x 4 x 1 x 1
    d = Conv 3x3 4->4 (pad 1) of h, e = Conv 1x1 4->4 of h
    m = Max(d, p, e)                        p broadcast over H, W
    q = Conv 1x1 4->1 of h                  N x 1 x 8 x 8
    r = mean of d over W                    ReduceMean, N x 4 x 8 x 1
    n = Min(m, q, r)                        q broadcast over channels, r over W
    u = Mean(Tanh(n), m, p)
    logits = Gemm 256->3 of Flatten(u)

torch.onnx has no symbolic that emits a variadic node (torch.maximum,
torch.add and torch.stack(...).mean(0) export as two-input Max/Add or as
Concat + ReduceMean), so the joins are torch.autograd.Function objects
with a `symbolic` static method that emits the ONNX node with all three
inputs: torch.onnx's documented mechanism for operators it does not map
itself. Outside the export the module computes the same joins with plain
torch ops (torch.maximum, torch.minimum, +, / 3), which the reference uses.

Also writes variadic_tiny_ref.npz, computed by the module in float64 on the
float32 weights: "input" (4 x 1 x 8 x 8, standard normal rounded to
float32, seed 2), "labels" (int64, 4), "logits" (4 x 3), "loss" (mean
cross-entropy), and per parameter (its initializer name) "grad.<name>",
"v.<name>" (a Rademacher vector, seed 3) and "hv.<name>" = H v by double
backprop. The script checks that both files pass onnx.checker (full check),
hold every parameter as an initializer of its own name and contain the
three-input nodes, and that the ONNX graphs evaluated by
scripts/onnx_torch.py (float64, the file's own initializers) give the
module's logits and, with the initializers as autograd leaves, its H v.
"""

import functools
import os
import sys

import torch
import torch.nn as nn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import tiny_reference as tr  # noqa: E402

PLAIN = {
    "Max": lambda *xs: functools.reduce(torch.maximum, xs),
    "Min": lambda *xs: functools.reduce(torch.minimum, xs),
    "Sum": lambda *xs: functools.reduce(torch.add, xs),
    "Mean": lambda *xs: functools.reduce(torch.add, xs) / len(xs),
}


def _function(op):
    class Variadic(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *xs):
            return PLAIN[op](*xs)

        @staticmethod
        def symbolic(g, *xs):
            return g.op(op, *xs)

    Variadic.__name__ = op
    return Variadic


FUNCTIONS = {op: _function(op) for op in PLAIN}


def variadic(op, *xs):
    """The ONNX node op of all of xs when exporting, else plain torch ops."""
    if torch.onnx.is_in_onnx_export():
        return FUNCTIONS[op].apply(*xs)
    return PLAIN[op](*xs)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_a = nn.Conv2d(1, 4, 3, padding=1)
        self.conv_b = nn.Conv2d(1, 4, 1)
        self.conv_c = nn.Conv2d(1, 4, 3, padding=1)
        self.conv_d = nn.Conv2d(4, 4, 3, padding=1)
        self.conv_e = nn.Conv2d(4, 4, 1)
        self.conv_q = nn.Conv2d(4, 1, 1)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        s = variadic("Sum", self.conv_a(x), self.conv_b(x), self.conv_c(x))
        h = torch.relu(s)
        p = h.mean((2, 3), keepdim=True)
        d = self.conv_d(h)
        m = variadic("Max", d, p, self.conv_e(h))
        n = variadic("Min", m, self.conv_q(h), d.mean(3, keepdim=True))
        u = variadic("Mean", torch.tanh(n), m, p)
        return self.fc(u.flatten(1))


def main():
    args, m, x32, labels = tr.setup(__doc__, Tiny)
    paths = {}
    for opset in (13, 17):
        path = os.path.join(args.out, f"variadic_tiny_op{opset}.onnx")
        mp = tr.export(m, {"input": x32}, path, opset, m.state_dict())
        paths[opset] = path
        joins = sorted((n.op_type, len(n.input)) for n in mp.graph.node if n.op_type in PLAIN)
        if joins != [("Max", 3), ("Mean", 3), ("Min", 3), ("Sum", 3)]:
            raise SystemExit(f"{path}: variadic nodes {joins}, want three-input Max, Mean, Min and Sum")
        print(f"wrote {path} ({os.path.getsize(path)} bytes): {[n.op_type for n in mp.graph.node]}")

    # The float64 reference on the float32 weights.
    tr.reference(tr.float64_module(m, Tiny), {"input": x32.double()}, labels, paths,
                 os.path.join(args.out, "variadic_tiny_ref.npz"))


if __name__ == "__main__":
    main()
