"""The sensitivity table: the JSON contract ``bitplan solve`` reads.

    {"model": "resnet18",
     "source": "traces: hutchinson, 40 probes (40 Hessian-vector products) over 256 ...",
     "layers": [{"name": "/layer1/layer1.0/conv1/Conv", "params": 36864, "macs": 115605504,
                 "avg_trace": 0.0686, "avg_trace_stderr": 0.001, "trace": 2528.1,
                 "delta_sq": {"4": 6.743, "8": 0.0235},
                 "in_elems": 200704, "out_elems": 200704, "out_channels": 64}]}

Fields and their order are those of bitplan's ``sensitivity.Layer``
(sensitivity/table.go); ``avg_trace`` is Tr(H_i)/params over the unit's
weights, ``avg_trace_stderr`` its standard error (absent for exact
traces), ``delta_sq`` maps a candidate ("4" = W4A4, "w4a8") to
‖Q_b(W) − W‖²₂.
"""

import json
import os
import re
import tempfile

import torch
import torch.nn.functional as F

from . import estimators as est
from .dist import Comm
from .quant import Quantizer
from .units import find_units, theta_params

METHODS = ("hutchinson", "hutch++", "exact")
SPLITS = ("auto", "probes", "data")


def parse_precision(key):
    """(w_bits, a_bits, canonical key) of a candidate: 4, "4", "w4a8", "W4A8" or "4/8"."""
    k = str(key).strip().lower()
    m = re.fullmatch(r"w(\d+)a(\d+)", k) or re.fullmatch(r"(\d+)/(\d+)", k)
    if m:
        w, a = int(m.group(1)), int(m.group(2))
    elif re.fullmatch(r"\d+", k):
        w = a = int(k)
    else:
        raise ValueError(f'precision {key!r}: want a bit width like "4" or a pair like "w4a8"')
    if not (1 <= w <= 64 and 1 <= a <= 64):
        raise ValueError(f"precision {key!r}: bit widths must lie in 1..64")
    return w, a, (str(w) if w == a else f"w{w}a{a}")


class Table(dict):
    """A sensitivity table (a dict in the JSON layout) with the estimator's result attached.

    ``result`` is the :class:`~bitplan_torch.estimators.TraceResult`
    (per-probe samples, intervals, probes, matvecs, seconds);
    ``warnings`` lists units left out and similar notes.
    """

    result = None
    warnings = ()

    def to_json(self):
        """The table as indented JSON text (as bitplan writes it), ending in a newline."""
        return json.dumps(self, indent=2, ensure_ascii=False) + "\n"

    def write_table(self, path):
        """Write the table to path atomically (a temporary file renamed into place)."""
        write_table(self, path)


def write_table(table, path):
    """Write a table (dict) as JSON to path atomically; the file appears only when complete."""
    text = json.dumps(table, indent=2, ensure_ascii=False) + "\n"
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".table-", suffix=".json", dir=d)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file ordinary permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _fingerprint(batches):
    """(batches, samples, checksum) of the calibration data, to compare across ranks."""
    from .units import _first_tensor
    total, check = 0, 0.0
    for inputs, _ in batches:
        total += est.batch_size(inputs)
        t = _first_tensor(inputs)
        if t.is_floating_point():
            check += float(t.detach().double().sum())
        else:
            check += float(t.detach().long().sum())
    return len(batches), total, check


def sensitivity_table(model, batches, loss_fn=None, units=None, bits=(4, 8),
                      quantizer="symmetric,per-channel,minmax", method="hutchinson", tol=0.05,
                      min_probes=10, max_probes=100, seed=1, probe="rademacher", abs_tol=0.0,
                      near_zero=0.1, confidence=0.95, matvecs=60, probe_batch=8, names="onnx",
                      model_name="model", ties=None, device=None, split="auto", sharded=False,
                      group=None, progress=None):
    """Per-unit Hessian traces and quantization errors of a PyTorch model, as a bitplan table.

    model      a torch.nn.Module; evaluated in eval() mode (BatchNorm with
               running statistics), restored afterwards.
    batches    a list (or iterable) of (inputs, targets); inputs is a tensor,
               a tuple (model(*inputs)) or a dict (model(**inputs)).
    loss_fn    loss_fn(output, targets) -> scalar mean loss of the batch
               (default: mean cross-entropy of the logits, as bitplan).
    units      None (every Conv/Linear/Embedding), module names, or a
               predicate f(name, module).
    bits       candidates: ints or keys such as "w4a8".
    quantizer  a Quantizer or bitplan's spec "symmetric|asymmetric,
               per-channel|per-tensor, minmax|mse".
    method     "hutchinson" (adaptive: tol, min_probes, max_probes, abs_tol,
               near_zero), "hutch++" (matvecs) or "exact".
    seed       probe seed; Rademacher probes equal bitplan's for the same
               seed and θ layout.
    names      "onnx" (torch.onnx.export node names) or "module".
    ties       lists of module or unit names that must share a precision.
    split      under torch.distributed: "probes" (ranks compute different
               probes on all the data), "data" (ranks split the batches),
               "auto" ("data" if sharded else "probes").
    sharded    True when every rank passes only its own batches.
    group      the process group (default: the world).
    progress   True/False/None (None: on stderr when it is a terminal).

    Returns a :class:`Table`. Every rank returns the same table.
    """
    comm = Comm(group)
    if method not in METHODS:
        raise ValueError(f"method {method!r}: want one of {METHODS}")
    if split not in SPLITS:
        raise ValueError(f"split {split!r}: want one of {SPLITS}")
    if sharded and split == "probes":
        raise ValueError("split='probes' needs every rank to hold all batches; sharded data needs split='data'")
    if split == "auto":
        split = "data" if sharded else "probes"
    q = Quantizer.parse(quantizer)
    cands = [parse_precision(b) for b in (bits if isinstance(bits, (list, tuple)) else str(bits).split(","))]
    if not cands:
        raise ValueError("bits: no candidate precision")
    if len({c[2] for c in cands}) != len(cands):
        raise ValueError(f"bits {bits!r}: a candidate is listed twice")
    for w, _, _ in cands:
        q._check_bits(w)
    if loss_fn is None:
        loss_fn = F.cross_entropy

    batches = list(batches)
    error, us, warnings, info = None, None, [], {}
    was_training = model.training
    model.eval()
    frozen = []
    try:
        try:
            if not batches:
                raise ValueError("no calibration batches")
            sizes = [est.batch_size(x) for x, _ in batches]
            if device is None:
                p0 = next(model.parameters(), None)
                device = p0.device if p0 is not None else torch.device("cpu")
            device = torch.device(device)
            x0 = est._to(batches[0][0], device)
            us, warnings = find_units(model, lambda: est._call(model, x0), sizes[0], units, names)
            params, pnames, offsets = theta_params(us)
            nb, ns, check = _fingerprint(batches)
            info = {"theta": sum(p.numel() for p in params),
                    "units": [(u.name, list(u.weight.shape)) for u in us]}
            if not sharded:
                info.update({"batches": nb, "samples": ns, "data checksum": check})
            info["local samples"] = ns
        except ValueError as e:
            error = str(e)
        keys = ("theta", "units") + (() if sharded else ("batches", "samples", "data checksum"))
        infos = comm.agree(info, error, keys)
        if sharded and any(i["local samples"] == 0 for i in infos):
            raise ValueError("a rank has no calibration samples")

        # θ = the units' parameters; everything else is a constant.
        unit_ids = {id(p) for p in params}
        for p in model.parameters():
            if id(p) not in unit_ids and p.requires_grad:
                p.requires_grad_(False)
                frozen.append(p)
        for p in params:
            if not p.requires_grad:
                p.requires_grad_(True)
                frozen.append((p,))

        if split == "data" and not sharded:
            mine = list(range(comm.rank, len(batches), comm.world))
            n_total = sum(sizes)
        elif split == "data":
            mine = list(range(len(batches)))
            n_total = sum(i["local samples"] for i in infos)
        else:
            mine = list(range(len(batches)))
            n_total = sum(sizes)
        op = est.HessianOperator(model, params, [batches[i] for i in mine],
                                 [sizes[i] / n_total for i in mine], loss_fn, device, comm, split)
        owners = [u for u in us if u.owner is None]
        index = {id(p): i for i, p in enumerate(params)}
        blocks = [est.Block(u.name, offsets[index[id(u.weight)]], u.params) for u in owners]
        # The estimators see the weights' Hessian only (bitplan's hessian.Restrict).
        rop = est.Restricted(op, blocks)
        if method == "hutchinson":
            res = est.hutchinson(rop, rop.blocks, seed=seed, probe=probe, min_probes=min_probes,
                                 max_probes=max_probes, tol=tol, abs_tol=abs_tol, near_zero=near_zero,
                                 confidence=confidence, probe_batch=probe_batch, progress=progress)
        elif method == "hutch++":
            res = est.hutchpp(rop, rop.blocks, matvecs=matvecs, seed=seed, probe=probe, confidence=confidence)
        else:
            res = est.exact(op, blocks, [index[id(u.weight)] for u in owners], progress=progress)
    finally:
        for p in frozen:
            if isinstance(p, tuple):
                p[0].requires_grad_(False)
            else:
                p.requires_grad_(True)
        model.train(was_training)

    by_owner = {u.name: e for u, e in zip(owners, res.blocks)}
    tie_of = {}
    for gi, group_names in enumerate(ties or []):
        for nm in group_names:
            hit = [u for u in us if nm in (u.name, u.module_name)]
            if not hit:
                raise ValueError(f"ties[{gi}]: no unit named {nm!r}")
            for u in hit:
                tie_of[u.name] = f"tie{gi}"
    layers, dsq_cache = [], {}
    for u in us:
        owner = u.owner or u
        if owner.name not in dsq_cache:
            w = owner.weight.detach()
            dsq_cache[owner.name] = {c[2]: q.delta_sq(w, c[0], owner.axis) for c in sorted(cands, key=lambda c: c[2])}
        row = {"name": u.name, "params": u.params if u.owner is None else 0, "macs": u.macs}
        if u.owner is None:
            e = by_owner[u.name]
            row["avg_trace"] = e.trace / u.params
            if e.stderr:
                row["avg_trace_stderr"] = e.stderr / u.params
            row["trace"] = e.trace
        else:
            row["avg_trace"] = 0.0
        row["delta_sq"] = dict(sorted(dsq_cache[owner.name].items()))
        tie = tie_of.get(u.name) or u.tie
        if u.name in tie_of and u.tie:
            raise ValueError(f"unit {u.name!r} is in ties and also shares its weight; tie its owner instead")
        if tie:
            row["tie"] = tie
        for k, v in (("in_elems", u.in_elems), ("out_elems", u.out_elems), ("out_channels", u.out_channels)):
            if v:
                row[k] = v
        layers.append(row)
    t = Table()
    t["model"] = model_name
    t["source"] = (f"traces: {res.method}, {res.probes} probes ({res.matvecs} Hessian-vector products) "
                   f"over {n_total} calibration samples; Δ²: {q.describe()}")
    notes = (f"bitplan_torch (torch {torch.__version__}), {comm.world} rank(s), split {split}, "
             f"seed {seed}, {res.seconds:.1f} s")
    if any(u.owner is not None for u in us):
        notes += "; rows tied as shared:<weight> reuse the first row's weight (params 0, avg_trace 0)"
    t["notes"] = notes
    t["layers"] = layers
    t.result = res
    t.warnings = list(warnings)
    return t
