#!/usr/bin/python3
"""Write float64 PyTorch reference values for the ONNX test models.

Usage (from the repository root, with Debian's PyTorch):

    /usr/bin/python3 scripts/make_reference.py [--only mlp,lenet,rescnn]

For each testdata/models/<model>.onnx this script evaluates the ONNX graph
itself in float64 with the torch interpreter in scripts/onnx_torch.py (so the
numbers come from the file's own initializers, not the training module), on
the first N=32 MNIST test images, with the mean cross-entropy loss. The
parameter vector theta is the concatenation of the weight and bias
initializers of the Conv / Gemm / MatMul nodes in graph node order (weight
then bias); every other initializer (BatchNormalization statistics, shapes)
is a constant.

Derivatives are exact double backprop (Pearlmutter 1994, "Fast exact
multiplication by the Hessian": H v = d/dr grad L(theta + r v) at r = 0,
computed as the gradient of <grad L, v>). Written to testdata/ref/<model>/:

  meta.json    model, relative ONNX path, n, params (theta layout), units
               (one per Conv/Gemm/MatMul node: weight+bias offset/size), loss,
               exact block traces Tr(H_ii) of every unit with at most
               EXACT_LIMIT parameters, v^T H v, checks, versions
  inputs.npy   float64 N x 1 x 28 x 28 (pixels / 255)
  labels.npy   int64 N
  logits.npy   float64 N x 10
  grad.npy     float64 len(theta): gradient of the mean loss
  v.npy        float64 len(theta): Rademacher probe (+-1), torch.Generator seed V_SEED
  hv.npy       float64 len(theta): H v
  quant.json   per unit ||Q_b(W) - W||^2 for b in BITS (HAWQ-V3 quantizer, see
               QUANTIZER below), weights only

Self-checks (the script fails if one does not hold):
  * float64 interpreter logits equal those of the torch training module
    rebuilt from the ONNX initializers (independent implementation of the
    layers), to 1e-9;
  * H v against a central finite difference of the gradient along v
    (steps 1e-6, 1e-7, 1e-8 tried in turn, relative error <= FD_TOL);
  * every exact block Hessian (built from a graph in which only the block
    requires grad) is symmetric, and H_ii v_i equals the unit's part of the
    full-theta HVP with v restricted to the unit;
  * every exact block Hessian equals the block's generalized Gauss-Newton
    matrix built from per-sample Jacobians (exact for these piecewise-linear
    graphs, see block_hessian).
"""

import argparse
import json
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mnist  # noqa: E402
import onnx_torch  # noqa: E402
import train_models  # noqa: E402

N = 32                      # number of test images (the first N of t10k)
V_SEED = 20240606           # seed of the Rademacher probe generator
EXACT_LIMIT = 2500          # exact block traces for units with <= this many params
FD_EPS = [1e-6, 1e-7, 1e-8]  # central-difference steps along v tried in turn (float64)
FD_TOL = 1e-6               # max relative error of H v against finite differences
SYM_TOL = 1e-10             # max |H - H^T| relative to max |H| of a block
GGN_TOL = 1e-10             # max |H - GGN| relative to max |H| of a block
LOGIT_TOL = 1e-9            # interpreter vs module logits, float64
BITS = [2, 3, 4, 5, 6, 8]
QUANTIZER = (
    "HAWQ-V3 default weight quantizer: symmetric, per output channel, min/max. "
    "For output channel c: scale_c = max|W_c| / (2^(b-1) - 1); "
    "Q_b(W)_c = scale_c * clamp(round(W_c / scale_c), -(2^(b-1) - 1), 2^(b-1) - 1), "
    "round = round half to even (torch.round); a channel with max|W_c| = 0 quantizes to 0. "
    "delta_sq = sum over the whole weight tensor of (Q_b(W) - W)^2, computed in float64 "
    "from the float32 weights; biases are not quantized. Output channel axis: 0 for Conv "
    "weights [out, in/group, kh, kw] and Gemm with transB=1 ([out, in]); 1 for MatMul "
    "and Gemm with transB=0 ([in, out])."
)


def layout(model):
    """Return (params, units) of theta for an ONNX model.

    params: list of dicts name/shape/offset/size in theta order;
    units: list of dicts name/op/weight/bias/offset/size/channel_axis, one per
    Conv/Gemm/MatMul node whose weight is an initializer.
    """
    inits = onnx_torch.initializers(model)
    params, units, seen = [], [], {}
    off = 0
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        w = node.input[1]
        if w not in inits:
            continue
        b = node.input[2] if len(node.input) > 2 and node.input[2] in inits else None
        a = onnx_torch.attrs(node)
        if node.op_type == "Conv":
            axis = 0
        elif node.op_type == "Gemm":
            if a.get("transA", 0):
                raise NotImplementedError(f"node {node.name}: Gemm transA=1")
            axis = 0 if a.get("transB", 0) else 1
        else:
            axis = 1
        start = off
        for name in (w, b):
            if name is None:
                continue
            if name in seen:
                raise NotImplementedError(f"node {node.name}: initializer {name} shared with another node")
            size = int(inits[name].size)
            seen[name] = off
            params.append({"name": name, "shape": list(inits[name].shape), "offset": off, "size": size})
            off += size
        units.append({"name": node.name, "op": node.op_type, "weight": w, "bias": b,
                      "offset": start, "size": off - start, "channel_axis": axis})
    return params, units


def quant_error(w, bits, axis):
    """||Q_b(W) - W||^2 under QUANTIZER for a float64 weight tensor w."""
    wc = w.movedim(axis, 0).reshape(w.shape[axis], -1)
    qmax = 2 ** (bits - 1) - 1
    scale = wc.abs().amax(dim=1, keepdim=True) / qmax
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.clamp(torch.round(wc / safe), -qmax, qmax) * scale
    return float(((q - wc) ** 2).sum())


def block_hessian(model, params, theta0, x, y, o, s):
    """The exact Hessian block of theta[o:o+s] (one unit's weight and bias).

    Only theta[o:o+s] is a leaf requiring grad (every other parameter is a
    constant), which keeps the double-backward graph to what the block
    needs; row j is the HVP with the unit vector e_j: the gradient of
    <grad_B L, e_j> with respect to theta_B, one backward pass per row.
    (Batching the unit vectors with is_grads_batched was slower here.)
    """
    tb = theta0[o:o + s].clone().requires_grad_(True)
    over = {}
    for p in params:
        a, n = p["offset"], p["size"]
        t = tb[a - o:a - o + n] if o <= a < o + s else theta0[a:a + n]
        over[p["name"]] = t.reshape(p["shape"])
    logits = onnx_torch.run(model, x, over, torch.float64)
    loss = F.cross_entropy(logits, y)
    gb = torch.autograd.grad(loss, tb, create_graph=True)[0]
    rows = []
    e = torch.zeros(s, dtype=torch.float64)
    for j in range(s):
        e[j] = 1.0
        rows.append(torch.autograd.grad(gb, tb, grad_outputs=e, retain_graph=True)[0])
        e[j] = 0.0
    H = torch.stack(rows)

    # Independent check: the graphs are piecewise linear in one node's
    # weight and bias (ReLU, MaxPool, inference BN, pooling and Add are
    # piecewise affine), so the logits are affine in theta_B almost
    # everywhere and the block Hessian equals the generalized Gauss-Newton
    # block (Schraudolph 2002): (1/N) sum_n J_n^T (diag p_n - p_n p_n^T) J_n,
    # with J_n the 10 x s Jacobian of sample n's logits, by reverse mode.
    n, k = logits.shape
    J = torch.stack([torch.stack([torch.autograd.grad(logits[i, c], tb, retain_graph=True)[0]
                                  for c in range(k)]) for i in range(n)])
    p = torch.softmax(logits.detach(), dim=1)
    A = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    ggn = torch.einsum("nci,ncd,ndj->ij", J, A, J) / n
    return H, ggn


def module_logits(name, model, x):
    """Logits of the torch training module with weights loaded from the ONNX file."""
    mod = onnx_torch.load_module(train_models.MODELS[name][0](), model)
    with torch.no_grad():
        return mod(x)


def reference(name, models_dir, out_dir, x, y):
    path = os.path.join(models_dir, f"{name}.onnx")
    model = onnx.load(path)
    onnx.checker.check_model(model)
    params, units = layout(model)
    inits = onnx_torch.initializers(model)
    theta0 = torch.cat([torch.from_numpy(np.array(inits[p["name"]], dtype=np.float64)).reshape(-1)
                        for p in params])
    P = theta0.numel()

    def loss_fn(theta):
        over = {p["name"]: theta[p["offset"]:p["offset"] + p["size"]].reshape(p["shape"]) for p in params}
        logits = onnx_torch.run(model, x, over, torch.float64)
        return F.cross_entropy(logits, y), logits

    def grad_at(theta):
        theta = theta.detach().requires_grad_(True)
        loss, _ = loss_fn(theta)
        return torch.autograd.grad(loss, theta)[0]

    theta = theta0.clone().requires_grad_(True)
    loss, logits = loss_fn(theta)
    g = torch.autograd.grad(loss, theta, create_graph=True)[0]

    # Check 1: the graph interpreter against the torch module.
    want = module_logits(name, model, x)
    logit_err = (logits.detach() - want).abs().max().item()
    if logit_err > LOGIT_TOL:
        raise SystemExit(f"{name}: interpreter logits differ from module by {logit_err:.3g}")

    gen = torch.Generator().manual_seed(V_SEED)
    v = (torch.randint(0, 2, (P,), generator=gen) * 2 - 1).double()
    hv = torch.autograd.grad(g, theta, grad_outputs=v, retain_graph=True)[0]
    vhv = float(v @ hv)

    # Check 2: H v against a central finite difference of the gradient.
    # The loss is piecewise smooth (ReLU, MaxPool): a step that moves some
    # pre-activation across zero spoils the difference, so smaller steps are
    # tried in turn; a kink crossing cannot make a wrong H v look right.
    fd_errs = {}
    for eps in FD_EPS:
        fd = (grad_at(theta0 + eps * v) - grad_at(theta0 - eps * v)) / (2 * eps)
        fd_errs[eps] = ((fd - hv).norm() / hv.norm()).item()
        if fd_errs[eps] <= FD_TOL:
            break
    fd_eps, fd_err = eps, fd_errs[eps]
    if fd_err > FD_TOL:
        raise SystemExit(f"{name}: H v vs finite differences relative errors {fd_errs}")

    # Exact block traces, one HVP per unit vector of the block.
    traces, max_asym, max_block_err, max_ggn_err = {}, 0.0, 0.0, 0.0
    for u in units:
        if u["size"] > EXACT_LIMIT:
            continue
        o, s = u["offset"], u["size"]
        H, ggn = block_hessian(model, params, theta0, x, y, o, s)
        scale = H.abs().max().item() or 1.0
        asym = (H - H.t()).abs().max().item() / scale
        if asym > SYM_TOL:
            raise SystemExit(f"{name}: block {u['name']} asymmetric, {asym:.3g}")
        vm = torch.zeros(P, dtype=torch.float64)
        vm[o:o + s] = v[o:o + s]
        hvm = torch.autograd.grad(g, theta, grad_outputs=vm, retain_graph=True)[0][o:o + s]
        berr = ((H @ v[o:o + s] - hvm).norm() / max(hvm.norm().item(), 1e-300)).item()
        if berr > 1e-10:
            raise SystemExit(f"{name}: block {u['name']} H_ii v_i mismatch {berr:.3g}")
        gerr = (H - ggn).abs().max().item() / scale
        if gerr > GGN_TOL:
            raise SystemExit(f"{name}: block {u['name']} Hessian differs from Gauss-Newton, {gerr:.3g}")
        max_asym, max_block_err = max(max_asym, asym), max(max_block_err, berr)
        max_ggn_err = max(max_ggn_err, gerr)
        traces[u["name"]] = float(torch.diagonal(H).sum())
        print(f"  {name}: {u['name']} ({s} params) Tr(H_ii) = {traces[u['name']]:.6g}", flush=True)

    qunits = []
    for u in units:
        w = torch.from_numpy(np.array(inits[u["weight"]], dtype=np.float64))
        qunits.append({
            "name": u["name"], "weight": u["weight"], "shape": list(w.shape),
            "channel_axis": u["channel_axis"], "channels": int(w.shape[u["channel_axis"]]),
            "params": int(w.numel()),
            "delta_sq": {str(b): quant_error(w, b, u["channel_axis"]) for b in BITS},
        })

    os.makedirs(out_dir, exist_ok=True)
    np.save(os.path.join(out_dir, "inputs.npy"), x.numpy())
    np.save(os.path.join(out_dir, "labels.npy"), y.numpy())
    np.save(os.path.join(out_dir, "logits.npy"), logits.detach().numpy())
    np.save(os.path.join(out_dir, "grad.npy"), g.detach().numpy())
    np.save(os.path.join(out_dir, "v.npy"), v.numpy())
    np.save(os.path.join(out_dir, "hv.npy"), hv.numpy())
    meta = {
        "model": name,
        "onnx": f"../../models/{name}.onnx",
        "n": N,
        "data": "first 32 images of MNIST t10k (GoMNIST data/), pixels/255, float64",
        "loss_fn": "mean cross-entropy of logits",
        "theta": "weight then bias initializers of Conv/Gemm/MatMul nodes in graph node order",
        "theta_size": P,
        "params": params,
        "units": [{k: u[k] for k in ("name", "op", "weight", "bias", "offset", "size")} for u in units],
        "loss": float(loss),
        "exact_block_traces": traces,
        "exact_limit": EXACT_LIMIT,
        "vTHv": vhv,
        "v_seed": V_SEED,
        "v_generator": "torch.Generator().manual_seed(v_seed); v = 2*torch.randint(0, 2, (P,)) - 1",
        "checks": {
            "logits_vs_module_max_abs": logit_err,
            "hv_vs_central_fd_rel": fd_err,
            "fd_eps": fd_eps,
            "fd_rel_err_by_eps": {f"{e:g}": r for e, r in fd_errs.items()},
            "block_hessian_max_rel_asymmetry": max_asym,
            "block_hv_max_rel_err": max_block_err,
            "block_hessian_vs_gauss_newton_max_rel": max_ggn_err,
        },
        "generated_by": "scripts/make_reference.py",
        "torch": torch.__version__,
        "onnx_version": onnx.__version__,
        "numpy": np.__version__,
    }
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    quant = {
        "model": name,
        "onnx": f"../../models/{name}.onnx",
        "quantizer": QUANTIZER,
        "bits": BITS,
        "units": qunits,
        "generated_by": "scripts/make_reference.py",
    }
    with open(os.path.join(out_dir, "quant.json"), "w") as f:
        json.dump(quant, f, indent=1)
        f.write("\n")
    print(f"RESULT {name}: P={P} loss={float(loss):.10g} vTHv={vhv:.10g} "
          f"|logits-module|={logit_err:.2g} fd_rel={fd_err:.2g} asym={max_asym:.2g} ggn={max_ggn_err:.2g} "
          f"blocks={len(traces)}/{len(units)}", flush=True)


def verify(name, out_dir, models_dir):
    """Re-read the written files of one model and check them for consistency.

    Checks array shapes and dtypes, that params name ONNX initializers of
    the stated shapes and tile theta in order, that units cover their
    weight then bias, that vTHv equals v . hv, that the
    logits give the stored loss, and that delta_sq decreases with the bit width.
    """
    with open(os.path.join(out_dir, "meta.json")) as f:
        meta = json.load(f)
    with open(os.path.join(out_dir, "quant.json")) as f:
        quant = json.load(f)
    arr = {k: np.load(os.path.join(out_dir, f"{k}.npy"))
           for k in ("inputs", "labels", "logits", "grad", "v", "hv")}
    P, n = meta["theta_size"], meta["n"]
    want = {"inputs": ((n, 1, 28, 28), np.float64), "labels": ((n,), np.int64),
            "logits": ((n, 10), np.float64), "grad": ((P,), np.float64),
            "v": ((P,), np.float64), "hv": ((P,), np.float64)}
    for k, (shape, dt) in want.items():
        if arr[k].shape != shape or arr[k].dtype != dt:
            raise SystemExit(f"{name}: {k}.npy is {arr[k].dtype}{arr[k].shape}, want {dt}{shape}")
    model = onnx.load(os.path.normpath(os.path.join(out_dir, meta["onnx"])))
    inits = onnx_torch.initializers(model)
    off, by_name = 0, {}
    for p in meta["params"]:
        if p["offset"] != off or p["size"] != int(np.prod(p["shape"])):
            raise SystemExit(f"{name}: param {p['name']} offset/size inconsistent")
        if p["name"] not in inits or list(inits[p["name"]].shape) != p["shape"]:
            raise SystemExit(f"{name}: param {p['name']} is not an ONNX initializer of shape {p['shape']}")
        by_name[p["name"]] = p
        off += p["size"]
    if off != P:
        raise SystemExit(f"{name}: params cover {off} of theta_size {P}")
    for u in meta["units"]:
        w = by_name[u["weight"]]
        end = w["offset"] + w["size"]
        if u["bias"] is not None:
            b = by_name[u["bias"]]
            if b["offset"] != end:
                raise SystemExit(f"{name}: unit {u['name']} bias not right after weight")
            end = b["offset"] + b["size"]
        if u["offset"] != w["offset"] or u["offset"] + u["size"] != end:
            raise SystemExit(f"{name}: unit {u['name']} offset/size inconsistent")
    if not np.all(np.abs(arr["v"]) == 1):
        raise SystemExit(f"{name}: v is not a +-1 vector")
    vhv = float(arr["v"] @ arr["hv"])
    if abs(vhv - meta["vTHv"]) > 1e-9 * max(1.0, abs(vhv)):
        raise SystemExit(f"{name}: v.hv = {vhv} but meta vTHv = {meta['vTHv']}")
    loss = float(F.cross_entropy(torch.from_numpy(arr["logits"]), torch.from_numpy(arr["labels"])))
    if abs(loss - meta["loss"]) > 1e-12 * max(1.0, abs(loss)):
        raise SystemExit(f"{name}: loss of logits.npy {loss} but meta loss {meta['loss']}")
    if [q["name"] for q in quant["units"]] != [u["name"] for u in meta["units"]]:
        raise SystemExit(f"{name}: quant.json units differ from meta.json units")
    for q in quant["units"]:
        d = [q["delta_sq"][str(b)] for b in quant["bits"]]
        if any(a < b for a, b in zip(d, d[1:])):
            raise SystemExit(f"{name}: unit {q['name']} delta_sq not decreasing in bits: {d}")
    print(f"verified {name}: {len(meta['params'])} params, {len(meta['units'])} units, theta {P}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="mlp,lenet,rescnn", help="comma-separated model names")
    ap.add_argument("--models", default=os.path.join(mnist.REPO, "testdata", "models"))
    ap.add_argument("--out", default=os.path.join(mnist.REPO, "testdata", "ref"))
    ap.add_argument("--verify", action="store_true", help="only check the written files")
    args = ap.parse_args()
    if args.verify:
        for name in args.only.split(","):
            verify(name, os.path.join(args.out, name), args.models)
        return
    torch.set_num_threads(1)  # deterministic reductions; faster on a shared machine
    xs, ys = mnist.load("test", np.float64)
    x = torch.from_numpy(xs[:N].copy())
    y = torch.from_numpy(ys[:N].copy())
    for name in args.only.split(","):
        reference(name, args.models, os.path.join(args.out, name), x, y)
        verify(name, os.path.join(args.out, name), args.models)


if __name__ == "__main__":
    main()
