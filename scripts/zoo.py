"""The model zoo: real torch.onnx exports of the model families bitplan must plan.

Every model has random weights from fixed seeds. BatchNorm running statistics
are measured on random inputs (train-mode forward passes with cumulative
averaging, momentum=None) so that activations are not degenerate, then the
model is exported in eval mode at opset 13 and 17 with a dynamic batch
dimension, exactly as a user would: plain torch.onnx.export, no clean-up
passes (Identity nodes from initializer de-duplication are kept).

Two sizes:

- SMALL variants (a few KB to 1 MB), committed in testdata/zoo/<name>/:
  op11.onnx, op13.onnx, op17.onnx, one .npy per graph input (named after the input) and
  logits.npy, the PyTorch output on those inputs in float64 (the float32
  weights widened, the module run in double), plus meta.json.
- LARGE models (torchvision CNNs and ViT, full-size hand-written families),
  written only to a cache directory (--out) at test or bench time:
  <name>_op13.onnx, <name>_op17.onnx, <name>_<input>.npy (batch 2) and
  <name>_logits.npy (float64 PyTorch logits on them).

Usage (Debian's interpreter, from the repository root):

    /usr/bin/python3 scripts/zoo.py                       # SMALL -> testdata/zoo
    /usr/bin/python3 scripts/zoo.py --large --out DIR     # LARGE -> DIR
    /usr/bin/python3 scripts/zoo.py --only tiny_bert,tiny_lstm
    /usr/bin/python3 scripts/zoo.py --list
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SEED = 20261201
OPSETS = (13, 17)
# The committed SMALL models are also exported at opset 11, the oldest opset
# bitplan imports (Squeeze/Unsqueeze/Split/ReduceSum axes as attributes).
SMALL_OPSETS = (11, 13, 17)
SAMPLES = 2  # batch of the committed sample inputs


# ---------------------------------------------------------------- families


class ResBlock(nn.Module):
    def __init__(self, cin, cout, stride, bias):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=bias)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=bias)
        self.b2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=bias), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


class TinyResNet(nn.Module):
    """A ResNet-style CNN whose conv and linear biases are all zero. The
    exporter folds BatchNorm into the convs before it; the biases that
    remain (proj, hid, fc) are equal, so it de-duplicates them through
    Identity nodes. proj is applied twice: one weight read by two Conv
    nodes (a tie)."""

    def __init__(self, width=8, classes=10):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, 1, 1, bias=True)
        self.bn = nn.BatchNorm2d(width)
        self.l1 = ResBlock(width, width, 1, True)
        self.l2 = ResBlock(width, 2 * width, 2, True)
        self.proj = nn.Conv2d(2 * width, 2 * width, 1, bias=True)
        self.hid = nn.Linear(2 * width, 2 * width)
        self.fc = nn.Linear(2 * width, classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)))
        x = self.l2(self.l1(x))
        x = F.relu(self.proj(x))
        x = F.relu(self.proj(x))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(F.relu(self.hid(x)))


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused q/k/v projection (split on
    computed data) and an optional additive mask."""

    def __init__(self, d, heads):
        super().__init__()
        self.h = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(self, x, bias=None):
        n, t, d = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q = q.reshape(n, t, self.h, d // self.h).transpose(1, 2)
        k = k.reshape(n, t, self.h, d // self.h).transpose(1, 2)
        v = v.reshape(n, t, self.h, d // self.h).transpose(1, 2)
        a = q @ k.transpose(-1, -2) / math.sqrt(d // self.h)
        if bias is not None:
            a = a + bias
        y = a.softmax(-1) @ v
        return self.out(y.transpose(1, 2).reshape(n, t, d))


class BertLayer(nn.Module):
    """Post-norm encoder layer (BERT): attention, add & norm, GELU FFN, add & norm."""

    def __init__(self, d, heads, ff):
        super().__init__()
        self.att = SelfAttention(d, heads)
        self.n1 = nn.LayerNorm(d, eps=1e-12)
        self.f1 = nn.Linear(d, ff)
        self.f2 = nn.Linear(ff, d)
        self.n2 = nn.LayerNorm(d, eps=1e-12)

    def forward(self, x, bias):
        x = self.n1(x + self.att(x, bias))
        return self.n2(x + self.f2(F.gelu(self.f1(x))))


class Bert(nn.Module):
    """A BERT-style sequence classifier: token ids and an attention mask in
    (int64, N×T), class logits out (pooled [CLS] token)."""

    def __init__(self, vocab=1000, seq=32, d=64, heads=4, ff=128, layers=2, classes=3):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(seq, d)
        self.typ = nn.Embedding(2, d)
        self.norm = nn.LayerNorm(d, eps=1e-12)
        self.layers = nn.ModuleList(BertLayer(d, heads, ff) for _ in range(layers))
        self.pool = nn.Linear(d, d)
        self.cls = nn.Linear(d, classes)

    def forward(self, ids, mask):
        t = ids.shape[1]
        pos = torch.arange(t, device=ids.device).unsqueeze(0)
        x = self.tok(ids) + self.pos(pos) + self.typ(torch.zeros_like(ids))
        x = self.norm(x)
        bias = (1.0 - mask[:, None, None, :].to(x.dtype)) * -10000.0
        for layer in self.layers:
            x = layer(x, bias)
        return self.cls(torch.tanh(self.pool(x[:, 0])))


class PreNormBlock(nn.Module):
    def __init__(self, d, heads, ff):
        super().__init__()
        self.n1 = nn.LayerNorm(d)
        self.att = SelfAttention(d, heads)
        self.n2 = nn.LayerNorm(d)
        self.f1 = nn.Linear(d, ff)
        self.f2 = nn.Linear(ff, d)

    def forward(self, x):
        x = x + self.att(self.n1(x))
        return x + self.f2(F.gelu(self.f1(self.n2(x))))


class ViT(nn.Module):
    """A pre-norm vision transformer: patch conv, class token expanded to the
    (dynamic) batch, learned positions, pre-norm blocks, class head."""

    def __init__(self, image=32, patch=8, d=64, heads=4, ff=128, layers=2, classes=10):
        super().__init__()
        self.patch = nn.Conv2d(3, d, patch, patch)
        n = (image // patch) ** 2
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, n + 1, d) * 0.02)
        self.blocks = nn.Sequential(*[PreNormBlock(d, heads, ff) for _ in range(layers)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


class QuartzBlock(nn.Module):
    """QuartzNet's B-block: R × (depthwise 1-D conv, pointwise conv, BN, ReLU)
    with a pointwise+BN residual."""

    def __init__(self, cin, cout, k, repeat):
        super().__init__()
        layers = []
        c = cin
        for r in range(repeat):
            layers += [nn.Conv1d(c, c, k, padding=k // 2, groups=c, bias=False),
                       nn.Conv1d(c, cout, 1, bias=False), nn.BatchNorm1d(cout)]
            if r < repeat - 1:
                layers.append(nn.ReLU())
            c = cout
        self.body = nn.Sequential(*layers)
        self.res = nn.Sequential(nn.Conv1d(cin, cout, 1, bias=False), nn.BatchNorm1d(cout))

    def forward(self, x):
        return F.relu(self.body(x) + self.res(x))


class QuartzNet(nn.Module):
    """A QuartzNet-style 1-D conv speech model: features N×F×T in, per-frame
    logits N×vocab×T' out (class axis 1, as CTC or per-frame labels take)."""

    def __init__(self, feats=64, widths=(256, 256, 512), kernels=(33, 39, 51), repeat=5, vocab=29):
        super().__init__()
        w0 = widths[0]
        self.c1 = nn.Sequential(nn.Conv1d(feats, feats, kernels[0], stride=2, padding=kernels[0] // 2, groups=feats, bias=False),
                                nn.Conv1d(feats, w0, 1, bias=False), nn.BatchNorm1d(w0), nn.ReLU())
        blocks = []
        c = w0
        for w, k in zip(widths, kernels):
            blocks.append(QuartzBlock(c, w, k, repeat))
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv1d(c, vocab, 1, bias=True)

    def forward(self, x):
        return self.head(self.blocks(self.c1(x)))


class RNNClassifier(nn.Module):
    """An LSTM or GRU sequence classifier: N×T×F features in, the last time
    step's hidden state through a linear layer out."""

    def __init__(self, kind="lstm", feats=16, hidden=64, layers=2, classes=5):
        super().__init__()
        cell = nn.LSTM if kind == "lstm" else nn.GRU
        self.rnn = cell(feats, hidden, layers, batch_first=True)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y[:, -1])


def conv_bn(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class UNet(nn.Module):
    """A small U-Net: two poolings down, ConvTranspose up once and bilinear
    Resize up once, skip concatenations, per-pixel logits N×classes×H×W."""

    def __init__(self, width=16, classes=4):
        super().__init__()
        w = width
        self.e1 = conv_bn(3, w)
        self.e2 = conv_bn(w, 2 * w)
        self.mid = conv_bn(2 * w, 4 * w)
        self.up2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2)
        self.d2 = conv_bn(4 * w, 2 * w)
        self.red1 = nn.Conv2d(2 * w, w, 1)
        self.d1 = conv_bn(2 * w, w)
        self.out = nn.Conv2d(w, classes, 1)

    def forward(self, x):
        a = self.e1(x)
        b = self.e2(F.max_pool2d(a, 2))
        c = self.mid(F.max_pool2d(b, 2))
        y = self.d2(torch.cat([self.up2(c), b], 1))
        y = F.interpolate(self.red1(y), scale_factor=2.0, mode="bilinear", align_corners=False)
        y = self.d1(torch.cat([y, a], 1))
        return self.out(y)


# ---------------------------------------------------------------- the zoo


def tv(name, image=224, **kw):
    import torchvision

    def make():
        return getattr(torchvision.models, name)(weights=None, **kw)

    return make, [("input", "float", (3, image, image))]


def img(image):
    return [("input", "float", (3, image, image))]


# name -> (constructor, inputs [(name, kind, per-sample shape)], small?)
# kind "float" inputs are standard normal; "ids" are token ids < vocab;
# "mask" is a 0/1 attention mask with the tail of the second sample masked.
ZOO = {
    # LARGE: generated into a cache directory, never committed.
    "resnet18": tv("resnet18") + (False,),
    "resnet50": tv("resnet50") + (False,),
    "mobilenet_v2": tv("mobilenet_v2") + (False,),
    "mobilenet_v3_small": tv("mobilenet_v3_small") + (False,),
    "shufflenet_v2_x0_5": tv("shufflenet_v2_x0_5") + (False,),
    "squeezenet1_0": tv("squeezenet1_0") + (False,),
    "efficientnet_b0": tv("efficientnet_b0") + (False,),
    "densenet121": tv("densenet121") + (False,),
    "vit_b_16": tv("vit_b_16", image=64, image_size=64) + (False,),
    "bert": (lambda: Bert(vocab=30522, seq=128, d=768, heads=12, ff=3072, layers=12, classes=2),
             [("input_ids", "ids", (128,)), ("attention_mask", "mask", (128,))], False),
    "vit_prenorm": (lambda: ViT(image=64, patch=8, d=192, heads=3, ff=768, layers=6, classes=100), img(64), False),
    "quartznet": (lambda: QuartzNet(), [("features", "float", (64, 256))], False),
    "lstm": (lambda: RNNClassifier("lstm", feats=40, hidden=256, layers=2, classes=10), [("input", "float", (50, 40))], False),
    "gru": (lambda: RNNClassifier("gru", feats=40, hidden=256, layers=2, classes=10), [("input", "float", (50, 40))], False),
    "unet": (lambda: UNet(width=32, classes=8), img(128), False),
    # SMALL: committed in testdata/zoo with inputs and float64 logits.
    "tiny_resnet": (lambda: TinyResNet(width=8, classes=10), img(16), True),
    "tiny_bert": (lambda: Bert(vocab=100, seq=16, d=32, heads=4, ff=64, layers=2, classes=3),
                  [("input_ids", "ids", (16,)), ("attention_mask", "mask", (16,))], True),
    "tiny_vit": (lambda: ViT(image=16, patch=4, d=32, heads=4, ff=64, layers=2, classes=10), img(16), True),
    "tiny_quartznet": (lambda: QuartzNet(feats=8, widths=(16, 16), kernels=(5, 7), repeat=2, vocab=6),
                       [("features", "float", (8, 32))], True),
    "tiny_lstm": (lambda: RNNClassifier("lstm", feats=6, hidden=12, layers=1, classes=4), [("input", "float", (7, 6))], True),
    "tiny_gru": (lambda: RNNClassifier("gru", feats=6, hidden=12, layers=1, classes=4), [("input", "float", (7, 6))], True),
    "tiny_unet": (lambda: UNet(width=4, classes=3), img(16), True),
}


def make_inputs(spec, n, gen, vocab):
    out = []
    for name, kind, shape in spec:
        if kind == "float":
            out.append(torch.randn((n,) + shape, generator=gen))
        elif kind == "ids":
            out.append(torch.randint(0, vocab, (n,) + shape, generator=gen))
        elif kind == "mask":
            m = torch.ones((n,) + shape, dtype=torch.int64)
            for i in range(1, n):
                m[i, shape[-1] - (shape[-1] * i) // (2 * n):] = 0
            out.append(m)
        else:
            raise ValueError(kind)
    return out


def calibrate_bn(model, spec, gen, vocab, steps=4, n=8):
    """Measure BatchNorm running statistics on random inputs (cumulative
    average over the passes), then switch to eval mode."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if bns:
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        with torch.no_grad():
            for _ in range(steps):
                model(*make_inputs(spec, n, gen, vocab))
    model.eval()


def vocab_of(model):
    for m in model.modules():
        if isinstance(m, nn.Embedding):
            return m.num_embeddings
    return 0


def build(name):
    make, spec, small = ZOO[name]
    torch.manual_seed(SEED)
    model = make()
    gen = torch.Generator().manual_seed(SEED + 1)
    vocab = vocab_of(model)
    calibrate_bn(model, spec, gen, vocab, n=8 if small else 4)
    return model, spec, vocab


def export(model, spec, vocab, path, opset):
    gen = torch.Generator().manual_seed(SEED + 2)
    args = tuple(make_inputs(spec, 2, gen, vocab))
    names = [s[0] for s in spec]
    dyn = {nm: {0: "batch"} for nm in names}
    dyn["logits"] = {0: "batch"}
    tmp = path + ".tmp"
    torch.onnx.export(model, args, tmp, input_names=names, output_names=["logits"],
                      dynamic_axes=dyn, opset_version=opset, do_constant_folding=True)
    os.replace(tmp, path)


def write_small(name, outdir):
    import onnx

    model, spec, vocab = build(name)
    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    for op in SMALL_OPSETS:
        p = os.path.join(d, f"op{op}.onnx")
        export(model, spec, vocab, p, op)
        onnx.checker.check_model(onnx.load(p))
    gen = torch.Generator().manual_seed(SEED + 3)
    xs = make_inputs(spec, SAMPLES, gen, vocab)
    for (nm, kind, _), x in zip(spec, xs):
        np.save(os.path.join(d, nm + ".npy"), x.numpy())
    with torch.no_grad():
        y32 = model(*xs)
        m64 = model.double()
        y = m64(*[x.double() if x.is_floating_point() else x for x in xs])
    np.save(os.path.join(d, "logits.npy"), y.numpy())
    meta = {
        "model": name,
        "seed": SEED,
        "opsets": list(SMALL_OPSETS),
        "inputs": [{"name": nm, "kind": kind, "shape": [SAMPLES] + list(sh),
                    "dtype": str(x.numpy().dtype)} for (nm, kind, sh), x in zip(spec, xs)],
        "logits_shape": list(y.shape),
        "logits_dtype": "float64",
        "float32_vs_float64_max_abs": float((y32.double() - y).abs().max()),
        "params": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
    }
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    sizes = [os.path.getsize(os.path.join(d, f"op{op}.onnx")) for op in SMALL_OPSETS]
    print(f"{name}: {meta['params']} params, onnx {sizes} bytes, logits {meta['logits_shape']}", file=sys.stderr)


def write_large(name, outdir):
    """Exports name at both opsets into outdir (kept when present) and writes
    its reference: <name>_<input>.npy (batch 2) and <name>_logits.npy
    (float64 PyTorch output on them)."""
    model, spec, vocab = build(name)
    for op in OPSETS:
        p = os.path.join(outdir, f"{name}_op{op}.onnx")
        if os.path.exists(p):
            continue
        export(model, spec, vocab, p, op)
        print(f"{p}: {os.path.getsize(p)} bytes", file=sys.stderr)
    gen = torch.Generator().manual_seed(SEED + 3)
    xs = make_inputs(spec, SAMPLES, gen, vocab)
    for (nm, _, _), x in zip(spec, xs):
        np.save(os.path.join(outdir, f"{name}_{nm}.npy"), x.numpy())
    with torch.no_grad():
        y = model.double()(*[x.double() if x.is_floating_point() else x for x in xs])
    np.save(os.path.join(outdir, f"{name}_logits.npy"), y.numpy())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--large", action="store_true", help="write the LARGE models (to --out)")
    ap.add_argument("--out", default=None, help="output directory (default testdata/zoo for SMALL)")
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--list", action="store_true", help="list the models and exit")
    a = ap.parse_args()
    torch.set_num_threads(2)
    if a.list:
        for k, v in ZOO.items():
            print(k, "small" if v[2] else "large")
        return
    names = [n for n in a.only.split(",") if n] or [k for k, v in ZOO.items() if v[2] != a.large]
    for n in names:
        if n not in ZOO:
            sys.exit(f"zoo.py: unknown model {n!r} (see --list)")
    if a.large and not a.out:
        sys.exit("zoo.py: --large needs --out DIR (large models are not committed)")
    out = a.out or os.path.join("testdata", "zoo")
    os.makedirs(out, exist_ok=True)
    for n in names:
        (write_small if ZOO[n][2] and not a.large else write_large)(n, out)


if __name__ == "__main__":
    main()
