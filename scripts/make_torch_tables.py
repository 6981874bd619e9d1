#!/usr/bin/python3
"""Write the cross-check references of the PyTorch producer (python/bitplan_torch).

Usage (from the repository root, with Debian's PyTorch):

    /usr/bin/python3 scripts/make_torch_tables.py [--only mlp,lenet,rescnn] [--verify]

For each test model, the PyTorch module of scripts/train_models.py is loaded
with the weights of testdata/models/<model>.onnx (float64) and evaluated on
the first N = 8 calibration images of testdata/ref/<model>/ (MNIST t10k). bitplan_torch then computes, and this script writes to
testdata/torch/<model>.json:

  hutchinson    the sensitivity table (Hutchinson, seed 1, tol 0.3, 10..40
                probes, bits 2,3,4,5,6,8, default quantizer): what
                `bitplan trace --format json` prints for the ONNX file on the
                same data and seed
  hutchpp       the table from Hutch++ with 12 products, seed 1
  exact_traces  exact Tr(H_ii) over the weights of every unit with at most
                EXACT_LIMIT weights, or of the smallest unit (one double-backward
                product per weight; the Go test recomputes them, so few)
  quant         Δ² = ||Q_b(W) - W||^2 for every quantizer of bitplan's
                --quantizer flag (symmetric|asymmetric, per-channel|per-tensor,
                minmax|mse) and b = 1 (asymmetric only), 2, 4, 8

The Go test plan/torch_test.go recomputes all of it with bitplan's own
engine, estimators and quantizers and compares. --verify recomputes and
compares with the committed files instead of writing them.
"""

import argparse
import json
import math
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "python", "tests"))
import models  # noqa: E402  (python/tests/models.py)
from bitplan_torch import Quantizer, sensitivity_table, write_table  # noqa: E402
from bitplan_torch.units import find_units  # noqa: E402

EXACT_LIMIT = 150  # exact traces of units with at most this many weights (else the smallest unit)
N = 8  # calibration samples: the first N of testdata/ref/<model>/inputs.npy (keeps the Go test fast)
BITS = [2, 3, 4, 5, 6, 8]
SETTINGS = {"n": N, "seed": 1, "tol": 0.3, "min_probes": 10, "max_probes": 40, "matvecs": 12,
            "bits": [str(b) for b in BITS], "quantizer": "symmetric,per-channel,minmax"}
QUANTIZERS = [f"{s},{g},{c}" for s in ("symmetric", "asymmetric") for g in ("per-channel", "per-tensor")
              for c in ("minmax", "mse")]


def reference(name):
    model = models.load(name)
    x, y = models.ref_data(name)
    x, y = x[:N], y[:N]
    batches = [(x, y)]
    common = dict(bits=BITS, quantizer=SETTINGS["quantizer"], seed=SETTINGS["seed"], model_name=name, progress=False)
    t0 = time.time()
    hut = sensitivity_table(model, batches, method="hutchinson", tol=SETTINGS["tol"],
                            min_probes=SETTINGS["min_probes"], max_probes=SETTINGS["max_probes"], **common)
    t1 = time.time()
    hpp = sensitivity_table(model, batches, method="hutch++", matvecs=SETTINGS["matvecs"], **common)
    t2 = time.time()
    units, _ = find_units(model, lambda: model(x), len(x))
    small = [u.module_name for u in units if u.params <= EXACT_LIMIT]
    small = small or [min(units, key=lambda u: u.params).module_name]
    ex = sensitivity_table(model, batches, method="exact", units=small, **common)
    t3 = time.time()
    quant = {}
    for spec in QUANTIZERS:
        q = Quantizer.parse(spec)
        quant[spec] = {}
        for u in units:
            bits = ([1] if q.asymmetric else []) + [2, 4, 8]
            quant[spec][u.name] = {str(b): q.delta_sq(u.weight, b, u.axis) for b in bits}
    ref = {
        "model": name,
        "onnx": f"../models/{name}.onnx",
        "inputs": f"../ref/{name}/inputs.npy",
        "labels": f"../ref/{name}/labels.npy",
        "settings": SETTINGS,
        "generated_by": "scripts/make_torch_tables.py (python/bitplan_torch, float64 module)",
        "torch": torch.__version__,
        "seconds": {"hutchinson": round(t1 - t0, 2), "hutchpp": round(t2 - t1, 2), "exact": round(t3 - t2, 2)},
        "hutchinson": dict(hut),
        "hutchpp": dict(hpp),
        "exact_traces": {l["name"]: l["trace"] for l in ex["layers"]},
        "quant": quant,
    }
    for t in (ref["hutchinson"], ref["hutchpp"]):
        t.pop("notes", None)  # holds timings
    return ref


def close(a, b, rel):
    """Recursive comparison of two JSON values, floats to a relative tolerance."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(close(a[k], b[k], rel) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(close(x, z, rel) for x, z in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-300)
    return a == b


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default=",".join(models.NAMES))
    ap.add_argument("--out", default=os.path.join(ROOT, "testdata", "torch"))
    ap.add_argument("--verify", action="store_true", help="recompute and compare with the committed files")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    for name in args.only.split(","):
        ref = reference(name)
        path = os.path.join(args.out, f"{name}.json")
        if args.verify:
            with open(path) as f:
                old = json.load(f)
            for k in ("hutchinson", "hutchpp", "exact_traces", "quant"):
                if not close(ref[k], old[k], 1e-9):
                    raise SystemExit(f"{name}: {k} differs from {path}")
            print(f"verified {name}")
            continue
        write_table(ref, path)
        h = ref["hutchinson"]["source"]
        print(f"RESULT {name}: {h}; exact units {len(ref['exact_traces'])}; seconds {ref['seconds']}", flush=True)


if __name__ == "__main__":
    main()
