package ilp

import "math"

// master is the Dantzig–Wolfe master LP of the dual's cutting-plane model,
//
//	min  Σ_i μ_i V_i + Σ_k α_k hi_k − Σ_k β_k lo_k
//	s.t. Σ_i μ_i = 1,
//	     −Σ_i μ_i s_ik + α_k − β_k = 0   (k = 1..K),   μ, α, β ≥ 0,
//
// solved by a revised primal simplex on its (K+1)×(K+1) basis. Its row duals
// are (t, λ) of the cutting-plane model; columns α and β price the box
// lo ≤ λ ≤ hi. The basis is kept between calls: adding cuts or moving the box
// (a change of costs) keeps it primal feasible, so each call is a warm start.
type master struct {
	k     int
	basis []int // column ids: α_r = r, β_r = k+r, cut i = 2k+i
	binv  []float64
	bmat  []float64
	xb    []float64
	y     []float64
	w     []float64
	col   []float64
	ok    bool
	iters int // simplex iterations, for statistics
}

// Simplex tolerances (the master's data are scaled values and costs).
const (
	// tolPivot is the least pivot element accepted in the ratio test.
	tolPivot = 1e-11
	// tolPrice is the reduced cost below which a column enters (relative
	// to the magnitude of its cost and pricing terms).
	tolPrice = 1e-12
)

func newMaster(k int) master {
	m := k + 1
	return master{k: k, basis: make([]int, m), binv: make([]float64, m*m),
		bmat: make([]float64, m*m), xb: make([]float64, m), y: make([]float64, m),
		w: make([]float64, m), col: make([]float64, m)}
}

// column writes column j into m.col and returns its cost.
func (m *master) column(j int, cuts []cut, lo, hi []float64) float64 {
	clear(m.col)
	k := m.k
	switch {
	case j < k:
		m.col[j+1] = 1
		return hi[j]
	case j < 2*k:
		m.col[j-k+1] = -1
		return -lo[j-k]
	}
	c := &cuts[j-2*k]
	m.col[0] = 1
	for r, s := range c.s {
		m.col[r+1] = -s
	}
	return c.v
}

// reset builds a feasible starting basis from cut i.
func (m *master) reset(cuts []cut, i int) {
	k := m.k
	m.basis[0] = 2*k + i
	for r := 0; r < k; r++ {
		if cuts[i].s[r] >= 0 {
			m.basis[r+1] = r
		} else {
			m.basis[r+1] = k + r
		}
	}
	m.ok = true
}

// invert factors the basis (Gauss–Jordan with partial pivoting); false when
// singular.
func (m *master) invert(cuts []cut, lo, hi []float64) bool {
	n := m.k + 1
	for c, j := range m.basis {
		m.column(j, cuts, lo, hi)
		for r := 0; r < n; r++ {
			m.bmat[r*n+c] = m.col[r]
		}
	}
	b, inv := m.bmat, m.binv
	clear(inv)
	for i := 0; i < n; i++ {
		inv[i*n+i] = 1
	}
	for c := 0; c < n; c++ {
		p, best := -1, 1e-13
		for r := c; r < n; r++ {
			if v := math.Abs(b[r*n+c]); v > best {
				p, best = r, v
			}
		}
		if p < 0 {
			return false
		}
		if p != c {
			for t := 0; t < n; t++ {
				b[p*n+t], b[c*n+t] = b[c*n+t], b[p*n+t]
				inv[p*n+t], inv[c*n+t] = inv[c*n+t], inv[p*n+t]
			}
		}
		d := 1 / b[c*n+c]
		for t := 0; t < n; t++ {
			b[c*n+t] *= d
			inv[c*n+t] *= d
		}
		for r := 0; r < n; r++ {
			if r == c || b[r*n+c] == 0 {
				continue
			}
			f := b[r*n+c]
			for t := 0; t < n; t++ {
				b[r*n+t] -= f * b[c*n+t]
				inv[r*n+t] -= f * inv[c*n+t]
			}
		}
	}
	return true
}

// solve optimises the master for the box [lo, hi]; it writes λ into lam and
// returns the model's maximum t, or ok false when the simplex fails.
func (m *master) solve(cuts []cut, lo, hi, lam []float64) (t float64, ok bool) {
	n, k := m.k+1, m.k
	if !m.ok {
		m.reset(cuts, len(cuts)-1)
	}
	ncol := 2*k + len(cuts)
	inBasis := make([]bool, ncol)
	resets := 0
	for it := 0; it < 200+20*ncol; it++ {
		m.iters++
		if !m.invert(cuts, lo, hi) {
			if resets++; resets > 2 {
				m.ok = false
				return 0, false
			}
			m.reset(cuts, len(cuts)-1)
			continue
		}
		bad := false
		for r := 0; r < n; r++ {
			m.xb[r] = m.binv[r*n] // B⁻¹ e₀
			if m.xb[r] < -1e-9 {
				bad = true
			}
		}
		if bad {
			if resets++; resets > 2 {
				m.ok = false
				return 0, false
			}
			m.reset(cuts, len(cuts)-1)
			continue
		}
		// y = c_Bᵀ B⁻¹.
		clear(m.y)
		for r, j := range m.basis {
			cb := m.column(j, cuts, lo, hi)
			for c := 0; c < n; c++ {
				m.y[c] += cb * m.binv[r*n+c]
			}
		}
		clear(inBasis)
		for _, j := range m.basis {
			inBasis[j] = true
		}
		bland := it > 60
		enter, best := -1, 0.0
		for j := 0; j < ncol; j++ {
			if inBasis[j] {
				continue
			}
			cj := m.column(j, cuts, lo, hi)
			d, mag := cj, math.Abs(cj)
			for r := 0; r < n; r++ {
				d -= m.y[r] * m.col[r]
				mag += math.Abs(m.y[r] * m.col[r])
			}
			if d < -tolPrice*(1+mag) && (enter < 0 || (!bland && d < best)) {
				enter, best = j, d
				if bland {
					break
				}
			}
		}
		if enter < 0 {
			for r := 0; r < k; r++ {
				lam[r] = math.Min(math.Max(m.y[r+1], lo[r]), hi[r])
			}
			return m.y[0], true
		}
		m.column(enter, cuts, lo, hi)
		for r := 0; r < n; r++ {
			s := 0.0
			for c := 0; c < n; c++ {
				s += m.binv[r*n+c] * m.col[c]
			}
			m.w[r] = s
		}
		leave, ratio := -1, math.Inf(1)
		for r := 0; r < n; r++ {
			if m.w[r] > tolPivot {
				q := math.Max(m.xb[r], 0) / m.w[r]
				if q < ratio-1e-15 || (q <= ratio+1e-15 && leave >= 0 && m.w[r] > m.w[leave]) {
					leave, ratio = r, q
				}
			}
		}
		if leave < 0 {
			m.ok = false
			return 0, false
		}
		m.basis[leave] = enter
	}
	m.ok = false
	return 0, false
}

// weights returns μ for the first n cuts.
func (m *master) weights(n int) []float64 {
	w := make([]float64, n)
	if !m.ok {
		return w
	}
	for r, j := range m.basis {
		if i := j - 2*m.k; i >= 0 && i < n {
			w[i] = math.Max(m.xb[r], 0)
		}
	}
	return w
}

// basicCuts flags the cuts in the basis.
func (m *master) basicCuts() map[int]bool {
	b := make(map[int]bool)
	for _, j := range m.basis {
		if j >= 2*m.k {
			b[j-2*m.k] = true
		}
	}
	return b
}

// remap renumbers cut columns after cuts were dropped (remap[old] = new).
func (m *master) remap(remap []int) {
	for r, j := range m.basis {
		if i := j - 2*m.k; i >= 0 {
			if remap[i] < 0 {
				m.ok = false
				return
			}
			m.basis[r] = 2*m.k + remap[i]
		}
	}
}
