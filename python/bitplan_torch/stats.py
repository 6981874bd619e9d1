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
    """Estimate from i.i.d. samples with a Student-t interval at the given confidence
    (hessian.Summarize; the estimators correct it for skewness, see summarize_run)."""
    m, se = mean_stderr(samples)
    h = t_quantile((1 + confidence) / 2, len(samples) - 1) * se
    return Estimate(name, offset, size, m, se, m - h, m + h)


def skewness(x, mean, sd):
    """Sample skewness m₃/s³ (m₃ the mean cubed deviation, s the sd with n−1); 0 when s is 0."""
    if sd == 0 or not x:
        return 0.0
    m3 = 0.0
    for v in x:
        d = v - mean
        m3 += d * d * d
    return m3 / len(x) / (sd * sd * sd)


def hall_interval(mean, sd, n, gamma, confidence):
    """The confidence interval of the mean of n samples from Hall's (1992)
    transformation of the studentised mean T = √n(x̄ − μ)/s,

        g(T) = T + γ/(6√n) + γT²/(3√n) + γ²T³/(27n)
             = ((1 + aT)³ − 1)/(3a) + γ/(6√n),   a = γ/(3√n),

    inverted exactly (g is monotone), with Student's t_{n−1} quantile; γ = 0
    is the Student-t interval. As bitplan's hessian.hallInterval."""
    se = sd / math.sqrt(n)
    q = t_quantile((1 + confidence) / 2, n - 1)
    rn = math.sqrt(n)
    a = gamma / (3 * rn)

    def inv(y):
        y -= gamma / (6 * rn)
        if abs(a) < 1e-12:
            return y
        return (math.cbrt(1 + 3 * a * y) - 1) / a

    return mean - se * inv(q), mean - se * inv(-q)


def summarize_run(samples, total_samples, confidence, blocks, dim):
    """Per-block estimates and the whole operator's from one run's per-probe
    rows (samples[i][j]: probe i, block j), as bitplan's estimators report
    them: every interval applies Hall's skewness correction with the run's
    skewness γ, the largest sample skewness in magnitude over the blocks and
    the total (all blocks share their probes, and a probe aligned with a
    dominant curvature direction is a large sample of every block at once).
    blocks are (name, offset, size) triples. Returns (blocks, total)."""
    n = len(samples)
    out = []
    for j, (name, offset, size) in enumerate(blocks):
        out.append(summarize([row[j] for row in samples], confidence, name, offset, size))
    total = summarize(total_samples, confidence, "total", 0, dim)
    gamma = 0.0
    sds = []
    for j, e in enumerate(out):
        sd = e.stderr * math.sqrt(n)
        sds.append(sd)
        g = skewness([row[j] for row in samples], e.trace, sd)
        if abs(g) > abs(gamma):
            gamma = g
    sd_total = total.stderr * math.sqrt(n)
    g = skewness(total_samples, total.trace, sd_total)
    if abs(g) > abs(gamma):
        gamma = g
    for e, sd in zip(out, sds):
        e.lo, e.hi = hall_interval(e.trace, sd, n, gamma, confidence)
    total.lo, total.hi = hall_interval(total.trace, sd_total, n, gamma, confidence)
    return out, total
