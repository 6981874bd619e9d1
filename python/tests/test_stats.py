"""bitplan_torch's intervals against bitplan's on the same samples.

testdata/intervals/hall.json holds per-probe samples of five Hutchinson runs
(right- and left-skewed, 10–30 probes, 95 % and 99 %) with the estimates and
intervals bitplan's hessian package computed from them (written and checked
by its TestIntervalsGolden). Both implementations must reproduce them.
"""

import json
import math
import os
import unittest

from bitplan_torch.stats import hall_interval, summarize_run, t_quantile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CASES = os.path.join(REPO, "testdata", "intervals", "hall.json")


def close(a, b):
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))


class TestIntervalsAgainstGo(unittest.TestCase):
    def test_committed_samples(self):
        with open(CASES) as f:
            cases = json.load(f)
        self.assertGreaterEqual(len(cases), 5)
        asymmetric = 0
        for c in cases:
            blocks = [(name, 0, size) for name, size in zip(c["blocks"], c["sizes"])]
            ests, total = summarize_run(c["samples"], c["total_samples"], c["confidence"], blocks, 30)
            for j, e in enumerate(ests):
                for got, want, what in ((e.trace, c["trace"][j], "trace"), (e.stderr, c["stderr"][j], "stderr"),
                                        (e.lo, c["lo"][j], "lo"), (e.hi, c["hi"][j], "hi")):
                    self.assertTrue(close(got, want), f"{c['name']} block {e.name} {what}: {got!r}, Go {want!r}")
                if abs((e.hi - e.trace) - (e.trace - e.lo)) > 0.05 * (e.hi - e.lo):
                    asymmetric += 1
            self.assertTrue(close(total.lo, c["total_lo"]) and close(total.hi, c["total_hi"]),
                            f"{c['name']} total [{total.lo}, {total.hi}], Go [{c['total_lo']}, {c['total_hi']}]")
        # The samples must exercise the correction, not only Student's t.
        self.assertGreaterEqual(asymmetric, 6)

    def test_zero_skewness_is_student_t(self):
        lo, hi = hall_interval(2.0, 3.0, 9, 0.0, 0.95)
        h = t_quantile(0.975, 8) * 1.0
        self.assertAlmostEqual(lo, 2.0 - h, places=12)
        self.assertAlmostEqual(hi, 2.0 + h, places=12)

    def test_right_skew_shifts_up(self):
        # Right-skewed samples: the mean is more likely below the truth,
        # so the interval reaches further above it than below.
        lo, hi = hall_interval(0.0, 1.0, 10, 2.0, 0.95)
        self.assertGreater(hi - 0.0, 0.0 - lo)
        self.assertTrue(math.isfinite(lo) and math.isfinite(hi))


if __name__ == "__main__":
    unittest.main()
