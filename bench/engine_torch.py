#!/usr/bin/python3
"""Exports a torchvision model (random weights, fixed seed, eval mode) to
ONNX, or times it in PyTorch: forward, gradient and Hessian-vector product
(double backprop) of the mean cross-entropy per batch, median of --reps,
and the peak resident memory of the timing process; hvp_cpu_s is the
median process CPU time (all threads) of the HVP runs. Used by
bench/engine_vs_torch.sh; prints one line of JSON when timing.

Model "bert" is scripts/zoo.py's BERT-style encoder at BERT-base shape (12
post-norm layers, hidden 768, 12 heads, FFN 3072, vocabulary 30522, 2
classes) with token ids and an attention mask (all ones) as inputs; --res
is then the sequence length. Models "lstm" and "gru" are scripts/zoo.py's
large recurrent classifiers (2 layers, hidden 256, 40 features per step,
10 classes, batch-first) on standard normal sequences; --res is the number
of steps (the zoo's: 50)."""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))

BERT_VOCAB = 30522
RNNS = ("lstm", "gru")
RNN_FEATS = 40


def build(name, res=224):
    torch.manual_seed(0)
    if name == "bert":
        import zoo

        return zoo.Bert(vocab=BERT_VOCAB, seq=res, d=768, heads=12, ff=3072, layers=12, classes=2).eval()
    if name in RNNS:
        import zoo

        return zoo.RNNClassifier(name, feats=RNN_FEATS, hidden=256, layers=2, classes=10).eval()
    m = getattr(torchvision.models, name)(num_classes=1000)
    return m.eval()


def inputs(name, batch, res, g):
    """The model's inputs and the number of classes."""
    if name == "bert":
        ids = torch.randint(0, BERT_VOCAB, (batch, res), generator=g)
        return (ids, torch.ones(batch, res, dtype=torch.int64)), 2
    if name in RNNS:
        return (torch.randn(batch, res, RNN_FEATS, generator=g),), 10
    return (torch.randn(batch, 3, res, res, generator=g),), 1000


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
    m = build(a.model, a.res)
    if a.mode == "export":
        xs, _ = inputs(a.model, 1, a.res, torch.Generator().manual_seed(1))
        names = ["input_ids", "attention_mask"] if a.model == "bert" else ["x"]
        dyn = {n: {0: "batch"} for n in names + ["logits"]}
        torch.onnx.export(m, xs, a.out, opset_version=13, input_names=names, output_names=["logits"],
                          dynamic_axes=dyn)
        return
    g = torch.Generator().manual_seed(1)
    xs, classes = inputs(a.model, a.batch, a.res, g)
    y = torch.randint(0, classes, (a.batch,), generator=g)
    params = [q for q in m.parameters()]
    v = [torch.randint(0, 2, q.shape, generator=g).float() * 2 - 1 for q in params]
    loss_fn = torch.nn.CrossEntropyLoss()

    def fwd():
        with torch.no_grad():
            m(*xs)

    def grad():
        loss = loss_fn(m(*xs), y)
        torch.autograd.grad(loss, params)

    def hvp():
        loss = loss_fn(m(*xs), y)
        gs = torch.autograd.grad(loss, params, create_graph=True)
        torch.autograd.grad(gs, params, v)

    cpu = {}

    def median(f):
        t, c = [], []
        for _ in range(a.reps):
            s, s_cpu = time.perf_counter(), time.process_time()
            f()
            t.append(time.perf_counter() - s)
            c.append(time.process_time() - s_cpu)
        cpu[f.__name__] = statistics.median(c)
        return statistics.median(t)

    out = {"forward_s": median(fwd), "gradient_s": median(grad), "hvp_s": median(hvp), "hvp_cpu_s": cpu["hvp"],
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "params": sum(q.numel() for q in params), "batch": a.batch}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
