#!/usr/bin/python3
"""Export tiny bidirectional LSTM and GRU classifiers, the test of hidden-unit
pruning through torch's bidirectional export (the directions merged with the
hidden units: [T, N, 2, H] reshaped to [T, N, 2*H]).

Usage (from the repository root, Debian's PyTorch):

    /usr/bin/python3 scripts/make_birnn_tiny.py [--out testdata/models]

Writes birnn_lstm_tiny.onnx and birnn_gru_tiny.onnx: input "input" N x 7 x 6
(float32, dynamic batch), nn.LSTM or nn.GRU(6, 5, 2 layers, batch_first=True,
bidirectional=True), the last step's 10 features through Linear(10 -> 3) ->
"logits" N x 3. Random weights (seed 1), plain torch.onnx.export at opset 13:
the initial states are a ConstantOfShape of a shape computed from the batch
size, sliced per layer.
"""

import argparse
import os

import torch
import torch.nn as nn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Tiny(nn.Module):
    def __init__(self, kind):
        super().__init__()
        cell = nn.LSTM if kind == "lstm" else nn.GRU
        self.rnn = cell(6, 5, 2, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(10, 3)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y[:, -1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "testdata", "models"))
    args = ap.parse_args()
    for kind in ("lstm", "gru"):
        torch.manual_seed(1)
        m = Tiny(kind).eval()
        x = torch.randn(2, 7, 6)
        path = os.path.join(args.out, f"birnn_{kind}_tiny.onnx")
        torch.onnx.export(m, (x,), path + ".tmp", input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=13)
        os.replace(path + ".tmp", path)
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
