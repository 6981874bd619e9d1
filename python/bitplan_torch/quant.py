"""Uniform weight quantizers with the semantics of bitplan's Go ``sensitivity`` package.

The Go reference is ``sensitivity/quant.go``; every operation below is the
same IEEE float64 operation in the same order, so Δ² agrees to rounding of
the final sum (the Go code sums with Kahan compensation, torch pairwise).

Symmetric (Krishnamoorthi, arXiv:1806.08342, eq. 7–8), per range r:

    n    = 2^(b−1) − 1
    s    = r / n,  r = max(−lo, hi),  lo = min(0, min w),  hi = max(0, max w)
    Q(w) = s · clamp(round(w/s), −n, n)

Asymmetric, per range [lo, hi] ∋ 0:

    s    = (hi − lo) / (2^b − 1),  z = round(−lo/s)
    Q(w) = s · (clamp(round(w/s) + z, 0, 2^b − 1) − z)

``round`` is round half to even (torch.round, Go's math.RoundToEven). A
range of zero quantizes to 0. With MSE clipping the range is shrunk by the
factor α from the grid 0.2 + 0.8·g/79, g = 0..79, that minimises
‖Q(w) − w‖² for the channel or tensor (the first α on ties; Nagel et al.,
arXiv:2106.08295, §3.5).
"""

import torch

MSE_GRID = 80
MSE_LOW = 0.2


class Quantizer:
    """A b-bit uniform quantizer; the defaults are HAWQ-V3's (symmetric, per channel, min/max).

    ``spec`` strings as bitplan's ``--quantizer`` flag are accepted by
    :meth:`parse`: comma-separated words symmetric|asymmetric,
    per-channel|per-tensor, minmax|mse.
    """

    def __init__(self, asymmetric=False, per_tensor=False, mse=False):
        self.asymmetric = bool(asymmetric)
        self.per_tensor = bool(per_tensor)
        self.mse = bool(mse)

    @classmethod
    def parse(cls, spec):
        """Parse a spec such as "symmetric,per-channel,minmax" (bitplan's flag syntax)."""
        if isinstance(spec, Quantizer):
            return spec
        q = cls()
        for word in str(spec).lower().split(","):
            word = word.strip()
            if word in ("symmetric", "per-channel", "minmax", ""):
                continue
            if word == "asymmetric":
                q.asymmetric = True
            elif word == "per-tensor":
                q.per_tensor = True
            elif word == "mse":
                q.mse = True
            else:
                raise ValueError(f"quantizer {spec!r}: unknown word {word!r} "
                                 "(want symmetric|asymmetric, per-channel|per-tensor, minmax|mse)")
        return q

    def spec(self):
        """The spec string of this quantizer (round-trips through :meth:`parse`)."""
        return ",".join(["asymmetric" if self.asymmetric else "symmetric",
                         "per-tensor" if self.per_tensor else "per-channel",
                         "mse" if self.mse else "minmax"])

    def describe(self):
        """Human-readable description, worded as bitplan's table ``source``."""
        s = "asymmetric" if self.asymmetric else "symmetric"
        s += " per-tensor" if self.per_tensor else " per-channel"
        s += " MSE-clipped" if self.mse else " min/max"
        return s + " quantizer"

    def __repr__(self):
        return f"Quantizer({self.spec()!r})"

    def _check_bits(self, bits):
        lo = 1 if self.asymmetric else 2
        if not isinstance(bits, int) or bits < lo or bits > 32:
            raise ValueError(f"quantizer: {bits} bits out of range [{lo}, 32]")

    def _params(self, bits, lo, hi):
        """Scale, zero point and integer range for per-row ranges [lo, hi] (float64 tensors)."""
        if self.asymmetric:
            qmax = 2.0 ** bits - 1
            s = (hi - lo) / qmax
            safe = torch.where(s == 0, torch.ones_like(s), s)
            z = torch.where(s == 0, torch.zeros_like(s), torch.round(-lo / safe))
            return s, z, 0.0, qmax
        n = 2.0 ** (bits - 1) - 1
        s = torch.maximum(-lo, hi) / n
        return s, torch.zeros_like(s), -n, n

    @staticmethod
    def _apply(rows, s, z, qmin, qmax):
        """Q of every row of ``rows`` (R×K) with per-row s, z (R×1)."""
        safe = torch.where(s == 0, torch.ones_like(s), s)
        x = torch.clamp(torch.round(rows / safe) + z, qmin, qmax)
        return torch.where(s == 0, torch.zeros_like(rows), (x - z) * s)

    def _rows(self, w, axis):
        if self.per_tensor:
            return w.reshape(1, -1)
        return w.movedim(axis, 0).reshape(w.shape[axis], -1)

    def quantize(self, w, bits, axis=0):
        """Return (Q_b(w) as float64 with w's shape, per-channel scales).

        ``axis`` indexes output channels (0 for Conv O×I×kh×kw and Linear
        out×in weights). Non-finite weights are an error.
        """
        self._check_bits(bits)
        w = w.detach().to(device="cpu", dtype=torch.float64)
        if w.numel() == 0:
            raise ValueError("quantizer: empty tensor")
        if not torch.isfinite(w).all():
            i = int((~torch.isfinite(w)).reshape(-1).nonzero()[0])
            raise ValueError(f"quantizer: weight {i} is {float(w.reshape(-1)[i])}")
        if w.dim() == 0:
            w = w.reshape(1)
        if not self.per_tensor and not 0 <= axis < w.dim():
            raise ValueError(f"quantizer: channel axis {axis} out of range for shape {list(w.shape)}")
        rows = self._rows(w, axis)
        zero = torch.zeros(rows.shape[0], 1, dtype=torch.float64)
        lo = torch.minimum(zero, rows.min(dim=1, keepdim=True).values)
        hi = torch.maximum(zero, rows.max(dim=1, keepdim=True).values)
        if self.mse:
            best_a = torch.ones_like(lo)
            best_err = torch.full_like(lo, float("inf"))
            for g in range(MSE_GRID):
                a = MSE_LOW + 0.8 * g / (MSE_GRID - 1)  # Go: mseLow + (1-mseLow)*g/(mseGrid-1)
                s, z, qmin, qmax = self._params(bits, a * lo, a * hi)
                err = ((self._apply(rows, s, z, qmin, qmax) - rows) ** 2).sum(dim=1, keepdim=True)
                better = err < best_err
                best_a = torch.where(better, torch.full_like(best_a, a), best_a)
                best_err = torch.where(better, err, best_err)
            lo, hi = best_a * lo, best_a * hi
        s, z, qmin, qmax = self._params(bits, lo, hi)
        q = self._apply(rows, s, z, qmin, qmax)
        if self.per_tensor:
            q = q.reshape(w.shape)
        else:
            shape = list(w.shape)
            moved = [shape[axis]] + shape[:axis] + shape[axis + 1:]
            q = q.reshape(moved).movedim(0, axis)
        return q, s.reshape(-1)

    def delta_sq(self, w, bits, axis=0):
        """‖Q_b(w) − w‖²₂ summed over the tensor, in float64 (HAWQ-V3's Δ²)."""
        q, _ = self.quantize(w, bits, axis)
        w64 = w.detach().to(device="cpu", dtype=torch.float64).reshape(q.shape)
        return float(((q - w64) ** 2).sum())
