#!/usr/bin/python3
"""Train the MNIST and Fashion-MNIST test models and export them to ONNX.

Usage (from the repository root, with Debian's PyTorch):

    /usr/bin/python3 scripts/train_models.py [--out testdata/models] [--only mlp,lenet]

Models (input "input" N x 1 x 28 x 28, output "logits" N x 10, dynamic batch):

  mlp     Flatten -> Linear(784,256) -> ReLU -> Linear(256,128) -> ReLU -> Linear(128,10)
  lenet   LeNet-5 (LeCun et al. 1998): Conv5x5(6, pad 2) -> ReLU -> MaxPool2 ->
          Conv5x5(16) -> ReLU -> MaxPool2 -> Flatten -> Linear(400,120) -> ReLU ->
          Linear(120,84) -> ReLU -> Linear(84,10)
  fmnist_rescnn  rescnn's architecture trained on Fashion-MNIST (Debian's
          dataset-fashion-mnist package)
  rescnn  small residual CNN with BatchNorm (He et al. 2016 basic block with a
          1x1 strided downsample convolution on the skip path) and a
          depthwise-separable block (Howard et al. 2017, MobileNet: depthwise
          3x3 Conv with group=C, then pointwise 1x1 Conv), GlobalAveragePool
          and a final Linear.

Training is deterministic on one machine: fixed seeds, torch.set_num_threads(2),
a seeded shuffling generator, Adam. The ONNX files are exported with opset 13
in inference form; rescnn keeps its BatchNormalization nodes (exported with
TrainingMode.PRESERVE while the module is in eval() mode, which skips the
Conv+BN fusion pass). The script checks every exported graph with onnx and
compares its float32 logits (evaluated by scripts/onnx_torch.py) with the
torch module's, then prints test accuracy, which is recorded in
testdata/models/README.md.
"""

import argparse
import os
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mnist  # noqa: E402
import onnx_torch  # noqa: E402

OPSET = 13


class MLP(nn.Module):
    """Three-layer perceptron 784-256-128-10."""

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(784, 256)
        self.fc2 = nn.Linear(256, 128)
        self.fc3 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.flatten(x)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class LeNet(nn.Module):
    """LeNet-5 style CNN (LeCun et al. 1998) with ReLU and max pooling."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))   # 6 x 14 x 14
        x = self.pool(F.relu(self.conv2(x)))   # 16 x 5 x 5
        x = self.flatten(x)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class ResCNN(nn.Module):
    """Small residual CNN with BatchNorm and a depthwise-separable block.

    stem:  Conv3x3(1->16) BN ReLU                                  16 x 28 x 28
    block: Conv3x3/2(16->32) BN ReLU Conv3x3(32->32) BN
           + skip Conv1x1/2(16->32) BN (downsample), Add, ReLU     32 x 14 x 14
    dw:    depthwise Conv3x3/2(32, group=32) BN ReLU                32 x 7 x 7
    pw:    pointwise Conv1x1(32->64) BN ReLU                        64 x 7 x 7
    head:  GlobalAveragePool Flatten Linear(64->10)

    Convolutions followed by BatchNorm have no bias (as in ResNet), so their
    ONNX Conv nodes have two inputs.
    """

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(16)
        self.conv1 = nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.down = nn.Conv2d(16, 32, 1, stride=2, bias=False)
        self.down_bn = nn.BatchNorm2d(32)
        self.dw = nn.Conv2d(32, 32, 3, stride=2, padding=1, groups=32, bias=False)
        self.dw_bn = nn.BatchNorm2d(32)
        self.pw = nn.Conv2d(32, 64, 1, bias=False)
        self.pw_bn = nn.BatchNorm2d(64)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem(x)))
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        x = F.relu(y + self.down_bn(self.down(x)))
        x = F.relu(self.dw_bn(self.dw(x)))
        x = F.relu(self.pw_bn(self.pw(x)))
        x = self.flatten(self.pool(x))
        return self.fc(x)


# name -> (constructor, epochs, learning rate, seed, required test accuracy,
# dataset: "mnist" or "fashion" for Fashion-MNIST)
MODELS = {
    "mlp": (MLP, 4, 2e-3, 1, 0.97, "mnist"),
    "lenet": (LeNet, 5, 2e-3, 2, 0.98, "mnist"),
    "rescnn": (ResCNN, 3, 3e-3, 3, 0.98, "mnist"),
    # The residual CNN trained on Fashion-MNIST: the model of the
    # verification study (docs/verification.md), where Ω misleads the ILP.
    "fmnist_rescnn": (ResCNN, 3, 3e-3, 4, 0.85, "fashion"),
}


def accuracy(model, x, y, batch=1000):
    """Fraction of correct argmax predictions of model on (x, y)."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x)


def train(name, xtr, ytr, xte, yte):
    """Train model `name` deterministically; return (module, test accuracy, seconds)."""
    ctor, epochs, lr, seed = MODELS[name][:4]
    torch.manual_seed(seed)
    model = ctor()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * ((len(xtr) + 127) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        total = 0.0
        for i in range(0, len(xtr), 128):
            idx = perm[i:i + 128]
            opt.zero_grad()
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        acc = accuracy(model, xte, yte)
        print(f"{name}: epoch {ep + 1}/{epochs} train loss {total / len(xtr):.4f} "
              f"test acc {acc:.4f} ({time.time() - t0:.0f}s)", flush=True)
    model.eval()
    return model, accuracy(model, xte, yte), time.time() - t0


def inline_identity_initializers(m):
    """Replace Identity nodes whose input is an initializer by a copy of it.

    torch.onnx.export deduplicates initializers with equal values and feeds
    the duplicates through Identity nodes. In rescnn, bn2.bias and
    down_bn.bias receive identical gradients (both feed the residual Add)
    from the same zero initialisation, so Adam keeps them equal and the
    export turns down_bn.bias into Identity(bn2.bias). This pass restores
    one initializer per parameter so every BatchNormalization reads its own
    initializers. Returns the number of nodes removed.
    """
    inits = {t.name: t for t in m.graph.initializer}
    keep, removed = [], 0
    for n in m.graph.node:
        if n.op_type == "Identity" and n.input[0] in inits and n.output[0] not in inits:
            t = onnx.TensorProto()
            t.CopyFrom(inits[n.input[0]])
            t.name = n.output[0]
            m.graph.initializer.append(t)
            removed += 1
        else:
            keep.append(n)
    del m.graph.node[:]
    m.graph.node.extend(keep)
    return removed


def export(name, model, path):
    """Export model (in eval mode) to ONNX at path and validate the graph."""
    model.eval()
    dummy = torch.zeros(2, 1, 28, 28)
    torch.onnx.export(
        model, dummy, path,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
        opset_version=OPSET,
        training=torch.onnx.TrainingMode.PRESERVE,
        do_constant_folding=True,
    )
    m = onnx.load(path)
    if inline_identity_initializers(m):
        onnx.save(m, path)
    onnx.checker.check_model(m, full_check=True)
    ops = [n.op_type for n in m.graph.node]
    for n in m.graph.node:
        if not n.name:
            raise RuntimeError(f"{name}: unnamed {n.op_type} node")
        if n.op_type == "BatchNormalization":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            if len(n.output) != 1 or attrs.get("training_mode", 0) != 0:
                raise RuntimeError(f"{name}: BatchNormalization {n.name} not in inference form")
    nbn = sum(1 for m_ in model.modules() if isinstance(m_, nn.BatchNorm2d))
    if ops.count("BatchNormalization") != nbn:
        raise RuntimeError(f"{name}: {ops.count('BatchNormalization')} BN nodes in ONNX, module has {nbn}")
    size = os.path.getsize(path)
    if size >= 2 << 20:
        raise RuntimeError(f"{name}: {path} is {size} bytes, limit 2 MB")
    return m, ops, size


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(mnist.REPO, "testdata", "models"))
    ap.add_argument("--only", default=",".join(MODELS), help="comma-separated model names")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    sets = {}

    def dataset(kind):
        if kind not in sets:
            sets[kind] = [torch.from_numpy(a) for split in ("train", "test")
                          for a in mnist.load(split, dataset=kind)]
        return sets[kind]

    os.makedirs(args.out, exist_ok=True)
    for name in args.only.split(","):
        if name not in MODELS:
            raise SystemExit(f"unknown model {name!r}, expected one of {sorted(MODELS)}")
        xtr, ytr, xte, yte = dataset(MODELS[name][5])
        model, acc, secs = train(name, xtr, ytr, xte, yte)
        need = MODELS[name][4]
        if acc < need:
            raise SystemExit(f"{name}: test accuracy {acc:.4f} below required {need}")
        path = os.path.join(args.out, f"{name}.onnx")
        m, ops, size = export(name, model, path)
        # The ONNX graph, run by the torch interpreter on the file's own
        # initializers, must reproduce the module's logits.
        with torch.no_grad():
            want = model(xte[:256]).double()
        got = onnx_torch.run(m, xte[:256].double())
        err = (got - want).abs().max().item()
        if err > 1e-4:
            raise SystemExit(f"{name}: ONNX graph logits differ from module by {err:.3g}")
        nparams = sum(p.numel() for p in model.parameters())
        print(f"RESULT {name}: test accuracy {acc:.4f} ({int(round(acc * 10000))}/10000), "
              f"{nparams} params, {size} bytes, {secs:.0f}s training, "
              f"max |ONNX - module| logit diff {err:.2g}, ops {' '.join(ops)}", flush=True)


if __name__ == "__main__":
    main()
