"""Float64 PyTorch references for the transformer members of the zoo.

For tiny_bert and tiny_vit (scripts/zoo.py, the same seeds and weights as
the committed testdata/zoo/<name>/op*.onnx), on a few samples with fixed
class labels, in float64 (the float32 weights widened, the module run in
double):

- logits and the mean cross-entropy loss;
- per quantizable layer (the ONNX units: Conv, Gemm, MatMul with a weight,
  Gather of an embedding table; keyed by the module path the export names
  its nodes after, e.g. "layers.0.att.qkv" for /layers.0/att/qkv/MatMul):
  the exact trace of the Hessian block of the layer's weight and bias,
  Tr(H_ii) = sum_j e_j^T H e_j over every parameter j of the block, by
  double backprop (one batched vector-Hessian product per chunk of unit
  vectors), and the squared norm of the gradient on the block.

Traces and gradient norms do not depend on the order of a block's
coordinates, so they compare directly with the ONNX graph's units although
the exporter stores nn.Linear weights transposed (MatMul) and the engine
orders θ by node. Written to testdata/ref/<name>/: one .npy per graph
input, labels.npy, logits.npy and meta.json. nn/zooref_test.go compares.

Usage (Debian's interpreter, from the repository root):

    /usr/bin/python3 scripts/make_transformer_reference.py            # both models
    /usr/bin/python3 scripts/make_transformer_reference.py --only tiny_vit
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zoo  # noqa: E402

MODELS = ("tiny_bert", "tiny_vit")
SAMPLES = 4
CHUNK = 256  # unit vectors per batched Hessian-vector product


def layers_of(model, name):
    """The quantizable layers: module path -> list of parameters (weight,
    then bias when the layer has one), as the ONNX export's units."""
    out = {}
    for path, m in model.named_modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.Conv1d)):
            ps = [m.weight] + ([m.bias] if m.bias is not None else [])
            out[path] = ps
        elif isinstance(m, torch.nn.Embedding):
            out[path] = [m.weight]
    return out


def exact_trace(loss_fn, params):
    """Tr of the Hessian block of params by batched double backprop."""
    loss = loss_fn()
    grads = torch.autograd.grad(loss, params, create_graph=True)
    flat = torch.cat([g.reshape(-1) for g in grads])
    n = flat.numel()
    tr = 0.0
    for s in range(0, n, CHUNK):
        k = min(CHUNK, n - s)
        eye = torch.zeros(k, n, dtype=flat.dtype)
        eye[torch.arange(k), torch.arange(s, s + k)] = 1
        rows = torch.autograd.grad(flat, params, grad_outputs=eye, retain_graph=True, is_grads_batched=True)
        hv = torch.cat([r.reshape(k, -1) for r in rows], dim=1)
        tr += float(hv[torch.arange(k), torch.arange(s, s + k)].sum())
    return tr, float((flat.detach() ** 2).sum())


def reference(name, outdir):
    model, spec, vocab = zoo.build(name)
    model = model.double().eval()
    gen = torch.Generator().manual_seed(zoo.SEED + 7)
    xs = zoo.make_inputs(spec, SAMPLES, gen, vocab)
    xs = [x.double() if x.is_floating_point() else x for x in xs]
    classes = model.cls.out_features if name == "tiny_bert" else model.head.out_features
    labels = torch.randint(0, classes, (SAMPLES,), generator=gen)

    def loss_fn():
        return torch.nn.functional.cross_entropy(model(*xs), labels)

    with torch.no_grad():
        logits = model(*xs)
        loss = float(torch.nn.functional.cross_entropy(logits, labels))
    traces, gnorms, sizes = {}, {}, {}
    for path, ps in layers_of(model, name).items():
        tr, g2 = exact_trace(loss_fn, ps)
        traces[path], gnorms[path] = tr, g2
        sizes[path] = sum(p.numel() for p in ps)
        print(f"{name} {path}: {sizes[path]} params, trace {tr:.10g}", file=sys.stderr)
    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    for (nm, _, _), x in zip(spec, xs):
        np.save(os.path.join(d, nm + ".npy"), x.numpy())
    np.save(os.path.join(d, "labels.npy"), labels.numpy().astype(np.int64))
    np.save(os.path.join(d, "logits.npy"), logits.numpy())
    meta = {
        "model": name,
        "onnx": f"../../zoo/{name}/op13.onnx",
        "inputs": [nm for nm, _, _ in spec],
        "n": SAMPLES,
        "seed": zoo.SEED,
        "loss": loss,
        "exact_block_traces": traces,
        "grad_sq_norms": gnorms,
        "block_sizes": sizes,
        "torch": torch.__version__,
    }
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated models (default: " + ",".join(MODELS) + ")")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata", "ref"))
    a = ap.parse_args()
    torch.set_num_threads(2)
    names = [n for n in a.only.split(",") if n] or list(MODELS)
    for n in names:
        if n not in MODELS:
            sys.exit(f"unknown model {n!r} (want one of {', '.join(MODELS)})")
        reference(n, a.out)


if __name__ == "__main__":
    main()
