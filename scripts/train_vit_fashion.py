#!/usr/bin/python3
"""Train the small Fashion-MNIST vision transformer of the head/row pruning study.

Usage (from the repository root, with Debian's PyTorch and the Debian package
dataset-fashion-mnist):

    /usr/bin/python3 scripts/train_vit_fashion.py [--out testdata/models] [--epochs 2] [--train-samples 20000]

The model (input "input" N x 1 x 28 x 28, pixels / 255; output "logits" N x 10),
written as a practitioner writes attention, so that its heads and FFN rows are
structures bitplan prune can remove:

    patches   Conv7x7 stride 7 (1 -> 64)         16 tokens + a class token, learned positions
    2 x pre-norm block:
      LayerNorm, separate q, k, v Linear(64 -> 64), 4 heads of 16
      (reshape to -1 x 17 x 4 x 16 with constant shapes, softmax(q k^T / 4) v),
      output Linear(64 -> 64), residual
      LayerNorm, Linear(64 -> 128), exact GELU, Linear(128 -> 64), residual
    LayerNorm, Linear(64 -> 10) on the class token

Training is short (by default 2 epochs over the first 20,000 training
images: about 4 CPU-minutes) and deterministic on one machine (seeds,
torch.set_num_threads(2), Adam with a one-cycle schedule, batch 128). Besides
the model the script writes fmnist_vit_ref.npz: the first 16 test images and
the module's float64 logits on them, which the Go tests compare with the
engine.
"""

import argparse
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mnist  # noqa: E402
import train_fashion  # noqa: E402
import train_models  # noqa: E402

TOKENS = 17  # 16 patches of 7 x 7 and the class token


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.h, self.dh = heads, d // heads
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.o = nn.Linear(d, d)

    def forward(self, x):
        # Constant shapes (the batch is -1): the Reshape constants are what
        # head pruning rewrites.
        q = self.q(x).reshape(-1, TOKENS, self.h, self.dh).transpose(1, 2)
        k = self.k(x).reshape(-1, TOKENS, self.h, self.dh).transpose(1, 2)
        v = self.v(x).reshape(-1, TOKENS, self.h, self.dh).transpose(1, 2)
        p = torch.softmax(q @ k.transpose(2, 3) * (self.dh ** -0.5), -1)
        y = (p @ v).transpose(1, 2).reshape(-1, TOKENS, self.h * self.dh)
        return self.o(y)


class Block(nn.Module):
    def __init__(self, d, heads, ff):
        super().__init__()
        self.n1 = nn.LayerNorm(d)
        self.att = Attention(d, heads)
        self.n2 = nn.LayerNorm(d)
        self.f1 = nn.Linear(d, ff)
        self.f2 = nn.Linear(ff, d)

    def forward(self, x):
        x = x + self.att(self.n1(x))
        return x + self.f2(F.gelu(self.f1(self.n2(x))))


class FashionViT(nn.Module):
    def __init__(self, d=64, heads=4, ff=128, layers=2, classes=10):
        super().__init__()
        self.patch = nn.Conv2d(1, d, 7, 7)
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, TOKENS, d) * 0.02)
        self.blocks = nn.Sequential(*[Block(d, heads, ff) for _ in range(layers)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(mnist.REPO, "testdata", "models"))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--train-samples", type=int, default=20000)
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    xtr, ytr = (torch.from_numpy(a[:args.train_samples]) for a in train_fashion.load("train"))
    xte, yte = (torch.from_numpy(a) for a in train_fashion.load("test"))
    train_models.MODELS["fmnist_vit"] = (FashionViT, args.epochs, 3e-3, 5, 0.75)
    model, acc, secs = train_models.train("fmnist_vit", xtr, ytr, xte, yte)
    if acc < 0.75:
        raise SystemExit(f"fmnist_vit: test accuracy {acc:.4f} below 0.75")
    path = os.path.join(args.out, "fmnist_vit.onnx")
    _, ops, size = train_models.export("fmnist_vit", model, path)
    with torch.no_grad():
        want = model.double()(xte[:16].double()).numpy()
    np.savez(os.path.join(args.out, "fmnist_vit_ref.npz"), input=xte[:16].numpy(), labels=yte[:16].numpy(), logits=want)
    nparams = sum(p.numel() for p in model.parameters())
    print(f"RESULT fmnist_vit: test accuracy {acc:.4f} ({int(round(acc * 10000))}/10000), "
          f"{nparams} params, {size} bytes, {secs:.0f}s training, ops {' '.join(sorted(set(ops)))}", flush=True)


if __name__ == "__main__":
    main()
