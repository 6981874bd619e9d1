#!/usr/bin/python3
"""Train the Fashion-MNIST models of the plan-quality study and export them.

Usage (from the repository root, with Debian's PyTorch and the Debian package
dataset-fashion-mnist, which installs the IDX files under
/usr/share/datasets/fashion-mnist):

    nice -n 10 /usr/bin/python3 scripts/train_study.py [--only fmnist_mbv2,fmnist_vit] [--out testdata/models]

Models (input "input" N x 1 x 28 x 28, pixels / 255; output "logits" N x 10):

  fmnist_mbv2  a MobileNetV2-style CNN (Sandler et al., arXiv:1801.04381):
               stem Conv3x3/2 1->8 BN ReLU6 (8 x 14 x 14), inverted residual
               blocks (expand 1x1, depthwise 3x3, project 1x1, BN after each,
               ReLU6 after the first two, identity shortcut when shape allows)
               t=1 8->8, t=4 8->12 /2, t=4 12->12, t=4 12->16 /2,
               Conv1x1 16->64 BN ReLU6, global average pool, Linear 64->10.
  fmnist_vit   a small pre-norm vision transformer (Dosovitskiy et al.,
               arXiv:2010.11929): patch Conv7x7/7 1->32 (16 tokens), class
               token, learned positions, 2 blocks (2 heads, MLP 64, GELU),
               LayerNorm, Linear 32->10.

The residual CNN of the study is testdata/models/fmnist_rescnn.onnx
(scripts/train_models.py --only fmnist_rescnn). fmnist_vit is not committed
yet: its training did not finish on the shared machine in the session that
wrote the study (its first epoch alone took over 30 minutes of wall time).

Training is deterministic on one machine (seeds, torch.set_num_threads(2),
Adam with a one-cycle schedule, batch 128, 3 epochs on the 60,000 training
images); the test accuracy printed is on the 10,000 t10k images. The export
is checked with onnx and against the module's logits (scripts/onnx_torch.py).
"""

import argparse
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mnist  # noqa: E402
import onnx_torch  # noqa: E402
import train_fashion  # noqa: E402
import train_models  # noqa: E402
import zoo  # noqa: E402  (the zoo's pre-norm attention block)


def conv_bn(cin, cout, k, stride=1, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2's block: expand 1x1 (t > 1), depthwise 3x3, linear project 1x1."""

    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hid = cin * t
        layers = []
        if t != 1:
            layers.append(conv_bn(cin, hid, 1))
        layers += [conv_bn(hid, hid, 3, stride, groups=hid), conv_bn(hid, cout, 1, act=False)]
        self.body = nn.Sequential(*layers)
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.skip else y


class MBV2(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn(1, 8, 3, 2)
        self.blocks = nn.Sequential(
            InvertedResidual(8, 8, 1, 1),
            InvertedResidual(8, 12, 2, 4),
            InvertedResidual(12, 12, 1, 4),
            InvertedResidual(12, 16, 2, 4),
        )
        self.last = conv_bn(16, 64, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.last(self.blocks(self.stem(x)))
        return self.fc(self.flatten(self.pool(x)))


class ViT(nn.Module):
    def __init__(self, patch=7, d=32, heads=2, ff=64, layers=2):
        super().__init__()
        self.patch = nn.Conv2d(1, d, patch, patch)
        n = (28 // patch) ** 2
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, n + 1, d) * 0.02)
        self.blocks = nn.Sequential(*[zoo.PreNormBlock(d, heads, ff) for _ in range(layers)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 10)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


# name: (constructor, epochs, learning rate, seed, minimum test accuracy)
STUDY = {
    "fmnist_mbv2": (MBV2, 3, 1e-2, 5, 0.80),
    "fmnist_vit": (ViT, 3, 3e-3, 6, 0.80),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(mnist.REPO, "testdata", "models"))
    ap.add_argument("--only", default=",".join(STUDY))
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    xtr, ytr = (torch.from_numpy(a) for a in train_fashion.load("train"))
    xte, yte = (torch.from_numpy(a) for a in train_fashion.load("test"))
    for name in args.only.split(","):
        if name not in STUDY:
            raise SystemExit(f"unknown model {name!r}, expected one of {sorted(STUDY)}")
        ctor, epochs, lr, seed, need = STUDY[name]
        train_models.MODELS[name] = (ctor, epochs, lr, seed, need)
        model, acc, secs = train_models.train(name, xtr, ytr, xte, yte)
        if acc < need:
            raise SystemExit(f"{name}: test accuracy {acc:.4f} below {need}")
        path = os.path.join(args.out, name + ".onnx")
        m, ops, size = train_models.export(name, model, path)
        with torch.no_grad():
            want = model(xte[:256]).double()
        try:
            got = onnx_torch.run(m, xte[:256].double())
            err = (got - want).abs().max().item()
        except NotImplementedError as e:
            # The reference evaluator lacks the attention graph's shape ops;
            # the study prints the Go engine's float accuracy on the same
            # test images, which must match the accuracy printed here.
            print(f"{name}: export not checked by onnx_torch ({e})", flush=True)
            err = float("nan")
        if err > 1e-4:
            raise SystemExit(f"{name}: ONNX graph logits differ from module by {err:.3g}")
        nparams = sum(p.numel() for p in model.parameters())
        print(f"RESULT {name}: test accuracy {acc:.4f} ({int(round(acc * 10000))}/10000), "
              f"{nparams} params, {size} bytes, {secs:.0f}s training, "
              f"max |ONNX - module| logit diff {err:.2g}, ops {' '.join(sorted(set(ops)))}", flush=True)


if __name__ == "__main__":
    main()
