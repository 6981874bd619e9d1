import math
import unittest

import torch
import torch.nn as nn
import torch.nn.functional as F

from bitplan_torch import sensitivity_table
from bitplan_torch import estimators as est
from bitplan_torch.dist import Comm
from bitplan_torch.units import find_units, theta_params

from . import models


def operator(model, batches):
    x0 = batches[0][0]
    units, _ = find_units(model, lambda: model(x0), len(x0))
    params, _, offsets = theta_params(units)
    n = sum(len(y) for _, y in batches)
    op = est.HessianOperator(model, params, batches, [len(y) / n for _, y in batches], F.cross_entropy,
                             torch.device("cpu"), Comm(), "probes")
    return op, units, params, offsets


class TestHVP(unittest.TestCase):
    def test_finite_differences(self):
        model = models.load("lenet")
        x, y = models.ref_data("lenet")
        op, _, params, _ = operator(model, [(x[:8], y[:8])])
        v = torch.randn(op.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
        (hv,) = op.hvp([v])
        theta0 = torch.cat([p.detach().reshape(-1) for p in params])

        def grad_at(theta):
            with torch.no_grad():
                off = 0
                for p in params:
                    p.copy_(theta[off:off + p.numel()].reshape(p.shape))
                    off += p.numel()
            loss = F.cross_entropy(model(x[:8]), y[:8])
            return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])
        errs = []
        for eps in (1e-6, 1e-7):
            fd = (grad_at(theta0 + eps * v) - grad_at(theta0 - eps * v)) / (2 * eps)
            errs.append(float((fd - hv).norm() / hv.norm()))
        grad_at(theta0)
        self.assertLess(min(errs), 1e-6, errs)

    def test_batches_weighted_by_size(self):
        model = models.load("mlp")
        x, y = models.ref_data("mlp")
        one, _, _, _ = operator(model, [(x[:8], y[:8])])
        two, _, _, _ = operator(model, [(x[:3], y[:3]), (x[3:8], y[3:8])])
        v = torch.ones(one.dim, dtype=torch.float64)
        a, b = one.hvp([v])[0], two.hvp([v])[0]
        self.assertLess(float((a - b).norm() / a.norm()), 1e-12)


class TestExact(unittest.TestCase):
    def test_reference_block_traces(self):
        # make_reference.py's exact Tr(H_ii) over each unit's weight AND bias,
        # from the ONNX graph interpreted in torch (32 images, float64).
        for name, unit_names in (("lenet", ["conv1", "fc3"]), ("mlp", ["fc3"])):
            model = models.load(name)
            x, y = models.ref_data(name)
            ref = models.ref_meta(name)["exact_block_traces"]
            t = sensitivity_table(model, [(x, y)], method="exact", units=unit_names, progress=False)
            op, units, params, offsets = operator(model, [(x, y)])
            for row, u in zip(t["layers"], [u for u in units if u.module_name in unit_names]):
                i = [id(p) for p in params].index(id(u.bias))
                bias = float(op.diagonal(None, i, list(range(u.bias.numel()))).sum())
                want = ref[row["name"]]
                self.assertLess(abs(row["trace"] + bias - want), 1e-6 * abs(want), (name, row["name"]))
                self.assertNotIn("avg_trace_stderr", row)
                self.assertAlmostEqual(row["avg_trace"], row["trace"] / row["params"])


class TestHutchinson(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = models.load("lenet")
        x, y = models.ref_data("lenet")
        cls.batches = [(x[:8], y[:8])]

    def test_within_four_standard_errors_of_exact(self):
        ex = sensitivity_table(self.model, self.batches, method="exact", units=["conv1", "fc3"], progress=False)
        hut = sensitivity_table(self.model, self.batches, tol=0.02, max_probes=60, progress=False)
        rows = {r["name"]: r for r in hut["layers"]}
        for e in ex["layers"]:
            h = rows[e["name"]]
            z = abs(h["trace"] - e["trace"]) / (h["avg_trace_stderr"] * h["params"])
            self.assertLess(z, 4, e["name"])

    def test_stopping_rule(self):
        # Recompute the rule from the per-probe samples: the estimate stops at
        # the first n >= min_probes where every block's SE <= tol * max(|mean|, s_b).
        tol, mn = 0.3, 5
        t = sensitivity_table(self.model, self.batches, tol=tol, min_probes=mn, max_probes=60, progress=False)
        res = t.result
        sizes = [r["params"] for r in t["layers"]]

        def ok(n):
            cols = list(zip(*res.samples[:n]))
            means = [sum(c) / n for c in cols]
            ses = [math.sqrt(sum((v - m) ** 2 for v in c) / (n - 1) / n) for c, m in zip(cols, means)]
            s_abs, s_size = sum(abs(m) for m in means), sum(sizes)
            return all(se <= tol * max(abs(m), 0.1 * sz * s_abs / s_size) * (1 + 1e-12)
                       for se, m, sz in zip(ses, means, sizes))
        self.assertTrue(res.converged)
        self.assertTrue(ok(res.probes))
        self.assertFalse(any(ok(n) for n in range(mn, res.probes)))
        self.assertEqual(res.matvecs, 8 * math.ceil(res.probes / 8))
        # Same probes and stopping point whatever the probes per pass.
        t1 = sensitivity_table(self.model, self.batches, tol=tol, min_probes=mn, max_probes=60, probe_batch=3,
                               progress=False)
        self.assertEqual(t1.result.probes, res.probes)
        self.assertEqual(t1["layers"], t["layers"])

    def test_hutchpp_exact_on_low_rank(self):
        # A rank-2 quadratic in a 20-weight layer: Hutch++ with 12 products
        # captures it exactly (the residual is zero).
        lin = nn.Linear(4, 5, bias=False).double()
        a = torch.randn(2, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        A = a.T @ a

        class Quad(nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = lin

            def forward(self, x):
                w = self.lin.weight.reshape(-1)
                return (0.5 * w @ A @ w + 0 * self.lin(x).sum()).reshape(1)
        t = sensitivity_table(Quad(), [(torch.zeros(1, 4, dtype=torch.float64), None)],
                              loss_fn=lambda out, _: out.sum(), method="hutch++", matvecs=12, progress=False)
        self.assertAlmostEqual(t["layers"][0]["trace"], float(torch.trace(A)), delta=1e-10)


class TestErrors(unittest.TestCase):
    def setUp(self):
        self.m = nn.Sequential(nn.Linear(3, 4))
        self.b = [(torch.randn(2, 3), torch.tensor([0, 1]))]

    def test_loss_not_scalar(self):
        with self.assertRaisesRegex(ValueError, r"loss_fn must return a scalar tensor .*got \[2\]"):
            sensitivity_table(self.m, self.b, loss_fn=lambda o, y: F.cross_entropy(o, y, reduction="none"),
                              progress=False)

    def test_loss_not_finite(self):
        with self.assertRaisesRegex(ValueError, "loss_fn returned nan"):
            sensitivity_table(self.m, self.b, loss_fn=lambda o, y: o.sum() * float("nan"), progress=False)

    def test_bad_settings(self):
        for kw, msg in (({"method": "pyhessian"}, "method 'pyhessian'"),
                        ({"bits": ["4", "x"]}, "precision 'x'"),
                        ({"bits": [4, "4"]}, "listed twice"),
                        ({"bits": [1]}, "1 bits out of range"),
                        ({"quantizer": "symmetric,fast"}, "unknown word 'fast'"),
                        ({"min_probes": 1}, "min_probes = 1"),
                        ({"max_probes": 5}, "max_probes = 5 is below"),
                        ({"tol": 0}, "tol = 0"),
                        ({"split": "layers"}, "split 'layers'"),
                        ({"matvecs": 3, "method": "hutch++"}, "matvecs = 3")):
            with self.assertRaisesRegex(ValueError, msg):
                sensitivity_table(self.m, self.b, progress=False, **kw)

    def test_no_batches(self):
        with self.assertRaisesRegex(ValueError, "no calibration batches"):
            sensitivity_table(self.m, [], progress=False)

    def test_model_mode_and_grads_restored(self):
        m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
        m.train()
        m[1].weight.requires_grad_(True)
        sensitivity_table(m, self.b, max_probes=10, progress=False)
        self.assertTrue(m.training)
        self.assertTrue(all(p.requires_grad for p in m.parameters()))


if __name__ == "__main__":
    unittest.main()
