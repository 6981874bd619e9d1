import json
import math
import os
import random
import unittest

import torch

from bitplan_torch import Quantizer

from . import models


def go_delta_sq(w, shape, axis, bits, asym, per_tensor, mse):
    """A literal, element-by-element transcription of sensitivity/quant.go (plain floats)."""
    n = len(w)
    if per_tensor:
        groups = [list(range(n))]
    else:
        outer = math.prod(shape[:axis])
        ch = shape[axis]
        inner = math.prod(shape[axis + 1:])
        groups = [[(o * ch + c) * inner + i for o in range(outer) for i in range(inner)] for c in range(ch)]

    def params(lo, hi):
        if asym:
            qmax = 2.0 ** bits - 1
            s = (hi - lo) / qmax
            if s == 0:
                return 0.0, 0.0, 0.0, qmax
            return s, float(round(-lo / s)), 0.0, qmax
        nn_ = 2.0 ** (bits - 1) - 1
        return max(-lo, hi) / nn_, 0.0, -nn_, nn_

    def one(v, s, z, qmin, qmax):
        if s == 0:
            return 0.0
        x = float(round(v / s)) + z  # Python round: half to even
        x = max(qmin, min(qmax, x))
        return (x - z) * s

    dst = [0.0] * n
    for idx in groups:
        lo = min([0.0] + [w[i] for i in idx])
        hi = max([0.0] + [w[i] for i in idx])
        if mse:
            best_a, best = 1.0, math.inf
            for g in range(80):
                a = 0.2 + 0.8 * g / 79
                s, z, qn, qx = params(a * lo, a * hi)
                e = 0.0
                for i in idx:
                    d = one(w[i], s, z, qn, qx) - w[i]
                    e += d * d
                if e < best:
                    best_a, best = a, e
            lo, hi = best_a * lo, best_a * hi
        s, z, qn, qx = params(lo, hi)
        for i in idx:
            dst[i] = one(w[i], s, z, qn, qx)
    return math.fsum((dst[i] - w[i]) ** 2 for i in range(n))


class TestQuantizer(unittest.TestCase):
    def test_against_transcription(self):
        rng = random.Random(4)
        for shape, axis in (([4, 3, 2, 2], 0), ([5, 7], 0), ([6, 5], 1), ([9], 0)):
            n = math.prod(shape)
            # float32 values, a zero channel, repeated values and exact halves.
            w = [float(torch.tensor(rng.gauss(0, 1), dtype=torch.float32)) for _ in range(n)]
            w[0] = 0.5
            t = torch.tensor(w, dtype=torch.float64).reshape(shape)
            for spec in ("symmetric", "asymmetric", "symmetric,per-tensor", "asymmetric,per-tensor",
                         "symmetric,mse", "asymmetric,mse", "symmetric,per-tensor,mse", "asymmetric,per-tensor,mse"):
                q = Quantizer.parse(spec)
                for bits in ((1, 2, 3, 4, 8) if q.asymmetric else (2, 3, 4, 8)):
                    want = go_delta_sq(w, shape, axis, bits, q.asymmetric, q.per_tensor, q.mse)
                    got = q.delta_sq(t, bits, axis)
                    self.assertAlmostEqual(got, want, delta=1e-12 * max(want, 1e-300),
                                           msg=f"{spec} {bits} bits shape {shape}")

    def test_zero_channel_and_exact_grid(self):
        w = torch.zeros(3, 4, dtype=torch.float64)
        w[1] = torch.tensor([1.0, -1.0, 0.5, 0.0])
        q = Quantizer()
        qw, scales = q.quantize(w, 2)
        self.assertTrue(torch.equal(qw[0], torch.zeros(4, dtype=torch.float64)))
        self.assertEqual(scales.tolist(), [0.0, 1.0, 0.0])
        # 0.5 / 1 = 0.5 rounds half to even: 0.
        self.assertEqual(qw[1].tolist(), [1.0, -1.0, 0.0, 0.0])
        self.assertEqual(q.delta_sq(w, 8), q.delta_sq(w, 8))

    def test_hawq_reference_files(self):
        # make_reference.py's independent HAWQ-V3 quantizer (symmetric per-channel min/max).
        for name in models.NAMES:
            with open(os.path.join(models.REPO, "testdata", "ref", name, "quant.json")) as f:
                ref = json.load(f)
            mod = models.load(name)
            sd = mod.state_dict()
            for u in ref["units"]:
                w = sd[u["weight"]]
                for b, want in u["delta_sq"].items():
                    got = Quantizer().delta_sq(w, int(b), u["channel_axis"])
                    self.assertLess(abs(got - want), 1e-12 * want, f"{name} {u['name']} {b}")

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "1 bits out of range"):
            Quantizer().delta_sq(torch.ones(3), 1)
        Quantizer(asymmetric=True).delta_sq(torch.ones(3), 1)
        with self.assertRaisesRegex(ValueError, "weight 1 is nan"):
            Quantizer().delta_sq(torch.tensor([1.0, float("nan")]), 4)
        with self.assertRaisesRegex(ValueError, "unknown word 'pertensor'"):
            Quantizer.parse("symmetric,pertensor")
        with self.assertRaisesRegex(ValueError, "axis 2 out of range"):
            Quantizer().delta_sq(torch.ones(2, 2), 4, axis=2)
        self.assertEqual(Quantizer.parse("asymmetric,per-tensor,mse").spec(), "asymmetric,per-tensor,mse")


if __name__ == "__main__":
    unittest.main()
