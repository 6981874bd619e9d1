#!/usr/bin/python3
"""Export a tiny CNN with grouped (not depthwise) Conv and ConvTranspose
layers and a spatial mean head, the test of pruning channels group by
group and through ReduceMean on a real torch.onnx export.

Usage (from the repository root, Debian's PyTorch and onnx):

    /usr/bin/python3 scripts/make_grouped_tiny.py [--out testdata/models]

Writes grouped_tiny_op13.onnx and grouped_tiny_op17.onnx (the same module
exported by torch.onnx.export at opsets 13 and 17): input "input" N x 1 x 8
x 8 (float32, dynamic batch), output "logits" N x 3. Random weights (seed 1):

    h = Relu(Conv 3x3 1->8 (pad 1))                       N x 8 x 8 x 8
    h = Relu(Conv 3x3 8->8, groups 2 (pad 1))             ResNeXt-style
    h = Relu(ConvTranspose 2x2 8->6, groups 2, stride 2)  N x 6 x 16 x 16
    h = Relu(Conv 3x3 6->6 (pad 1))
    logits = Linear 6->3 of h.mean(dim=(2, 3))            ReduceMean, keepdims 0

Also writes grouped_tiny_ref.npz: "input" (4 x 1 x 8 x 8, standard normal
rounded to float32, seed 2), "labels" (int64, 4, seed 2) and "logits", computed by the module in float64
on the float32 weights. The script checks both files with onnx.checker
(full check) and that they hold the grouped Conv, the grouped
ConvTranspose and a ReduceMean over axes 2, 3 with keepdims 0.
"""

import argparse
import os

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.up = nn.ConvTranspose2d(8, 6, 2, stride=2, groups=2)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.grouped(x))
        x = F.relu(self.up(x))
        x = F.relu(self.conv2(x))
        return self.fc(x.mean(dim=(2, 3)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "testdata", "models"))
    args = ap.parse_args()
    torch.manual_seed(1)
    m = Tiny().eval()
    x32 = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    labels = torch.randint(0, 3, (4,), generator=torch.Generator().manual_seed(2))
    for opset in (13, 17):
        path = os.path.join(args.out, f"grouped_tiny_op{opset}.onnx")
        torch.onnx.export(m, (x32,), path + ".tmp", input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset)
        os.replace(path + ".tmp", path)
        mp = onnx.load(path)
        onnx.checker.check_model(mp, full_check=True)
        ops = [n.op_type for n in mp.graph.node]
        grouped = sorted(n.op_type for n in mp.graph.node
                         if any(a.name == "group" and a.i == 2 for a in n.attribute))
        means = [n for n in mp.graph.node if n.op_type == "ReduceMean"]
        if grouped != ["Conv", "ConvTranspose"] or len(means) != 1:
            raise SystemExit(f"{path}: grouped nodes {grouped}, ReduceMeans {len(means)}; want a grouped Conv and ConvTranspose and one ReduceMean")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in means[0].attribute}
        if attrs.get("axes") != [2, 3] or attrs.get("keepdims") != 0:
            raise SystemExit(f"{path}: ReduceMean attributes {attrs}, want axes [2, 3], keepdims 0")
        print(f"wrote {path} ({os.path.getsize(path)} bytes): {ops}")
    m64 = Tiny().double().eval()
    m64.load_state_dict({k: v.double() for k, v in m.state_dict().items()})
    with torch.no_grad():
        logits = m64(x32.double())
    out = os.path.join(args.out, "grouped_tiny_ref.npz")
    np.savez(out + ".tmp.npz", input=x32.double().numpy(), labels=labels.numpy(), logits=logits.numpy())
    os.replace(out + ".tmp.npz", out)
    print(f"wrote {out}: logits {logits.numpy().round(4).tolist()}")


if __name__ == "__main__":
    main()
