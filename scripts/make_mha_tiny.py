#!/usr/bin/python3
"""Export a tiny torch.nn.MultiheadAttention model, the test of head pruning in
torch's own attention export (the heads merged with the batch axis).

Usage (from the repository root, Debian's PyTorch):

    /usr/bin/python3 scripts/make_mha_tiny.py [--out testdata/models]

Writes mha_tiny.onnx: input "input" N x 5 x 8 (float32, dynamic batch),
nn.MultiheadAttention(8, 2 heads, batch_first=True) self-attention with a
residual, LayerNorm, Linear(8 -> 16), ReLU, Linear(16 -> 8), mean over the
5 positions, Linear(8 -> 3) -> "logits" N x 3. Random weights (seed 1),
plain torch.onnx.export at opset 13: as torchvision's vit_b_16, the fused
in-projection is split by Slice, and the heads are reshaped to
[T, N*heads, 4] and back to [T*N, 8] by shapes computed at run time.
"""

import argparse
import os

import torch
import torch.nn as nn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.att = nn.MultiheadAttention(8, 2, batch_first=True)
        self.norm = nn.LayerNorm(8)
        self.f1 = nn.Linear(8, 16)
        self.f2 = nn.Linear(16, 8)
        self.cls = nn.Linear(8, 3)

    def forward(self, x):
        a, _ = self.att(x, x, x, need_weights=False)
        x = self.norm(x + a)
        x = x + self.f2(torch.relu(self.f1(x)))
        return self.cls(x.mean(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "testdata", "models"))
    args = ap.parse_args()
    torch.manual_seed(1)
    m = Tiny().eval()
    x = torch.randn(2, 5, 8)
    path = os.path.join(args.out, "mha_tiny.onnx")
    torch.onnx.export(m, (x,), path + ".tmp", input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=13)
    os.replace(path + ".tmp", path)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
