package op

// bcast maps every element of an output to the element of a (possibly
// broadcast) input it reads: idx == nil means the identity, otherwise
// element k reads idx[k].
type bcast struct {
	idx []int32
}

func newBcast(in, out []int) bcast {
	if Numel(in) == Numel(out) {
		return bcast{}
	}
	full := BroadcastIndex(in, out)
	idx := make([]int32, len(full))
	for k, q := range full {
		idx[k] = int32(q)
	}
	return bcast{idx: idx}
}

// BroadcastIndex maps each element of shape out to the element of shape in
// that multidirectional broadcasting reads.
func BroadcastIndex(in, out []int) []int {
	idx := make([]int, Numel(out))
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
		idx[k] = q
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
