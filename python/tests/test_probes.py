import unittest

import torch

from bitplan_torch import probes


class TestPCG(unittest.TestCase):
    def test_matches_go(self):
        # Printed by Go 1.26: rand.New(rand.NewPCG(1, 5)).Uint64() three times,
        # and rand.New(rand.NewPCG(7, 1<<56|3)).Uint64().
        self.assertEqual(probes.pcg_uint64(1, 5, 3),
                         [9801545374360106748, 14660574539974675265, 17031885738856747951])
        self.assertEqual(probes.pcg_uint64(7, 1 << 56 | 3, 1), [12578765673907936609])

    def test_rademacher_bit_order(self):
        # Entry j is bit j%64 of word j//64, least significant first; 1 -> +1.
        dim = 150
        words = probes.pcg_uint64(3, 4, 3)
        want = [1.0 if (words[j // 64] >> (j % 64)) & 1 else -1.0 for j in range(dim)]
        got = probes.rademacher(dim, 3, 4).tolist()
        self.assertEqual(got, want)

    def test_streams_and_indices_differ(self):
        a = probes.rademacher(1000, 1, 0)
        b = probes.rademacher(1000, 1, 1)
        c = probes.rademacher(1000, 1, 0, probes.STREAM_SKETCH)
        self.assertFalse(torch.equal(a, b))
        self.assertFalse(torch.equal(a, c))
        self.assertTrue(torch.equal(a, probes.rademacher(1000, 1, 0)))
        self.assertLess(abs(float(a.mean())), 0.15)

    def test_gaussian_reproducible(self):
        a = probes.probe("gaussian", 500, 2, 7)
        self.assertTrue(torch.equal(a, probes.probe("gaussian", 500, 2, 7)))
        self.assertLess(abs(float(a.pow(2).mean()) - 1), 0.2)
        with self.assertRaises(ValueError):
            probes.probe("cauchy", 5, 1, 0)


if __name__ == "__main__":
    unittest.main()
