#!/usr/bin/python3
"""Export a tiny CNN that writes into computed tensors with ScatterND and
ScatterElements, the test of the engine's scatter kernels on a real
torch.onnx export.

Usage (from the repository root, Debian's PyTorch and onnx):

    /usr/bin/python3 scripts/make_scatter_tiny.py [--out testdata/models]

Writes scatter_tiny_op13.onnx and scatter_tiny_op17.onnx (the same module
exported by torch.onnx.export at opsets 13 and 17): inputs "input"
N x 1 x 8 x 8 (float32) and "index" N x 3 x 8 x 2 (int64), both with a
dynamic batch, output "logits" N x 3. Random weights (seed 1):

    a = Conv 3x3 1->4 (pad 1), h = Relu(a), b = Conv 1x1 4->3 of h
    h2 = h.clone(); h2[:, 0] = tanh(b[:, 1])    ScatterND (index_put; its indices
    h2[:, :, 0] = a[:, :, 1]                     ScatterND  from shape arithmetic)
    s3 = torch.scatter(h2, 3, index, sigmoid(b)[..., :2])  ScatterElements, computed indices
    sa = torch.scatter_add(b, 1, zeros_like(a[:, :2], int64) + [2, 0], a[:, :2])
        ScatterElements into ConstantOfShape and Add (opset 13), reduction add (17)
    logits = Linear 4->3 (s3.mean((2, 3))) + Linear 3->3 (sa.mean((2, 3)))
             + Linear 16->3 (s3[:, :, 0, :4] flattened)

The "index" input holds two different widths per row (the first two of a
random permutation of 8): PyTorch's scatter gives every one of duplicate
indices the derivative, where the written value is only the last one's (the
rule of bitplan's engine and ONNX Runtime), so the reference has none;
the Go tests check duplicates on their own graphs.

Also writes scatter_tiny_ref.npz, computed by the module in float64 on the
float32 weights: "input" (4 x 1 x 8 x 8, standard normal rounded to
float32, seed 2), "index" (4 x 3 x 8 x 2, seed 4), "labels" (int64, 4),
"logits" (4 x 3), "loss" (mean cross-entropy), and per parameter (its
initializer name) "grad.<name>", "v.<name>" (a Rademacher vector, seed 3)
and "hv.<name>" = H v by double backprop. The script checks that both files
pass onnx.checker (full check), hold every parameter as an initializer of
its own name and contain two ScatterND nodes and two ScatterElements nodes
(one with reduction add at opset 17), and that the ONNX graphs evaluated by
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


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_a = nn.Conv2d(1, 4, 3, padding=1)
        self.conv_b = nn.Conv2d(4, 3, 1)
        self.head_s = nn.Linear(4, 3)
        self.head_a = nn.Linear(3, 3)
        self.head_r = nn.Linear(16, 3)
        self.register_buffer("chans", torch.tensor([2, 0]).reshape(1, 2, 1, 1), persistent=False)

    def forward(self, x, index):
        a = self.conv_a(x)
        h = torch.relu(a)
        b = self.conv_b(h)
        h2 = h.clone()
        h2[:, 0] = torch.tanh(b[:, 1])
        h2[:, :, 0] = a[:, :, 1]
        s3 = torch.scatter(h2, 3, index, torch.sigmoid(b)[:, :, :, :2])
        src = a[:, :2]
        sa = torch.scatter_add(b, 1, torch.zeros_like(src, dtype=torch.int64) + self.chans, src)
        return (self.head_s(s3.mean((2, 3))) + self.head_a(sa.mean((2, 3)))
                + self.head_r(s3[:, :, 0, :4].flatten(1)))


def main():
    args, m, x32, labels = tr.setup(__doc__, Tiny)
    gi = torch.Generator().manual_seed(4)
    index = torch.stack([torch.randperm(8, generator=gi)[:2] for _ in range(4 * 3 * 8)]).reshape(4, 3, 8, 2)
    paths = {}
    for opset in (13, 17):
        path = os.path.join(args.out, f"scatter_tiny_op{opset}.onnx")
        mp = tr.export(m, {"input": x32, "index": index}, path, opset, [k for k, _ in m.named_parameters()])
        paths[opset] = path
        ops = [n.op_type for n in mp.graph.node]
        adds = [n for n in mp.graph.node if n.op_type == "ScatterElements"
                and any(a.name == "reduction" and a.s == b"add" for a in n.attribute)]
        if ops.count("ScatterND") != 2 or ops.count("ScatterElements") != 2 or len(adds) != (opset >= 16):
            raise SystemExit(f"{path}: nodes {ops}, want two ScatterND and two ScatterElements ({len(adds)} adding)")
        print(f"wrote {path} ({os.path.getsize(path)} bytes): {ops.count('ScatterND')} ScatterND, "
              f"{ops.count('ScatterElements')} ScatterElements ({len(adds)} with reduction add), {len(ops)} nodes")

    # The float64 reference on the float32 weights.
    tr.reference(tr.float64_module(m, Tiny), {"input": x32.double(), "index": index}, labels, paths,
                 os.path.join(args.out, "scatter_tiny_ref.npz"))


if __name__ == "__main__":
    main()
