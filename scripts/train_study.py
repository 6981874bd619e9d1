#!/usr/bin/python3
"""Train the Fashion-MNIST models of the plan-quality study and export them.

Usage (from the repository root, with Debian's PyTorch and the Debian package
dataset-fashion-mnist, which installs the IDX files under
/usr/share/datasets/fashion-mnist):

    nice -n 10 /usr/bin/python3 scripts/train_study.py [--only fmnist_mbv2,fmnist_lstm,fmnist_bilstm] [--out testdata/models]

Models (input "input" N x 1 x 28 x 28, pixels / 255; output "logits" N x 10):

  fmnist_mbv2  a MobileNetV2-style CNN (Sandler et al., arXiv:1801.04381):
               stem Conv3x3/2 1->8 BN ReLU6 (8 x 14 x 14), inverted residual
               blocks (expand 1x1, depthwise 3x3, project 1x1, BN after each,
               ReLU6 after the first two, identity shortcut when shape allows)
               t=1 8->8, t=4 8->12 /2, t=4 12->12, t=4 12->16 /2,
               Conv1x1 16->64 BN ReLU6, global average pool, Linear 64->10.
  fmnist_lstm  an LSTM classifier reading the image's 28 rows as a sequence
               of 28 steps of 28 features: LSTM 28->64 (one layer, forward,
               zero initial states), the last hidden state, Linear 64->10.
               Exported as Reshape, Transpose, LSTM, Squeeze/Gather, Gemm.
  fmnist_bilstm  the same rows through a two-layer bidirectional LSTM
               (28 -> 2 x 32, 64 -> 2 x 32, zero initial states), the last
               step's 64 features y[:, -1], Linear 64->10. Exported as
               torch does (Y transposed to T x N x 2 x 32 and reshaped to
               T x N x 64 after each layer): the test of pruning each
               direction's hidden units on its own.

The residual CNN of the study is testdata/models/fmnist_rescnn.onnx
(scripts/train_models.py --only fmnist_rescnn) and its vision transformer
testdata/models/fmnist_vit.onnx (scripts/train_vit_fashion.py).

Training is deterministic on one machine (seeds, torch.set_num_threads(2),
one thread for fmnist_lstm and fmnist_bilstm,
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


class LSTM(nn.Module):
    """Rows as time steps: N x 1 x 28 x 28 -> 28 steps of 28 features."""

    def __init__(self, hidden=64):
        super().__init__()
        self.lstm = nn.LSTM(28, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, 10)

    def forward(self, x):
        _, (h, _) = self.lstm(x.reshape(-1, 28, 28))
        return self.fc(h[-1])


class BiLSTM(nn.Module):
    """Rows as time steps through two bidirectional LSTM layers."""

    def __init__(self, hidden=32):
        super().__init__()
        self.lstm = nn.LSTM(28, hidden, num_layers=2, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, 10)

    def forward(self, x):
        y, _ = self.lstm(x.reshape(-1, 28, 28))
        return self.fc(y[:, -1])


# name: (constructor, epochs, learning rate, seed, minimum test accuracy)
STUDY = {
    "fmnist_mbv2": (MBV2, 3, 1e-2, 5, 0.80),
    "fmnist_lstm": (LSTM, 3, 5e-3, 7, 0.80),
    "fmnist_bilstm": (BiLSTM, 3, 5e-3, 7, 0.80),
}

# Intra-op threads per model. The LSTM's 28 steps are many small ops: on the
# shared machine two threads made a batch 40 times slower than one (spinning
# threads under contention), so it trains on one.
THREADS = {"fmnist_mbv2": 2, "fmnist_lstm": 1, "fmnist_bilstm": 1}


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
        torch.set_num_threads(THREADS[name])
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
