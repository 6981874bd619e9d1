"""Command line: ``python -m bitplan_torch trace --model MODULE:FACTORY --data DATA -o table.json``.

Run it under ``torchrun --nproc_per_node K`` to share the work between K
processes (gloo on CPU, nccl on GPUs); see python/README.md.
"""

import argparse
import importlib
import os
import sys

import torch
import torch.nn.functional as F

from .table import METHODS, SPLITS, sensitivity_table, write_table


def _import(spec, what):
    mod, sep, attr = spec.partition(":")
    if not sep or not mod or not attr:
        raise SystemExit(f"bitplan_torch: {what} {spec!r}: want MODULE:NAME (e.g. torchvision.models:resnet18)")
    try:
        m = importlib.import_module(mod)
    except ImportError as e:
        raise SystemExit(f"bitplan_torch: {what} {spec!r}: cannot import {mod!r}: {e}")
    obj = m
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SystemExit(f"bitplan_torch: {what} {spec!r}: module {mod!r} has no {attr!r}")
        obj = getattr(obj, part)
    return obj


def _load_npy(path):
    try:
        import numpy as np
    except ImportError:
        raise SystemExit("bitplan_torch: --inputs/--labels need numpy (apt-get install python3-numpy)")
    return torch.from_numpy(np.load(path))


def _dataset(args):
    """(inputs, labels) tensors or a list of batches, from the flags."""
    if args.data and (args.inputs or args.labels):
        raise SystemExit("bitplan_torch: give --data or --inputs/--labels, not both")
    if args.inputs or args.labels:
        if not (args.inputs and args.labels):
            raise SystemExit("bitplan_torch: --inputs and --labels go together")
        return _load_npy(args.inputs), _load_npy(args.labels)
    if not args.data:
        raise SystemExit("bitplan_torch: no data: give --data FILE.pt|MODULE:FUNCTION or --inputs X.npy --labels Y.npy")
    if ":" in args.data and not os.path.exists(args.data):
        obj = _import(args.data, "--data")
        return obj() if callable(obj) else obj
    if not os.path.exists(args.data):
        raise SystemExit(f"bitplan_torch: --data {args.data}: no such file")
    obj = torch.load(args.data, map_location="cpu")
    if isinstance(obj, dict):
        for kx, ky in (("inputs", "labels"), ("x", "y"), ("inputs", "targets")):
            if kx in obj and ky in obj:
                return obj[kx], obj[ky]
        raise SystemExit(f"bitplan_torch: --data {args.data}: a dict needs keys inputs/labels (or x/y), has {sorted(obj)}")
    return obj


def _batches(obj, samples, batch_size):
    if isinstance(obj, (tuple, list)) and len(obj) == 2 and all(isinstance(t, torch.Tensor) for t in obj):
        x, y = obj
        if len(x) != len(y):
            raise SystemExit(f"bitplan_torch: {len(x)} inputs but {len(y)} labels")
        if samples:
            x, y = x[:samples], y[:samples]
        return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    batches = list(obj)
    if samples:
        out, n = [], 0
        for x, y in batches:
            if n >= samples:
                break
            out.append((x, y))
            n += len(y)
        batches = out
    return batches


def _init_distributed(device):
    """Join the process group that torchrun describes in the environment (if any)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return False
    import torch.distributed as dist
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend)
    return True


def trace(argv):
    ap = argparse.ArgumentParser(prog="python -m bitplan_torch trace",
                                 description="Per-layer Hessian traces and quantization errors of a PyTorch "
                                             "model as a bitplan sensitivity table (bitplan solve TABLE.json).")
    ap.add_argument("--model", required=True, help="MODULE:FACTORY returning the nn.Module (e.g. torchvision.models:resnet18)")
    ap.add_argument("--path", action="append", default=[], help="directory to add to sys.path (repeatable)")
    ap.add_argument("--weights", help="state dict file (torch.save) to load into the model")
    ap.add_argument("--data", help="FILE.pt holding (inputs, labels), {'inputs','labels'} or a list of batches; "
                                   "or MODULE:FUNCTION returning one of those")
    ap.add_argument("--inputs", help="inputs as a NumPy file (with --labels; needs numpy)")
    ap.add_argument("--labels", help="integer class labels as a NumPy file")
    ap.add_argument("--samples", type=int, default=0, help="use the first N samples (0: all)")
    ap.add_argument("--batch-size", type=int, default=32, help="samples per batch for tensor data (default 32)")
    ap.add_argument("--loss", default="ce", help="ce (mean cross-entropy, default), mse, or MODULE:FUNCTION(output, target)")
    ap.add_argument("--method", default="hutchinson", choices=METHODS)
    ap.add_argument("--tol", type=float, default=0.05, help="target relative standard error per layer (default 0.05)")
    ap.add_argument("--min-probes", type=int, default=10)
    ap.add_argument("--max-probes", type=int, default=100)
    ap.add_argument("--matvecs", type=int, default=60, help="Hessian-vector products of hutch++")
    ap.add_argument("--probe-batch", type=int, default=8, help="probes per rank and pass over the data")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bits", default="4,8", help="candidates: bit widths or pairs such as w4a8")
    ap.add_argument("--quantizer", default="symmetric,per-channel,minmax")
    ap.add_argument("--units", help="comma-separated module names (default: every Conv/Linear/Embedding)")
    ap.add_argument("--names", default="onnx", choices=("onnx", "module"))
    ap.add_argument("--model-name", help="name in the table (default: the factory's name)")
    ap.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda:LOCAL_RANK when available, else cpu)")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--split", default="auto", choices=SPLITS, help="how ranks share the work (see README)")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("-o", "--output", help="write the table to FILE (atomically) instead of stdout")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    for p in args.path:
        sys.path.insert(0, p)
    if args.device:
        device = torch.device(args.device)
    elif torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    else:
        device = torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    distributed = _init_distributed(device)
    try:
        factory = _import(args.model, "--model")
        model = factory()
        if not isinstance(model, torch.nn.Module):
            raise SystemExit(f"bitplan_torch: --model {args.model} returned {type(model).__name__}, not an nn.Module")
        if args.weights:
            state = torch.load(args.weights, map_location="cpu")
            if isinstance(state, dict) and "state_dict" in state:
                state = state["state_dict"]
            try:
                model.load_state_dict(state)
            except RuntimeError as e:
                raise SystemExit(f"bitplan_torch: --weights {args.weights}: {e}")
        dtype = getattr(torch, args.dtype)
        model = model.to(device=device, dtype=dtype)
        batches = _batches(_dataset(args), args.samples, args.batch_size)
        batches = [(x.to(dtype) if x.is_floating_point() else x, y) for x, y in batches]
        if args.loss == "ce":
            loss_fn = F.cross_entropy
        elif args.loss == "mse":
            loss_fn = F.mse_loss
        else:
            loss_fn = _import(args.loss, "--loss")
        table = sensitivity_table(
            model, batches, loss_fn=loss_fn, units=args.units.split(",") if args.units else None,
            bits=args.bits.split(","), quantizer=args.quantizer, method=args.method, tol=args.tol,
            min_probes=args.min_probes, max_probes=args.max_probes, seed=args.seed, matvecs=args.matvecs,
            probe_batch=args.probe_batch, names=args.names,
            model_name=args.model_name or args.model.partition(":")[2], device=device, split=args.split)
    except ValueError as e:
        raise SystemExit(f"bitplan_torch: {e}")
    rank = 0
    if distributed:
        import torch.distributed as dist
        rank = dist.get_rank()
    if rank == 0:
        for w in table.warnings:
            print(f"bitplan_torch: warning: {w}", file=sys.stderr)
        res = table.result
        print(f"bitplan_torch: {res.method}: {res.probes} probes, {res.matvecs} Hessian-vector products, "
              f"{res.seconds:.2f} s, converged={res.converged}", file=sys.stderr)
        if args.output:
            write_table(table, args.output)
        else:
            sys.stdout.write(table.to_json())
    if distributed:
        torch.distributed.destroy_process_group()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m bitplan_torch trace --model MODULE:FACTORY --data DATA [-o table.json] [flags]\n"
              "       python -m bitplan_torch trace --help")
        return
    if argv[0] != "trace":
        raise SystemExit(f"bitplan_torch: unknown command {argv[0]!r} (want trace)")
    trace(argv[1:])


if __name__ == "__main__":
    main()
