#!/usr/bin/python3
"""Write float64 PyTorch references of Hessian-vector products with respect to layer inputs.

Usage (from the repository root, with Debian's PyTorch):

    /usr/bin/python3 scripts/make_input_hvp_reference.py [--only mlp,lenet,rescnn,fmnist_mbv2]
    /usr/bin/python3 scripts/make_input_hvp_reference.py --verify   # re-check the files

The reference for nn.Engine.InputHVP (nn/unitinput.go) and through it for
eval.ActivationTerm. For every quantizable layer u (Conv / Gemm / MatMul
node with an initializer weight: the units of make_reference.layout, the
names nn.Engine.Units reports) the layer's input activation a_u is
perturbed as that layer reads it: a zero tensor d_u requiring grad is added
to the layer's input by a forward pre-hook on the layer's module, so other
readers of the same tensor (the residual branch of rescnn reading the
stem's output, the identity shortcuts of fmnist_mbv2) see it unchanged. The
loss is the mean cross-entropy over the N samples (nn.ClassLabels: the sum
over samples divided by the dataset's length), in float64, in inference
mode (BatchNorm with running statistics). Double backprop (Pearlmutter
1994) gives

  own    H_u v_u = d/dd_u <grad_{d_u} L, v_u>, only d_u a leaf: the diagonal
         block H_a of the layer's input, one product per layer;
  joint  the product with every d_u a leaf at once and the direction v on
         all of them: its u component is sum_k H_uk v_k (a perturbation of
         an early layer's input flows into the later layers' inputs, and the
         later d_k are added on top).

v is a Rademacher vector (torch.Generator seed V_SEED, drawn layer by layer
in unit order, each N x the input's per-sample shape). The modules are
the training modules of scripts/train_models.py and scripts/train_study.py
with the ONNX file's initializers loaded (onnx_torch.load_module); the
layer's module is the one whose weight is the unit's weight initializer.

Written to testdata/ref/<model>/:

  input_hvp.json       model, onnx, n, the input and label files, loss,
                       units (name, op, module, input tensor, per-sample
                       shape, offset and size in the flat vectors, sum and
                       sum of squares of the input a over the N samples,
                       v_u . H_u v_u), joint vTHv, checks, versions
  input_hvp_v.npy      int8: v, the units' parts concatenated in unit order,
                       each sample-major (N x per-sample elements)
  input_hvp_hv.npy     float64: the own products H_u v_u, same layout
  input_hvp_hv_joint.npy  float64: the joint product, same layout

The samples are the first N of the model's reference images: for the MNIST
models testdata/ref/<model>/inputs.npy and labels.npy (the first 32 MNIST
t10k images, written by make_reference.py; checked equal to the IDX
files), for fmnist_mbv2 the first N Fashion-MNIST t10k images, written to
testdata/ref/fmnist_mbv2/inputs.npy and labels.npy.

Self-checks (the script fails if one does not hold):
  * the module's logits equal those of the ONNX graph run by onnx_torch
    (LOGIT_TOL), and each hooked input equals the graph's tensor;
  * every product (own and joint) equals the one computed through the ONNX
    graph by onnx_torch.run's input_deltas (an independent forward, the
    same perturbation contract), to AGREE_TOL relative;
  * every product equals the generalized Gauss-Newton product J^T A J v / N
    (ggn_products: exact for these piecewise-linear networks, from first
    derivatives only), to AGREE_TOL relative;
  * every product against a central finite difference of the gradient along
    v (steps FD_EPS tried in turn, a step that moves a ReLU or max-pool kink
    spoils the difference), relative error <= FD_TOL, unless the error grows
    as 1/eps (kinked: the gradient jumps at d = 0 itself, as at LeNet's
    max-pool windows with tied maxima on the blank background; recorded as
    fd_kink, and such products rest on the Gauss-Newton check).
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
import make_reference  # noqa: E402
import mnist  # noqa: E402
import onnx_torch  # noqa: E402
import train_models  # noqa: E402
import train_study  # noqa: E402

N = 4                        # samples (the first N of the model's reference images)
V_SEED = 20261201            # seed of the Rademacher direction
FD_EPS = [1e-6, 1e-7, 1e-8]  # central-difference steps along v, tried in turn
FD_TOL = 1e-6                # max relative error (2-norm) against the finite difference
AGREE_TOL = 1e-10            # max |module - graph| / max |graph| of a product
LOGIT_TOL = 1e-9             # max |module - graph| of the logits

# name -> (torch module constructor, dataset of the reference images)
MODELS = {
    "mlp": (train_models.MLP, "mnist"),
    "lenet": (train_models.LeNet, "mnist"),
    "rescnn": (train_models.ResCNN, "mnist"),
    "fmnist_mbv2": (train_study.MBV2, "fashion"),
}


def rel(got, want):
    """max |got - want| / max |want| (the Go test's measure)."""
    return float((got - want).abs().max() / max(float(want.abs().max()), 1e-300))


class Model:
    """One ONNX model with its torch module and units."""

    def __init__(self, name, models_dir):
        self.name = name
        self.path = os.path.join(models_dir, f"{name}.onnx")
        self.onnx = onnx.load(self.path)
        onnx.checker.check_model(self.onnx)
        _, units = make_reference.layout(self.onnx)
        nodes = {n.name: n for n in self.onnx.graph.node}
        self.mod = onnx_torch.load_module(MODELS[name][0](), self.onnx)
        self.units = []
        for u in units:
            w = u["weight"]
            if not w.endswith(".weight"):
                raise SystemExit(f"{name}: unit {u['name']} weight {w} is not a module's weight")
            path = w[:-len(".weight")]
            m = self.mod.get_submodule(path)
            if not isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                raise SystemExit(f"{name}: unit {u['name']}: module {path} is a {type(m).__name__}")
            self.units.append({"name": u["name"], "op": u["op"], "module": path,
                               "input": nodes[u["name"]].input[0]})

    def module_loss(self, x, y, deltas, seen=None):
        """Loss and logits of the module with deltas[i] (None: nothing) added
        to unit i's input as its module reads it; seen, if a dict, receives
        each unit's input before the addition."""
        calls, handles = {}, []
        for i, u in enumerate(self.units):
            d = deltas[i]

            def hook(m, inp, i=i, d=d):
                calls[i] = calls.get(i, 0) + 1
                if seen is not None:
                    seen[i] = inp[0].detach().clone()
                return None if d is None else (inp[0] + d,) + tuple(inp[1:])
            handles.append(self.mod.get_submodule(u["module"]).register_forward_pre_hook(hook))
        try:
            logits = self.mod(x)
        finally:
            for h in handles:
                h.remove()
        if any(calls.get(i) != 1 for i in range(len(self.units))):
            raise SystemExit(f"{self.name}: unit modules ran {calls} times, want once each")
        return F.cross_entropy(logits, y), logits

    def graph_loss(self, x, y, deltas, values=None):
        """The same loss through the ONNX graph (onnx_torch.run input_deltas)."""
        over = {u["name"]: d for u, d in zip(self.units, deltas) if d is not None}
        logits = onnx_torch.run(self.onnx, x, None, torch.float64, values, input_deltas=over)
        return F.cross_entropy(logits, y), logits


def products(loss_fn, shapes, on, v):
    """Gradient and H.v with respect to the deltas of the units in on (the
    others absent), v the per-unit directions; returns (grads, hvs) of on."""
    ds = [None] * len(shapes)
    for i in on:
        ds[i] = torch.zeros(shapes[i], dtype=torch.float64, requires_grad=True)
    leaves = [ds[i] for i in on]
    loss, _ = loss_fn(ds)
    g = torch.autograd.grad(loss, leaves, create_graph=True)
    hv = torch.autograd.grad(g, leaves, grad_outputs=[v[i] for i in on])
    return [t.detach() for t in g], list(hv)


def grad_at(loss_fn, shapes, on, v, eps):
    """Gradient with respect to the deltas of on at deltas = eps * v."""
    ds = [None] * len(shapes)
    for i in on:
        ds[i] = (eps * v[i]).requires_grad_(True)
    loss, _ = loss_fn(ds)
    return torch.autograd.grad(loss, [ds[i] for i in on])


def ggn_products(mdl, x, y, shapes, on, v):
    """H.v as the generalized Gauss-Newton product J^T A J v / N (Schraudolph
    2002), J the Jacobian of the logits in the deltas of on and A the
    Hessian of cross-entropy in the logits per sample, diag(p) - p p^T.

    These networks are piecewise linear in their activations (ReLU, ReLU6,
    max pooling, inference BatchNorm, average pooling, Add, Conv, Gemm), so
    the logits are affine in the deltas wherever the pattern of active
    pieces holds and the loss Hessian equals this product exactly. It uses
    first derivatives of the network only (J v by the double-vjp trick:
    the gradient in u of <J^T u, v>), not the double backward of the loss.
    """
    ds = [None] * len(shapes)
    for i in on:
        ds[i] = torch.zeros(shapes[i], dtype=torch.float64, requires_grad=True)
    leaves = [ds[i] for i in on]
    _, logits = mdl.module_loss(x, y, ds)
    u = torch.zeros_like(logits, requires_grad=True)
    jtu = torch.autograd.grad(logits, leaves, grad_outputs=u, create_graph=True)
    jv = torch.autograd.grad(jtu, u, grad_outputs=[v[i] for i in on])[0]
    p = torch.softmax(logits.detach(), dim=1)
    ajv = p * (jv - (p * jv).sum(dim=1, keepdim=True)) / logits.shape[0]
    return list(torch.autograd.grad(logits, leaves, grad_outputs=ajv))


def fd_check(loss_fn, shapes, on, v, hv):
    """Relative 2-norm error of hv against central differences; (eps, err, all)."""
    want = torch.cat([t.reshape(-1) for t in hv])
    errs = {}
    for eps in FD_EPS:
        gp = grad_at(loss_fn, shapes, on, v, eps)
        gm = grad_at(loss_fn, shapes, on, v, -eps)
        fd = torch.cat([((p - m) / (2 * eps)).reshape(-1) for p, m in zip(gp, gm)])
        errs[eps] = float((fd - want).norm() / max(float(want.norm()), 1e-300))
        if errs[eps] <= FD_TOL:
            break
    return eps, errs[eps], errs


def kinked(errs):
    """Whether finite-difference errors (by step, largest step first) grow
    as 1/eps: the gradient jumps at the expansion point itself (tied maxima
    of a max-pool window that any perturbation along v breaks), so no step
    can resolve the second derivative there."""
    e = [errs[k] for k in FD_EPS if k in errs]
    return len(e) == len(FD_EPS) and e[0] > 1 and all(b > 5 * a for a, b in zip(e, e[1:]))


def samples(name, dataset, ref_dir):
    """The first N reference images and labels of a model (float64, int64)."""
    xs, ys = mnist.load("test", np.float64, dataset)
    x, y = xs[:N].copy(), ys[:N].copy()
    committed = os.path.join(ref_dir, "inputs.npy")
    if os.path.exists(committed):
        cx = np.load(committed)[:N]
        cy = np.load(os.path.join(ref_dir, "labels.npy"))[:N]
        if not (np.array_equal(cx, x) and np.array_equal(cy, y)):
            raise SystemExit(f"{name}: {committed} differs from the first {N} {dataset} t10k images")
        return x, y, False
    return x, y, True


def reference(name, models_dir, out_dir):
    mdl = Model(name, models_dir)
    x, y, write_inputs = samples(name, MODELS[name][1], out_dir)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    U = len(mdl.units)

    def mloss(ds):
        return mdl.module_loss(xt, yt, ds)

    def gloss(ds):
        return mdl.graph_loss(xt, yt, ds)

    # The inputs as the layers read them, from the module and the graph.
    seen, values = {}, {}
    with torch.no_grad():
        loss, logits = mdl.module_loss(xt, yt, [None] * U, seen)
        _, glogits = mdl.graph_loss(xt, yt, [None] * U, values)
    logit_err = float((logits - glogits).abs().max())
    if logit_err > LOGIT_TOL:
        raise SystemExit(f"{name}: module logits differ from the ONNX graph's by {logit_err:.3g}")
    input_err = 0.0
    for i, u in enumerate(mdl.units):
        a, b = seen[i], values.get(u["input"], xt if u["input"] == mdl.onnx.graph.input[0].name else None)
        if b is None or a.shape != b.shape:
            raise SystemExit(f"{name}: unit {u['name']} reads {tuple(a.shape)} in the module, graph tensor {u['input']} differs")
        input_err = max(input_err, float((a - b).abs().max()))
    if input_err > LOGIT_TOL:
        raise SystemExit(f"{name}: unit inputs differ between module and graph by {input_err:.3g}")
    shapes = [tuple(seen[i].shape) for i in range(U)]

    gen = torch.Generator().manual_seed(V_SEED)
    v = [(torch.randint(0, 2, s, generator=gen) * 2 - 1).double() for s in shapes]

    checks = {"logits_module_vs_graph_max_abs": logit_err, "inputs_module_vs_graph_max_abs": input_err,
              "own": {}, "joint": None}
    own_hv, units = [], []
    off = 0
    for i, u in enumerate(mdl.units):
        _, hv = products(mloss, shapes, [i], v)
        _, ghv = products(gloss, shapes, [i], v)
        agree = rel(hv[0], ghv[0])
        if agree > AGREE_TOL:
            raise SystemExit(f"{name}: {u['name']}: module and graph H.v differ by {agree:.3g}")
        ggn = rel(ggn_products(mdl, xt, yt, shapes, [i], v)[0], hv[0])
        if ggn > AGREE_TOL:
            raise SystemExit(f"{name}: {u['name']}: H.v differs from the Gauss-Newton product by {ggn:.3g}")
        eps, fd, errs = fd_check(mloss, shapes, [i], v, hv)
        kink = fd > FD_TOL and kinked(errs)
        if fd > FD_TOL and not kink:
            raise SystemExit(f"{name}: {u['name']}: H.v vs finite differences {errs}")
        checks["own"][u["name"]] = {"module_vs_graph_rel": agree, "gauss_newton_rel": ggn,
                                    "fd_rel": fd, "fd_eps": eps, "fd_kink": kink,
                                    "fd_rel_by_eps": {f"{e:g}": r for e, r in errs.items()}}
        own_hv.append(hv[0])
        a = seen[i]
        size = a.numel()
        units.append({**u, "shape": list(shapes[i][1:]), "offset": off, "size": size,
                      "a_sum": float(a.sum()), "a_sq_sum": float((a * a).sum()),
                      "vTHv": float((v[i] * hv[0]).sum())})
        off += size
        print(f"  {name}: {u['name']} input {u['input']} {list(shapes[i])}: vTHv {units[-1]['vTHv']:.10g}, "
              f"module vs graph {agree:.2g}, Gauss-Newton {ggn:.2g}, fd {fd:.2g} (eps {eps:g}"
              f"{', kink at 0' if kink else ''})", flush=True)

    every = list(range(U))
    _, jhv = products(mloss, shapes, every, v)
    _, gjhv = products(gloss, shapes, every, v)
    flat = lambda ts: torch.cat([t.reshape(-1) for t in ts])
    agree = rel(flat(jhv), flat(gjhv))
    if agree > AGREE_TOL:
        raise SystemExit(f"{name}: joint: module and graph H.v differ by {agree:.3g}")
    ggn = rel(flat(ggn_products(mdl, xt, yt, shapes, every, v)), flat(jhv))
    if ggn > AGREE_TOL:
        raise SystemExit(f"{name}: joint: H.v differs from the Gauss-Newton product by {ggn:.3g}")
    eps, fd, errs = fd_check(mloss, shapes, every, v, jhv)
    kink = fd > FD_TOL and kinked(errs)
    if fd > FD_TOL and not kink:
        raise SystemExit(f"{name}: joint: H.v vs finite differences {errs}")
    checks["joint"] = {"module_vs_graph_rel": agree, "gauss_newton_rel": ggn, "fd_rel": fd,
                       "fd_eps": eps, "fd_kink": kink, "fd_rel_by_eps": {f"{e:g}": r for e, r in errs.items()}}
    vthv_joint = float(flat(v) @ flat(jhv))

    os.makedirs(out_dir, exist_ok=True)
    if write_inputs:
        np.save(os.path.join(out_dir, "inputs.npy"), x)
        np.save(os.path.join(out_dir, "labels.npy"), y)
    np.save(os.path.join(out_dir, "input_hvp_v.npy"), flat(v).numpy().astype(np.int8))
    np.save(os.path.join(out_dir, "input_hvp_hv.npy"), flat(own_hv).numpy())
    np.save(os.path.join(out_dir, "input_hvp_hv_joint.npy"), flat(jhv).numpy())
    data = {"mnist": "MNIST t10k (GoMNIST data/)", "fashion": "Fashion-MNIST t10k (dataset-fashion-mnist)"}
    meta = {
        "model": name,
        "onnx": f"../../models/{name}.onnx",
        "n": N,
        "inputs": "inputs.npy",
        "labels": "labels.npy",
        "data": f"the first {N} images of {data[MODELS[name][1]]}, pixels/255, float64 (the first n rows of inputs.npy/labels.npy)",
        "loss_fn": "mean cross-entropy of logits over the n samples, inference mode",
        "loss": float(loss),
        "perturbation": "d_u added to unit u's input as that unit reads it (a forward pre-hook on its module); other readers of the tensor see it unchanged",
        "units": units,
        "size": off,
        "v_seed": V_SEED,
        "v_generator": "g = torch.Generator().manual_seed(v_seed); per unit in order: 2*torch.randint(0, 2, (n,) + shape, generator=g) - 1",
        "hv": "input_hvp_hv.npy: H_u v_u with only unit u's input perturbed (the diagonal block H_a), per unit",
        "hv_joint": "input_hvp_hv_joint.npy: H v with every unit's input perturbed at once, direction v on all of them",
        "vTHv_joint": vthv_joint,
        "checks": checks,
        "generated_by": "scripts/make_input_hvp_reference.py",
        "torch": torch.__version__,
        "onnx_version": onnx.__version__,
        "numpy": np.__version__,
    }
    with open(os.path.join(out_dir, "input_hvp.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    smooth = [c["fd_rel"] for c in checks["own"].values() if not c["fd_kink"]]
    kinks = len(checks["own"]) - len(smooth)
    print(f"RESULT {name}: {U} units, {off} input elements, loss={float(loss):.10g} "
          f"vTHv_joint={vthv_joint:.10g} |logits-graph|={logit_err:.2g} "
          f"worst own Gauss-Newton={max(c['gauss_newton_rel'] for c in checks['own'].values()):.2g} "
          f"worst own fd={max(smooth, default=0):.2g} ({kinks} units kinked at 0) "
          f"joint fd={'kink' if kink else f'{fd:.2g}'}", flush=True)


def verify(name, out_dir, models_dir):
    """Re-read one model's files and check their shapes, layout and sums."""
    with open(os.path.join(out_dir, "input_hvp.json")) as f:
        meta = json.load(f)
    arr = {k: np.load(os.path.join(out_dir, f"input_hvp_{k}.npy")) for k in ("v", "hv", "hv_joint")}
    P, n = meta["size"], meta["n"]
    for k, dt in (("v", np.int8), ("hv", np.float64), ("hv_joint", np.float64)):
        if arr[k].shape != (P,) or arr[k].dtype != dt:
            raise SystemExit(f"{name}: input_hvp_{k}.npy is {arr[k].dtype}{arr[k].shape}, want {np.dtype(dt)}({P},)")
    if not np.all(np.abs(arr["v"]) == 1):
        raise SystemExit(f"{name}: v is not a +-1 vector")
    mdl = Model(name, models_dir)
    if [u["name"] for u in meta["units"]] != [u["name"] for u in mdl.units]:
        raise SystemExit(f"{name}: units differ from the ONNX file's")
    off = 0
    for u in meta["units"]:
        if u["offset"] != off or u["size"] != n * int(np.prod(u["shape"])):
            raise SystemExit(f"{name}: unit {u['name']} offset/size inconsistent")
        s = slice(off, off + u["size"])
        vhv = float(arr["v"][s].astype(np.float64) @ arr["hv"][s])
        if abs(vhv - u["vTHv"]) > 1e-9 * max(1.0, abs(vhv)):
            raise SystemExit(f"{name}: unit {u['name']}: v.hv = {vhv}, file says {u['vTHv']}")
        off += u["size"]
    if off != P:
        raise SystemExit(f"{name}: units cover {off} of {P}")
    vhv = float(arr["v"].astype(np.float64) @ arr["hv_joint"])
    if abs(vhv - meta["vTHv_joint"]) > 1e-9 * max(1.0, abs(vhv)):
        raise SystemExit(f"{name}: joint v.hv = {vhv}, file says {meta['vTHv_joint']}")
    x = np.load(os.path.join(out_dir, meta["inputs"]))
    if x.shape[0] < n:
        raise SystemExit(f"{name}: {meta['inputs']} has {x.shape[0]} samples, want at least {n}")
    print(f"verified {name}: {len(meta['units'])} units, {P} input elements")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default=",".join(MODELS), help="comma-separated model names")
    ap.add_argument("--models", default=os.path.join(mnist.REPO, "testdata", "models"))
    ap.add_argument("--out", default=os.path.join(mnist.REPO, "testdata", "ref"))
    ap.add_argument("--verify", action="store_true", help="only check the written files")
    args = ap.parse_args()
    names = args.only.split(",")
    for name in names:
        if name not in MODELS:
            raise SystemExit(f"unknown model {name!r}, want one of {', '.join(MODELS)}")
    torch.set_num_threads(1)  # deterministic reductions; light on a shared machine
    for name in names:
        if not args.verify:
            reference(name, args.models, os.path.join(args.out, name))
        verify(name, os.path.join(args.out, name), args.models)


if __name__ == "__main__":
    main()
