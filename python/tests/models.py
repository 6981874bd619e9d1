"""The repository's test models (scripts/train_models.py) with the weights of testdata/models/*.onnx,
and the calibration data of testdata/ref/<model>/ (the first 32 MNIST t10k images)."""

import os
import sys

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "scripts"))

NAMES = ("mlp", "lenet", "rescnn")


def load(name, dtype=torch.float64):
    """The torch module of model `name` with the ONNX file's weights, in eval mode."""
    import onnx
    import onnx.numpy_helper
    import train_models
    m = onnx.load(os.path.join(REPO, "testdata", "models", f"{name}.onnx"))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    mod = train_models.MODELS[name][0]()
    state = {}
    for k, v in mod.state_dict().items():
        state[k] = v if k.endswith("num_batches_tracked") else torch.from_numpy(np.array(inits[k]))
    mod.load_state_dict(state, strict=True)
    return mod.to(dtype).eval()


def ref_data(name, dtype=torch.float64):
    """(inputs, labels) of testdata/ref/<name>/: 32 MNIST test images, pixels / 255."""
    d = os.path.join(REPO, "testdata", "ref", name)
    x = torch.from_numpy(np.load(os.path.join(d, "inputs.npy"))).to(dtype)
    y = torch.from_numpy(np.load(os.path.join(d, "labels.npy")))
    return x, y


def ref_meta(name):
    import json
    with open(os.path.join(REPO, "testdata", "ref", name, "meta.json")) as f:
        return json.load(f)
