#!/usr/bin/python3
"""Train the zoo's tiny BERT-style encoder on a generated token task (balanced brackets).

Usage (from the repository root, with Debian's PyTorch):

    /usr/bin/python3 scripts/train_bert_tokens.py [--out testdata/models] [--epochs 40]

The task (seeded, written as NumPy archives next to the model), bracket
matching with distractors:

    vocabulary 100: 0 pad, 1 [CLS], 2 "(", 3 ")", 4..99 distractors
    sequence 16: [CLS], then L = 6..15 content tokens, then 15 - L padding positions
    content: a "(" and b ")" in some order, the rest distractors, at random positions
    label (uniform over the three): 0 if the brackets are balanced (a = b and
      no prefix closes more than it opened), 1 if a != b (|a - b| = 1 or 2),
      2 if a = b but some prefix closes more than it opened
    padding positions hold random tokens of the whole vocabulary (brackets
      included) with attention_mask 0: the model must read the mask

Class 1 needs counting, class 0 against 2 the order of the brackets (the
position embeddings).

The model is scripts/zoo.py's Bert with the zoo's tiny_bert shape (vocabulary
100, sequence 16, width 32, 4 heads of 8, FFN 64, 2 post-norm layers, 3
classes, fused q/k/v projection split by Slice, shapes computed at run time),
so it is the graph the zoo tests import, trained. Export: plain
torch.onnx.export at opset 13, inputs input_ids and attention_mask (int64,
N x 16, dynamic batch), output logits N x 3.

Files written (--out):

    bert_brackets.onnx         the trained model
    bert_brackets_train.npz    4,000 sequences: input_ids, attention_mask, labels (int64)
    bert_brackets_test.npz     1,000 sequences, the same arrays (test accuracy 99.7 %)
    bert_brackets_ref.npz      the first 16 test sequences and the module's
                               float64 logits on them (logits), for the Go tests

Training: Adam (lr 3e-3, one-cycle), batch 64, fixed seeds,
torch.set_num_threads(1), a few minutes of CPU.
"""

import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zoo  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 20261201
VOCAB, SEQ, CLASSES = 100, 16, 3
PAD, CLS, OPEN, CLOSE, FIRST_DISTRACTOR = 0, 1, 2, 3, 4


def valid(brackets):
    depth = 0
    for t in brackets:
        depth += 1 if t == OPEN else -1
        if depth < 0:
            return False
    return depth == 0


def make_task(n, rng):
    """n sequences of the bracket task: ids, mask (int64 n x SEQ), labels."""
    ids = np.zeros((n, SEQ), np.int64)
    mask = np.zeros((n, SEQ), np.int64)
    labels = rng.integers(0, CLASSES, n).astype(np.int64)
    for i in range(n):
        L = int(rng.integers(6, SEQ))
        while True:
            if labels[i] == 1:
                a = int(rng.integers(0, L // 2 + 1))
                b = max(a + int(rng.choice([-2, -1, 1, 2])), 0)
                if b == a or a + b > L:
                    continue
            else:
                a = b = int(rng.integers(1, L // 2 + 1))
            br = np.array([OPEN] * a + [CLOSE] * b)
            rng.shuffle(br)
            if labels[i] == 0 and not valid(br):
                # a random valid order: shuffle until valid, or build one
                br = np.array([OPEN, CLOSE] * a)
                for _ in range(8):
                    c = rng.permutation(br)
                    if valid(c):
                        br = c
                        break
            if labels[i] == 2 and valid(br):
                continue
            break
        pos = np.sort(rng.choice(L, a + b, replace=False))
        content = rng.integers(FIRST_DISTRACTOR, VOCAB, L).astype(np.int64)
        content[pos] = br
        ids[i, 0] = CLS
        ids[i, 1:1 + L] = content
        ids[i, 1 + L:] = rng.integers(0, VOCAB, SEQ - 1 - L)
        mask[i, :1 + L] = 1
    return ids, mask, labels


def accuracy(model, ids, mask, labels):
    with torch.no_grad():
        return (model(ids, mask).argmax(1) == labels).float().mean().item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "testdata", "models"))
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--train", type=int, default=4000)
    ap.add_argument("--test", type=int, default=1000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    tr = make_task(args.train, rng)
    te = make_task(args.test, rng)
    xtr, mtr, ytr = (torch.from_numpy(a) for a in tr)
    xte, mte, yte = (torch.from_numpy(a) for a in te)

    model = zoo.Bert(vocab=VOCAB, seq=SEQ, d=32, heads=4, ff=64, layers=2, classes=CLASSES)
    batch = 64
    steps = args.epochs * ((args.train + batch - 1) // batch)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(SEED + 1)
    t0 = time.time()
    for ep in range(args.epochs):
        model.train()
        perm = torch.randperm(args.train, generator=gen)
        for s in range(0, args.train, batch):
            idx = perm[s:s + batch]
            loss = F.cross_entropy(model(xtr[idx], mtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        print(f"epoch {ep + 1}: loss {loss.item():.4f}, test accuracy {accuracy(model, xte, mte, yte):.4f}", flush=True)
    secs = time.time() - t0
    model.eval()
    acc = accuracy(model, xte, mte, yte)
    if acc < 0.7:
        raise SystemExit(f"bert_brackets: test accuracy {acc:.4f} below 0.7")

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "bert_brackets.onnx")
    tmp = path + ".tmp"
    dyn = {"input_ids": {0: "batch"}, "attention_mask": {0: "batch"}, "logits": {0: "batch"}}
    torch.onnx.export(model, (xte[:2], mte[:2]), tmp, input_names=["input_ids", "attention_mask"],
                      output_names=["logits"], dynamic_axes=dyn, opset_version=13, do_constant_folding=True)
    os.replace(tmp, path)
    for name, (x, m, y) in (("train", tr), ("test", te)):
        np.savez_compressed(os.path.join(args.out, f"bert_brackets_{name}.npz"), input_ids=x, attention_mask=m, labels=y)
    with torch.no_grad():
        want = model.double()(xte[:16], mte[:16]).numpy()
    np.savez(os.path.join(args.out, "bert_brackets_ref.npz"), input_ids=te[0][:16], attention_mask=te[1][:16],
             labels=te[2][:16], logits=want)
    nparams = sum(p.numel() for p in model.parameters())
    print(f"RESULT bert_brackets: test accuracy {acc:.4f} ({int(round(acc * args.test))}/{args.test}), "
          f"{nparams} params, {os.path.getsize(path)} bytes, {secs:.0f}s training", flush=True)


if __name__ == "__main__":
    main()
