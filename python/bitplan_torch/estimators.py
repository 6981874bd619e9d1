"""Hessian operator and trace estimators with the semantics of bitplan's ``hessian`` package.

The operator is the Hessian of the calibration loss with respect to θ, the
units' weights and biases (each tensor once, in unit order):

    L(θ) = Σ_b (n_b / N) · loss_fn(model(x_b), y_b)

for batches b of n_b samples (N in all), with ``loss_fn`` a mean over its
batch. Hessian-vector products are exact: double backpropagation
(Pearlmutter 1994, H v = ∇_θ ⟨∇_θ L, v⟩), accumulated in float64 whatever
the model's dtype. Blocks are the units' weights only, and the estimators
run on :class:`Restricted`, the Hessian over the weights alone (H_WW, as
bitplan's ``plan.Analyze`` through ``hessian.Restrict``): probes are zero
on the biases, which only add variance to the weight blocks' samples, and
the total trace is the weights'.

Estimators (hessian/hutchinson.go, hessian/sketch.go, plan/analyze.go):

* :func:`hutchinson` — per-block Hutchinson traces from shared probes
  (Hutchinson 1990; Avron and Toledo 2011) with standard errors and
  bitplan's stopping rule on the standard error.
* :func:`hutchpp` — Hutch++ (Meyer, Musco, Musco and Woodruff 2021,
  Algorithm 1) with the per-block variant that costs no extra products.
* :func:`exact` — every block's trace from unit vectors, one product per
  weight: ground truth for small models.
"""

import math
import sys
import time

import torch

from . import probes as _probes
from .stats import Estimate, summarize_run


class TraceResult:
    """Outcome of an estimator, as bitplan's hessian.TraceResult.

    ``blocks`` holds one :class:`Estimate` per unit weight block, ``total``
    the trace of the whole operator; ``samples[i][j]`` is probe i's sample
    of block j and ``total_samples[i]`` its vᵀHv (None for exact results).
    """

    def __init__(self, method, confidence):
        self.method = method
        self.confidence = confidence
        self.blocks = []
        self.total = None
        self.probes = 0
        self.matvecs = 0
        self.converged = False
        self.samples = None
        self.total_samples = None
        self.seconds = 0.0

    def __repr__(self):
        return (f"TraceResult({self.method}, {self.probes} probes, {self.matvecs} matvecs, "
                f"converged={self.converged})")


class Block:
    """A contiguous range of θ: name, offset, size."""

    def __init__(self, name, offset, size):
        self.name, self.offset, self.size = name, offset, size

    @property
    def end(self):
        return self.offset + self.size


def _call(model, inputs):
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (list, tuple)):
        return model(*inputs)
    return model(inputs)


def _to(x, device):
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, (list, tuple)):
        return type(x)(_to(v, device) for v in x)
    if isinstance(x, dict):
        return {k: _to(v, device) for k, v in x.items()}
    return x


def batch_size(inputs):
    """Samples in a batch: the first dimension of its first tensor."""
    from .units import _first_tensor
    t = _first_tensor(inputs)
    if t is None or t.dim() == 0:
        raise ValueError("a calibration batch has no tensor with a batch dimension")
    return int(t.shape[0])


class HessianOperator:
    """H = ∇²_θ L over this rank's calibration batches (see the module doc).

    ``batches`` is a list of (inputs, targets); ``weights`` the factor
    n_b/N of each. ``comm`` is a :class:`bitplan_torch.dist.Comm`; with
    ``split="data"`` :meth:`hvp` sums the ranks' partial products.
    """

    def __init__(self, model, params, batches, weights, loss_fn, device, comm, split):
        self.model = model
        self.params = params
        self.batches = batches
        self.weights = weights
        self.loss_fn = loss_fn
        self.device = device
        self.comm = comm
        self.split = split
        self.sizes = [p.numel() for p in params]
        self.dim = sum(self.sizes)
        self.matvecs = 0

    def _loss(self, inputs, targets):
        out = _call(self.model, _to(inputs, self.device))
        loss = self.loss_fn(out, _to(targets, self.device))
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            shape = list(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise ValueError(f"loss_fn must return a scalar tensor (the mean loss of the batch), got {shape}")
        if not torch.isfinite(loss):
            raise ValueError(f"loss_fn returned {float(loss)} on a calibration batch")
        return loss

    def _grads(self, inputs, targets):
        loss = self._loss(inputs, targets)
        if not loss.requires_grad:
            raise ValueError("the loss does not depend on the units' parameters")
        g = torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)
        return [(i, gi) for i, gi in enumerate(g) if gi is not None and gi.requires_grad]

    def split_vec(self, v):
        """Views of a flat vector per parameter, in the parameters' dtypes and shapes."""
        out, off = [], 0
        for p, n in zip(self.params, self.sizes):
            out.append(v[off:off + n].reshape(p.shape).to(p.dtype))
            off += n
        return out

    def hvp(self, vs):
        """H v for every float64 vector in vs (on self.device); float64 results.

        One forward and first backward pass per batch serve all vectors.
        """
        acc = [torch.zeros(self.dim, dtype=torch.float64, device=self.device) for _ in vs]
        offs = [0]
        for n in self.sizes:
            offs.append(offs[-1] + n)
        for (inputs, targets), w in zip(self.batches, self.weights):
            pairs = self._grads(inputs, targets)
            if not pairs:
                continue
            gs = [g for _, g in pairs]
            ps = [self.params[i] for i, _ in pairs]
            for k, v in enumerate(vs):
                parts = self.split_vec(v)
                hv = torch.autograd.grad(gs, ps, grad_outputs=[parts[i] for i, _ in pairs],
                                         retain_graph=k < len(vs) - 1, allow_unused=True)
                for (i, _), h in zip(pairs, hv):
                    if h is not None:
                        acc[k][offs[i]:offs[i + 1]] += w * h.reshape(-1).to(torch.float64)
        if self.split == "data" and self.comm.active:
            stacked = torch.stack(acc) if acc else torch.zeros(0, self.dim, dtype=torch.float64)
            self.comm.all_reduce_sum(stacked)
            acc = list(stacked)
        self.matvecs += len(vs)
        return acc

    def diagonal(self, block, weight_index, coords):
        """Diagonal entries H_jj of θ coordinates block.offset + j for j in coords (this rank's data)."""
        p = self.params[weight_index]
        out = torch.zeros(len(coords), dtype=torch.float64)
        if not coords:
            return out
        for (inputs, targets), w in zip(self.batches, self.weights):
            loss = self._loss(inputs, targets)
            (g,) = torch.autograd.grad(loss, [p], create_graph=True, allow_unused=True)
            if g is None or not g.requires_grad:
                continue
            e = torch.zeros_like(p).reshape(-1)
            for k, j in enumerate(coords):
                e[j] = 1
                (h,) = torch.autograd.grad(g, [p], grad_outputs=e.reshape(p.shape), retain_graph=True,
                                           allow_unused=True)
                e[j] = 0
                if h is not None:
                    out[k] += w * float(h.reshape(-1)[j])
        return out


class Restricted:
    """H_WW = EᵀHE, the operator on the blocks' coordinates only (bitplan's hessian.Restrict).

    E places the coordinates of ``blocks`` (ranges of θ) one after the other;
    ``self.blocks`` are the same blocks renumbered contiguously from 0 and
    ``self.dim`` their total size. A probe of the restriction is zero off
    the blocks, so probe i with seed s is bitplan's probe i of the same
    restricted operator.
    """

    def __init__(self, op, blocks):
        self.op = op
        self.source = list(blocks)
        self.blocks, off = [], 0
        for b in blocks:
            self.blocks.append(Block(b.name, off, b.size))
            off += b.size
        self.dim = off
        self.device, self.comm, self.split = op.device, op.comm, op.split

    @property
    def matvecs(self):
        return self.op.matvecs

    @matvecs.setter
    def matvecs(self, n):
        self.op.matvecs = n

    def hvp(self, vs):
        """EᵀHE v for every vector (length self.dim) in vs."""
        full = []
        for v in vs:
            f = torch.zeros(self.op.dim, dtype=torch.float64, device=self.device)
            for a, b in zip(self.source, self.blocks):
                f[a.offset:a.end] = v[b.offset:b.end]
            full.append(f)
        out = []
        for h in self.op.hvp(full):
            out.append(torch.cat([h[a.offset:a.end] for a in self.source]))
        return out


class _Progress:
    def __init__(self, enabled, comm):
        if enabled is None:
            enabled = sys.stderr.isatty()
        self.on = bool(enabled) and comm.rank == 0
        self.last = 0.0

    def __call__(self, msg, final=False):
        if not self.on:
            return
        now = time.time()
        if final or now - self.last > 0.5:
            self.last = now
            sys.stderr.write("\r" + msg + "\x1b[K")
            if final:
                sys.stderr.write("\n")
            sys.stderr.flush()


def _probe_samples(v, hv, blocks):
    """v_bᵀ(Hv)_b per block followed by vᵀHv (float64, CPU)."""
    row = torch.empty(len(blocks) + 1, dtype=torch.float64)
    for j, b in enumerate(blocks):
        row[j] = torch.dot(v[b.offset:b.end], hv[b.offset:b.end])
    row[len(blocks)] = torch.dot(v, hv)
    return row


def _worst_rel_err(mean, m2, n, blocks, tol, abs_tol, near_zero):
    """Largest effective relative standard error and its block (hessian.worstRelErr)."""
    if n < 2:
        return math.inf, 0
    sum_abs = sum(abs(m) for m in mean[:len(blocks)])
    sum_size = float(sum(b.size for b in blocks))
    worst, wi = 0.0, (0 if blocks else -1)
    for j in range(len(mean)):
        se = math.sqrt(m2[j] / (n - 1) / n)
        scale = abs(mean[j])
        if blocks:
            scale = max(scale, near_zero * blocks[j].size * sum_abs / sum_size)
        scale = max(scale, abs_tol / tol)
        if se == 0:
            r = 0.0
        elif scale == 0:
            r = math.inf
        else:
            r = se / scale
        if r > worst or (j == 0 and r == worst):
            worst = r
            if blocks:
                wi = j
    return worst, wi


def hutchinson(op, blocks, seed=1, probe="rademacher", min_probes=10, max_probes=100, tol=0.05,
               abs_tol=0.0, near_zero=0.1, confidence=0.95, probe_batch=8, progress=None):
    """Per-block Hutchinson traces with bitplan's adaptive stopping rule.

        tr(H_bb) ≈ (1/n) Σ_i (v_i)_bᵀ (H v_i)_b

    After ``min_probes`` probes, and after every probe from then on, the
    estimate stops when every block b satisfies

        SE_b ≤ tol · max(|t_b|, s_b, abs_tol/tol),
        s_b = near_zero · size_b · (Σ_c |t_c|) / (Σ_c size_c)

    (t_b the running mean, SE_b its standard error; ``near_zero`` < 0
    disables the near-zero rule, 0 means the default 0.1), else at
    ``max_probes``. This bounds the standard error, unlike PyHessian's
    relative-change rule. Probes are accepted in index order and probe i
    depends only on (seed, i), so where the estimate stops does not depend
    on the number of ranks or ``probe_batch``. With ``split="probes"`` each
    rank computes ``probe_batch`` probes per round and the rows are
    gathered; with ``split="data"`` all ranks compute the same probes.
    """
    comm = op.comm
    if near_zero == 0:
        near_zero = 0.1
    elif near_zero < 0:
        near_zero = 0.0
    _check(min_probes >= 2, f"min_probes = {min_probes}, want at least 2")
    _check(max_probes >= min_probes, f"max_probes = {max_probes} is below min_probes = {min_probes}")
    _check(tol > 0 and math.isfinite(tol), f"tol = {tol}, want a positive finite value")
    _check(abs_tol >= 0 and math.isfinite(abs_tol), f"abs_tol = {abs_tol}, want a finite value >= 0")
    _check(0 < confidence < 1, f"confidence = {confidence}, want a value in (0, 1)")
    _check(probe_batch >= 1, f"probe_batch = {probe_batch}, want >= 1")
    _check(probe in _probes.DISTRIBUTIONS, f"probe = {probe!r}, want one of {_probes.DISTRIBUTIONS}")
    t0 = time.time()
    show = _Progress(progress, comm)
    per_round = probe_batch * (comm.world if op.split == "probes" else 1)
    nb = len(blocks)
    tracked = nb if nb else 1
    mean = [0.0] * tracked
    m2 = [0.0] * tracked
    samples, totals = [], []
    res = TraceResult("hutchinson", confidence)
    n, computed, lo = 0, 0, 0
    while n < max_probes and not res.converged:
        hi = min(lo + per_round, max_probes)
        if op.split == "probes":
            mine = range(lo + comm.rank * probe_batch, min(lo + (comm.rank + 1) * probe_batch, hi))
        else:
            mine = range(lo, hi)
        vs = [_probes.probe(probe, op.dim, seed, i).to(op.device) for i in mine]
        hvs = op.hvp(vs) if vs else []
        rows = torch.full((probe_batch if op.split == "probes" else hi - lo, nb + 1), math.nan, dtype=torch.float64)
        for k, (v, hv) in enumerate(zip(vs, hvs)):
            rows[k] = _probe_samples(v, hv, blocks).cpu()
        if op.split == "probes":
            rows = comm.all_gather(rows).reshape(-1, nb + 1)[:hi - lo]
        computed += hi - lo
        for row in rows.tolist():
            samples.append(row[:nb])
            totals.append(row[nb])
            n += 1
            for j in range(tracked):
                x = row[j] if nb else row[nb]
                d = x - mean[j]
                mean[j] += d / n
                m2[j] += d * (x - mean[j])
            worst, wi = _worst_rel_err(mean, m2, n, blocks, tol, abs_tol, near_zero)
            show(f"trace: {n} probes, worst relative error {100 * worst:.1f}% (target {100 * tol:.1f}%)")
            if n >= min_probes and worst <= tol:
                res.converged = True
            if res.converged or n >= max_probes:
                break
        lo = hi
    show(f"trace: {n} probes, converged={res.converged}", final=True)
    res.samples, res.total_samples = samples, totals
    res.probes, res.matvecs = n, computed
    _summarize(res, blocks, op.dim)
    res.seconds = time.time() - t0
    return res


def _summarize(res, blocks, dim):
    # Skewness-corrected intervals, as bitplan's TraceResult.summarize.
    res.blocks, res.total = summarize_run(res.samples, res.total_samples, res.confidence,
                                          [(b.name, b.offset, b.size) for b in blocks], dim)


def _check(cond, msg):
    if not cond:
        raise ValueError(msg)


def _apply_many(op, vs):
    """H v for the list vs: split across ranks with split="probes", gathered in order."""
    comm = op.comm
    if op.split != "probes" or not comm.active:
        return op.hvp(vs)
    per = (len(vs) + comm.world - 1) // comm.world
    mine = vs[comm.rank * per:(comm.rank + 1) * per]
    out = op.hvp(mine) if mine else []
    buf = torch.zeros(per, op.dim, dtype=torch.float64, device=op.device)
    for k, h in enumerate(out):
        buf[k] = h
    gathered = comm.all_gather(buf.cpu()).reshape(-1, op.dim)[:len(vs)]
    op.matvecs += len(vs) - len(mine)
    return [g.to(op.device) for g in gathered]


def hutchpp(op, blocks, matvecs=60, seed=1, probe="rademacher", confidence=0.95):
    """Hutch++ with per-block estimates (bitplan's hessian.HutchPP).

    With k = m/3 sketch vectors S and g = m − 2k Hutchinson probes G:

        Q = orth(H S),  P = QQᵀ,  P⊥ = I − P
        tr(H) ≈ tr(QᵀHQ) + (1/g) tr(Gᵀ P⊥ H P⊥ G)

    and per block, with W = HQ and C = QᵀW, the exact part
    2⟨Q_b, W_b⟩ − ⟨Q_b C, Q_b⟩ plus the block's Hutchinson residual. The
    standard error is that of the residual, conditional on Q. Test vectors
    are bitplan's sketch stream, so the vectors equal the Go estimator's.
    """
    _check(matvecs >= 6, f"matvecs = {matvecs}, want at least 6")
    _check(0 < confidence < 1, f"confidence = {confidence}, want a value in (0, 1)")
    t0 = time.time()
    m = matvecs
    k = min(m // 3, op.dim)
    g = m - 2 * (m // 3)
    dev = op.device
    S = [_probes.probe(probe, op.dim, seed, i, _probes.STREAM_SKETCH).to(dev) for i in range(k)]
    Y = torch.stack(_apply_many(op, S), dim=1)
    Q, _ = torch.linalg.qr(Y, mode="reduced")
    G = [_probes.probe(probe, op.dim, seed, k + j, _probes.STREAM_SKETCH).to(dev) for j in range(g)]
    GP = [x - Q @ (Q.T @ x) for x in G]
    prod = _apply_many(op, [Q[:, i].contiguous() for i in range(k)] + GP)
    W = torch.stack(prod[:k], dim=1)
    C = Q.T @ W
    C = (C + C.T) / 2
    exact = 2 * (Q * W).sum(dim=1) - ((Q @ C) * Q).sum(dim=1)
    total = float(torch.trace(C))
    eb = [float(exact[b.offset:b.end].sum()) for b in blocks]
    res = TraceResult("hutch++", confidence)
    res.samples, res.total_samples = [], []
    for j in range(g):
        zp = prod[k + j] - Q @ (Q.T @ prod[k + j])
        rho = G[j] * zp
        res.samples.append([eb[i] + float(rho[b.offset:b.end].sum()) for i, b in enumerate(blocks)])
        res.total_samples.append(total + float(rho.sum()))
    res.probes, res.matvecs, res.converged = g, 2 * k + g, True
    _summarize(res, blocks, op.dim)
    res.seconds = time.time() - t0
    return res


def exact(op, blocks, weight_index, progress=None):
    """Every block's trace exactly: Σ_j e_jᵀ H e_j over the block's weights.

    ``weight_index[b]`` is the index in op.params of block b's weight. With
    ``split="probes"`` the ranks take every world-th coordinate; with
    ``split="data"`` every rank does all coordinates on its batches. The
    per-block sums are then added over the ranks.
    """
    comm = op.comm
    t0 = time.time()
    show = _Progress(progress, comm)
    traces = torch.zeros(len(blocks), dtype=torch.float64)
    done = 0
    total = sum(b.size for b in blocks)
    for j, b in enumerate(blocks):
        if op.split == "probes":
            coords = list(range(comm.rank, b.size, comm.world))
        else:
            coords = list(range(b.size))
        traces[j] = op.diagonal(b, weight_index[j], coords).sum()
        done += b.size
        show(f"exact trace: {done}/{total} coordinates")
    show(f"exact trace: {total} coordinates", final=True)
    comm.all_reduce_sum(traces)
    res = TraceResult("exact", 1.0)
    res.blocks = [Estimate(b.name, b.offset, b.size, float(t)) for b, t in zip(blocks, traces)]
    res.total = Estimate("weights", 0, total, float(traces.sum()))
    res.matvecs = total
    res.converged = True
    res.seconds = time.time() - t0
    return res
