"""Summary statistics of per-probe samples, as bitplan's hessian.Summarize."""

import math


def _betacf(a, b, x):
    """Continued fraction of the regularized incomplete beta (Numerical Recipes §6.4)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        de = d * c
        h *= de
        if abs(de - 1.0) < 1e-15:
            break
    return h


def betainc(a, b, x):
    """Regularized incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1 - x) / b


def t_cdf(t, nu):
    """CDF of Student's t with nu degrees of freedom."""
    x = nu / (nu + t * t)
    p = 0.5 * betainc(nu / 2.0, 0.5, x)
    return 1 - p if t > 0 else p


def t_quantile(p, nu):
    """The p quantile of Student's t with nu degrees of freedom (bisection, to 1e-12)."""
    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, nu) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


def mean_stderr(samples):
    """Mean and standard error (sample sd / √n) of a list of floats.

    The variance is the corrected two-pass formula gonum's stat.MeanStdDev
    uses: (Σ(x−m)² − (Σ(x−m))²/n)/(n−1).
    """
    n = len(samples)
    if n < 2:
        raise ValueError(f"{n} samples, need at least 2 for a standard error")
    m = math.fsum(samples) / n
    ss = sum((x - m) ** 2 for x in samples)
    comp = sum(x - m for x in samples)
    var = (ss - comp * comp / n) / (n - 1)
    return m, math.sqrt(max(var, 0.0)) / math.sqrt(n)


class Estimate:
    """A trace estimate of one block (or of the whole operator) with its uncertainty."""

    def __init__(self, name, offset, size, trace, stderr=0.0, lo=None, hi=None):
        self.name, self.offset, self.size = name, offset, size
        self.trace, self.stderr = trace, stderr
        self.lo = trace if lo is None else lo
        self.hi = trace if hi is None else hi

    @property
    def avg_trace(self):
        """Trace/size, HAWQ's per-parameter sensitivity (0 for an empty block)."""
        return self.trace / self.size if self.size else 0.0

    def __repr__(self):
        return f"Estimate({self.name!r}, trace={self.trace:.6g} ± {self.stderr:.3g})"


def summarize(samples, confidence, name="", offset=0, size=0):
    """Estimate from i.i.d. samples with a Student-t interval at the given confidence."""
    m, se = mean_stderr(samples)
    h = t_quantile((1 + confidence) / 2, len(samples) - 1) * se
    return Estimate(name, offset, size, m, se, m - h, m + h)
