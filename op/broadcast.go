package op

// bcast maps every element of an output to the element of a (possibly
// broadcast) input it reads: idx == nil means the identity, otherwise
// element k reads idx[k]. The map is interned (see indexMap); m keeps it
// alive.
type bcast struct {
	idx []int32
	m   *indexMap
}

func newBcast(in, out []int) bcast {
	if Numel(in) == Numel(out) {
		return bcast{}
	}
	m := internIndex(indexKey("broadcast", in, out), func() *indexMap {
		return &indexMap{idx: broadcastIndex[int32](in, out)}
	})
	return bcast{idx: m.idx, m: m}
}

// BroadcastIndex maps each element of shape out to the element of shape in
// that multidirectional broadcasting reads.
func BroadcastIndex(in, out []int) []int { return broadcastIndex[int](in, out) }

func broadcastIndex[I int | int32](in, out []int) []I {
	idx := make([]I, Numel(out))
	off := len(out) - len(in)
	stride := make([]int, len(out))
	s := 1
	for i := len(in) - 1; i >= 0; i-- {
		if in[i] != 1 {
			stride[off+i] = s
		}
		s *= in[i]
	}
	coord := make([]int, len(out))
	for k := range idx {
		q := 0
		for d, c := range coord {
			q += c * stride[d]
		}
		idx[k] = I(q)
		for d := len(out) - 1; d >= 0; d-- {
			coord[d]++
			if coord[d] < out[d] {
				break
			}
			coord[d] = 0
		}
	}
	return idx
}

func (b bcast) at(k int) int {
	if b.idx == nil {
		return k
	}
	return int(b.idx[k])
}
