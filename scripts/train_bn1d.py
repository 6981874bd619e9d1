"""Train bn1d, a 1-D convolutional classifier with BatchNorm1d, and export it.

The test model for data-free calibration of 1-D (speech-like) models, the
setting of Q-ASR: a Fashion-MNIST image is read as a sequence of 28 frames
of 28 features (input N×28×28: features × time, as a spectrogram is laid
out for Conv1d), and the network is

    Conv1d(28→32, k5, pad 2) BN ReLU  Conv1d(32→32, k3, stride 2, pad 1) BN ReLU
    Conv1d(32→48, k3, pad 1) BN ReLU  global average pool over time  Linear(48→10)

Fashion-MNIST comes from Debian's dataset-fashion-mnist package
(/usr/share/datasets/fashion-mnist), pixels / 255. Two epochs of Adam with a
seeded shuffle; exported at opset 13 in inference form with the
BatchNormalization nodes kept (TrainingMode.PRESERVE in eval mode, which
skips the Conv+BN fusion), and checked with onnx. torch exports the mean over time as
ReduceMean, which is rewritten as the equivalent GlobalAveragePool +
Flatten. Writes testdata/models/bn1d.onnx and prints the test accuracy.

    /usr/bin/python3 scripts/train_bn1d.py
"""

import gzip
import os

import numpy as np
import onnx
import torch
from torch import nn

DIR = "/usr/share/datasets/fashion-mnist"
OUT = os.path.join("testdata", "models", "bn1d.onnx")


def idx(name, images):
    with gzip.open(os.path.join(DIR, name)) as f:
        b = f.read()
    if images:
        n, h, w = (int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(3))
        return np.frombuffer(b, np.uint8, offset=16).reshape(n, h, w).astype(np.float32) / 255
    return np.frombuffer(b, np.uint8, offset=8).astype(np.int64)


class BN1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(28, 32, 5, padding=2, bias=False), nn.BatchNorm1d(32), nn.ReLU(),
            nn.Conv1d(32, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm1d(32), nn.ReLU(),
            nn.Conv1d(32, 48, 3, padding=1, bias=False), nn.BatchNorm1d(48), nn.ReLU(),
        )
        self.fc = nn.Linear(48, 10)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=2))


def pool_as_global_average(m):
    """Replace ReduceMean over time (axes [2], keepdims 0), as torch exports
    x.mean(dim=2), by the equivalent GlobalAveragePool + Flatten, operators
    the Go engine runs."""
    for i, n in enumerate(m.graph.node):
        if n.op_type != "ReduceMean":
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        if list(attrs.get("axes", [])) != [2] or attrs.get("keepdims", 1) != 0:
            raise RuntimeError(f"ReduceMean {n.name} with {attrs}, want axes [2], keepdims 0")
        pooled = n.output[0] + "_pooled"
        gap = onnx.helper.make_node("GlobalAveragePool", [n.input[0]], [pooled], name=n.name + "_gap")
        flat = onnx.helper.make_node("Flatten", [pooled], [n.output[0]], name=n.name + "_flatten", axis=1)
        m.graph.node.remove(n)
        m.graph.node.insert(i, flat)
        m.graph.node.insert(i, gap)
        return m
    raise RuntimeError("no ReduceMean node")


def main():
    torch.manual_seed(1)
    torch.set_num_threads(2)
    xtr, ytr = torch.from_numpy(idx("train-images-idx3-ubyte.gz", True)), torch.from_numpy(idx("train-labels-idx1-ubyte.gz", False))
    xte, yte = torch.from_numpy(idx("t10k-images-idx3-ubyte.gz", True)), torch.from_numpy(idx("t10k-labels-idx1-ubyte.gz", False))
    model = BN1d()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(2)
    for ep in range(2):
        model.train()
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), 128):
            j = perm[i:i + 128]
            loss = nn.functional.cross_entropy(model(xtr[j]), ytr[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = (model(xte).argmax(1) == yte).float().mean().item()
        print(f"epoch {ep + 1}: test accuracy {acc:.4f}")
    model.eval()
    torch.onnx.export(model, torch.zeros(2, 28, 28), OUT, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, opset_version=13,
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True)
    m = pool_as_global_average(onnx.load(OUT))
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, OUT)
    ops = [n.op_type for n in m.graph.node]
    if ops.count("BatchNormalization") != 3:
        raise RuntimeError(f"{OUT}: {ops.count('BatchNormalization')} BatchNormalization nodes, want 3 ({ops})")
    print(f"{OUT}: {ops}, test accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
