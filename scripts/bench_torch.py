#!/usr/bin/python3
"""Throughput of python/bitplan_torch: HVPs per second against PyHessian's loop,
and the wall time of 1 against 2 gloo processes.

Usage (from the repository root, Debian's PyTorch; MNIST from the GoMNIST module):

    /usr/bin/python3 scripts/bench_torch.py [--model rescnn] [--samples 256] [--batch 64] [--probes 16]

Single process (torch.set_num_threads(1) each, float32, the model's ONNX
weights, the first --samples MNIST training images in batches of --batch):

  pyhessian   the loop of PyHessian's hessian.trace with a dataloader
              (pyhessian/hessian.py, dataloader_hv_product): per probe and
              batch one forward, loss.backward(create_graph=True), and one
              torch.autograd.grad of the gradients; written out here, since
              PyHessian is not installable offline
  bitplan     bitplan_torch's HessianOperator.hvp: per batch one forward and
              first backward serve --probe-batch probes

Distributed: sensitivity_table with min_probes = max_probes = --probes under
torch.multiprocessing with gloo, world 1 and 2, split "probes" and "data";
wall time from before init_process_group to the table, and whether the
2-process table equals the 1-process one.
"""

import argparse
import json
import os
import socket
import sys
import tempfile
import time

import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "python", "tests"))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import mnist  # noqa: E402
import models  # noqa: E402
from bitplan_torch import sensitivity_table  # noqa: E402
from bitplan_torch import estimators as est  # noqa: E402
from bitplan_torch.dist import Comm  # noqa: E402
from bitplan_torch.units import find_units, theta_params  # noqa: E402


def data(n, batch):
    x, y = mnist.load("train")
    x, y = torch.from_numpy(x[:n].copy()), torch.from_numpy(y[:n].copy())
    return [(x[i:i + batch], y[i:i + batch]) for i in range(0, n, batch)]


def pyhessian_hvps(model, params, batches, probes):
    """PyHessian's dataloader trace loop: one full data pass per probe."""
    t0 = time.time()
    for _ in range(probes):
        v = [torch.randint_like(p, high=2) * 2 - 1 for p in params]
        for inputs, targets in batches:
            model.zero_grad()
            loss = F.cross_entropy(model(inputs), targets)
            loss.backward(create_graph=True)
            grads = [p.grad + 0.0 for p in params]  # PyHessian get_params_grad copies the grads
            model.zero_grad()
            torch.autograd.grad(grads, params, grad_outputs=v, only_inputs=True, retain_graph=False)
    return probes / (time.time() - t0)


def bitplan_hvps(model, params, batches, probes, probe_batch):
    n = sum(len(y) for _, y in batches)
    op = est.HessianOperator(model, params, batches, [len(y) / n for _, y in batches], F.cross_entropy,
                             torch.device("cpu"), Comm(), "probes")
    t0 = time.time()
    done = 0
    while done < probes:
        k = min(probe_batch, probes - done)
        op.hvp([torch.ones(op.dim, dtype=torch.float64) for _ in range(k)])
        done += k
    return probes / (time.time() - t0)


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, name, n, batch, probes, split, out):
    import torch.distributed as dist
    torch.set_num_threads(1)
    model = models.load(name, torch.float32)
    batches = data(n, batch)
    t0 = time.time()
    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    t = sensitivity_table(model, batches, min_probes=probes, max_probes=probes, split=split, progress=False)
    wall = time.time() - t0
    if rank == 0:
        with open(out, "w") as f:
            json.dump({"wall": wall, "layers": t["layers"], "matvecs": t.result.matvecs}, f)
    if world > 1:
        dist.destroy_process_group()


def distributed(name, n, batch, probes, split, world):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "r.json")
        t0 = time.time()
        mp.spawn(_worker, args=(world, _port(), name, n, batch, probes, split, out), nprocs=world, join=True)
        total = time.time() - t0
        with open(out) as f:
            r = json.load(f)
    r["total"] = total
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="rescnn")
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--probes", type=int, default=16)
    ap.add_argument("--probe-batch", type=int, default=8)
    ap.add_argument("--skip-single", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; torch {torch.__version__}", flush=True)
    if not args.skip_single:
        model = models.load(args.model, torch.float32)
        batches = data(args.samples, args.batch)
        units, _ = find_units(model, lambda: model(batches[0][0]), len(batches[0][0]))
        params, _, _ = theta_params(units)
        for p in model.parameters():
            p.requires_grad_(any(p is q for q in params))
        py = pyhessian_hvps(model, params, batches, args.probes)
        bp = bitplan_hvps(model, params, batches, args.probes, args.probe_batch)
        print(f"RESULT {args.model} {args.samples} samples, batch {args.batch}, {sum(p.numel() for p in params)} "
              f"parameters: pyhessian loop {py:.3f} HVP/s, bitplan_torch {bp:.3f} HVP/s "
              f"(probe_batch {args.probe_batch}), ratio {bp / py:.2f}", flush=True)
    for split in ("probes", "data"):
        one = distributed(args.model, args.samples, args.batch, args.probes, split, 1)
        two = distributed(args.model, args.samples, args.batch, args.probes, split, 2)
        worst = max(abs(a["avg_trace"] - b["avg_trace"]) / abs(b["avg_trace"])
                    for a, b in zip(two["layers"], one["layers"]))
        print(f"RESULT distributed split={split}: {args.probes} probes, 1 process {one['wall']:.1f} s "
              f"(spawn total {one['total']:.1f} s), 2 processes {two['wall']:.1f} s (total {two['total']:.1f} s), "
              f"speed-up {one['wall'] / two['wall']:.2f}; max relative avg_trace difference {worst:.2g}; "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
