package series

import "github.com/lockstep-dev/lockstep/metrics-adapter/calc"

// ring keeps the most recent samples of one series in time order, overwriting the oldest.
type ring struct {
	buf   []calc.Sample
	start int // index of the oldest sample
	n     int
}

func newRing(capacity int) ring { return ring{buf: make([]calc.Sample, capacity)} }

// add appends a sample; a sample not newer than the last one is dropped, as a TSDB drops
// out-of-order samples.
func (r *ring) add(s calc.Sample) bool {
	if r.n > 0 && s.T <= r.last().T {
		return false
	}
	if r.n < len(r.buf) {
		r.buf[(r.start+r.n)%len(r.buf)] = s
		r.n++
		return true
	}
	r.buf[r.start] = s
	r.start = (r.start + 1) % len(r.buf)
	return true
}

func (r *ring) last() calc.Sample { return r.buf[(r.start+r.n-1)%len(r.buf)] }

// appendTo appends the samples in time order to dst.
func (r *ring) appendTo(dst []calc.Sample) []calc.Sample {
	for i := range r.n {
		dst = append(dst, r.buf[(r.start+i)%len(r.buf)])
	}
	return dst
}
