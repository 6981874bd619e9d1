#!/bin/sh
# Data-free against real calibration on the residual CNN: traces from 256
# MNIST training images and from 64 synthetic inputs (--data synthetic,
# 500 Adam steps, no input prior: the model takes pixels in [0, 1]), the
# Spearman rank correlation of their per-layer average traces, and the
# plans each gives at three size budgets with their accuracy on the 10,000
# MNIST test images (activations calibrated on MNIST training images for
# both, so that only the plan differs).
#
# Usage: sh bench/synthetic_vs_real.sh   (from the repository root; needs
# /usr/bin/python3 for the rank correlation, a few minutes)
set -eu
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go build -o "$dir/bitplan" ./cmd/bitplan
b="$dir/bitplan"
m=testdata/models/rescnn.onnx
$b trace $m --data mnist --samples 256 --max-probes 64 --seed 7 --format json -o "$dir/real.json"
$b trace $m --data synthetic --synthetic-samples 64 --synthetic-steps 500 --synthetic-prior none \
  --max-probes 64 --seed 7 --format json -o "$dir/syn.json"
for s in real syn; do
  for p in 25 50 75; do
    $b solve "$dir/$s.json" --max-size $p% --format json -o "$dir/plan_${s}_$p.json"
    $b eval $m --plan "$dir/plan_${s}_$p.json" --data mnist --samples 10000 --format json -o "$dir/eval_${s}_$p.json" 2>/dev/null
  done
done
/usr/bin/python3 - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
def load(p): return json.load(open(f"{d}/{p}"))
r = {l["name"]: l["avg_trace"] for l in load("real.json")["layers"]}
s = {l["name"]: l["avg_trace"] for l in load("syn.json")["layers"]}
names = list(r)
def ranks(v):
    o = sorted(range(len(v)), key=lambda i: v[i])
    out = [0] * len(v)
    for k, i in enumerate(o):
        out[i] = k
    return out
a, b = ranks([r[n] for n in names]), ranks([s[n] for n in names])
n = len(names)
print(f"Spearman rank correlation of the {n} layers' average traces: {1 - 6 * sum((x - y) ** 2 for x, y in zip(a, b)) / (n * (n * n - 1)):.3f}")
for nm in names:
    print(f"  {nm:12s} real {r[nm]:.4g}  synthetic {s[nm]:.4g}")
for p in (25, 50, 75):
    for src in ("real", "syn"):
        pl, ev = load(f"plan_{src}_{p}.json"), load(f"eval_{src}_{p}.json")
        bits = "/".join(str(l["bits"]) for l in pl["layers"])
        print(f"size {p}%: {src:4s} plan {bits:14s} test accuracy {ev['quantized']['accuracy']:.4f} (float {ev['float']['accuracy']:.4f}), {ev['weight_bytes']} weight bytes")
PY
