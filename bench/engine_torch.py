#!/usr/bin/python3
"""Exports a torchvision model (random weights, fixed seed, eval mode) to
ONNX, or times it in PyTorch: forward, gradient and Hessian-vector product
(double backprop) of the mean cross-entropy per batch, median of --reps,
and the peak resident memory of the timing process. Used by
bench/engine_vs_torch.sh; prints one line of JSON when timing."""
import argparse
import json
import resource
import statistics
import time

import torch
import torchvision


def build(name):
    torch.manual_seed(0)
    m = getattr(torchvision.models, name)(num_classes=1000)
    return m.eval()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["export", "time"])
    p.add_argument("model")
    p.add_argument("--res", type=int, default=224)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="model.onnx")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    m = build(a.model)
    if a.mode == "export":
        x = torch.randn(1, 3, a.res, a.res)
        torch.onnx.export(m, x, a.out, opset_version=13, input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
        return
    g = torch.Generator().manual_seed(1)
    x = torch.randn(a.batch, 3, a.res, a.res, generator=g)
    y = torch.randint(0, 1000, (a.batch,), generator=g)
    params = [q for q in m.parameters()]
    v = [torch.randint(0, 2, q.shape, generator=g).float() * 2 - 1 for q in params]
    loss_fn = torch.nn.CrossEntropyLoss()

    def fwd():
        with torch.no_grad():
            m(x)

    def grad():
        loss = loss_fn(m(x), y)
        torch.autograd.grad(loss, params)

    def hvp():
        loss = loss_fn(m(x), y)
        gs = torch.autograd.grad(loss, params, create_graph=True)
        torch.autograd.grad(gs, params, v)

    def median(f):
        t = []
        for _ in range(a.reps):
            s = time.perf_counter()
            f()
            t.append(time.perf_counter() - s)
        return statistics.median(t)

    out = {"forward_s": median(fwd), "gradient_s": median(grad), "hvp_s": median(hvp),
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "params": sum(q.numel() for q in params), "batch": a.batch}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
