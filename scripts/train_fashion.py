#!/usr/bin/python3
"""Train the Fashion-MNIST CNN of the time-to-a-plan benchmark and export it.

Usage (from the repository root, with Debian's PyTorch and the Debian package
dataset-fashion-mnist, which installs the IDX files under
/usr/share/datasets/fashion-mnist):

    /usr/bin/python3 scripts/train_fashion.py [--out testdata/models] [--calib DIR]

The model (input "input" N x 1 x 28 x 28, pixels / 255; output "logits" N x 10):

    Conv3x3(1->16, pad 1) ReLU MaxPool2      16 x 14 x 14
    Conv3x3(16->32, pad 1) ReLU MaxPool2     32 x 7 x 7
    Conv3x3(32->64, pad 1) ReLU MaxPool2     64 x 3 x 3
    Flatten Linear(576->32) ReLU Linear(32->10)

42,090 parameters: the "~40k-parameter Fashion-MNIST CNN" of issue 20.
Training is deterministic on one machine (seeds, torch.set_num_threads(2),
Adam with a one-cycle schedule, batch 128). The exported graph is checked
with onnx and against the module's logits (scripts/onnx_torch.py).

With --calib DIR the script also writes the first N training images and
labels (--samples, default 512) as DIR/x.npy (float32 N x 1 x 28 x 28) and
DIR/y.npy (int64 N), the calibration set of `bitplan plan --inputs --labels`.
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
import onnx_torch  # noqa: E402
import train_models  # noqa: E402

FASHION = "/usr/share/datasets/fashion-mnist"


class FashionCNN(nn.Module):
    """Three 3x3 conv blocks and a two-layer head (42,090 parameters)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(64 * 3 * 3, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = self.pool(F.relu(self.conv3(x)))
        x = F.relu(self.fc1(self.flatten(x)))
        return self.fc2(x)


def load(split):
    """Fashion-MNIST split "train" or "test": float32 N x 1 x 28 x 28 (pixels / 255), int64 labels."""
    prefix = {"train": "train", "test": "t10k"}[split]
    x = mnist._read_idx(os.path.join(FASHION, f"{prefix}-images-idx3-ubyte.gz"), 0x803, 3)
    y = mnist._read_idx(os.path.join(FASHION, f"{prefix}-labels-idx1-ubyte.gz"), 0x801, 1)
    return (x.astype(np.float32) / np.float32(255.0)).reshape(-1, 1, 28, 28), y.astype(np.int64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(mnist.REPO, "testdata", "models"))
    ap.add_argument("--calib", default="", help="also write the calibration set to this folder")
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    xtr, ytr = load("train")
    if args.calib:
        os.makedirs(args.calib, exist_ok=True)
        np.save(os.path.join(args.calib, "x.npy"), xtr[:args.samples])
        np.save(os.path.join(args.calib, "y.npy"), ytr[:args.samples])
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    xtr, ytr = torch.from_numpy(xtr), torch.from_numpy(ytr)
    xte, yte = (torch.from_numpy(a) for a in load("test"))
    train_models.MODELS["fashion_cnn"] = (FashionCNN, args.epochs, 3e-3, 4, 0.88)
    model, acc, secs = train_models.train("fashion_cnn", xtr, ytr, xte, yte)
    if acc < 0.88:
        raise SystemExit(f"fashion_cnn: test accuracy {acc:.4f} below 0.88")
    path = os.path.join(args.out, "fashion_cnn.onnx")
    m, ops, size = train_models.export("fashion_cnn", model, path)
    with torch.no_grad():
        want = model(xte[:256]).double()
    got = onnx_torch.run(m, xte[:256].double())
    err = (got - want).abs().max().item()
    if err > 1e-4:
        raise SystemExit(f"fashion_cnn: ONNX graph logits differ from module by {err:.3g}")
    nparams = sum(p.numel() for p in model.parameters())
    print(f"RESULT fashion_cnn: test accuracy {acc:.4f} ({int(round(acc * 10000))}/10000), "
          f"{nparams} params, {size} bytes, {secs:.0f}s training, "
          f"max |ONNX - module| logit diff {err:.2g}, ops {' '.join(ops)}", flush=True)


if __name__ == "__main__":
    main()
