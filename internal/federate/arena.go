package federate

import dto "github.com/prometheus/client_model/go"

// arena hands out the protobuf structs of the metrics of one family from blocks, so that
// a series costs a few allocations per block instead of several of its own.
type arena struct {
	metrics  []dto.Metric
	lpairs   []dto.LabelPair
	pptrs    []*dto.LabelPair
	strs     []string
	untypeds []dto.Untyped
	f64s     []float64
	i64s     []int64
	// blocks keeps the blocks handed out since the last reset, for reuse.
	used, free []*arenaBlock
}

// arenaBlock is one set of blocks of the arena.
type arenaBlock struct {
	metrics  []dto.Metric
	lpairs   []dto.LabelPair
	pptrs    []*dto.LabelPair
	strs     []string
	untypeds []dto.Untyped
	f64s     []float64
	i64s     []int64
}

const arenaBlockSeries = 256

func (a *arena) metric() *dto.Metric {
	if len(a.metrics) == 0 {
		a.grow()
	}
	m := &a.metrics[0]
	a.metrics = a.metrics[1:]
	return m
}

func (a *arena) untyped(f float64) *dto.Untyped {
	if len(a.untypeds) == 0 || len(a.f64s) == 0 {
		a.grow()
	}
	a.f64s[0] = f
	u := &a.untypeds[0]
	u.Value = &a.f64s[0]
	a.untypeds, a.f64s = a.untypeds[1:], a.f64s[1:]
	return u
}

func (a *arena) int64(v int64) *int64 {
	if len(a.i64s) == 0 {
		a.grow()
	}
	a.i64s[0] = v
	p := &a.i64s[0]
	a.i64s = a.i64s[1:]
	return p
}

// pairs returns a slice for n label pairs.
func (a *arena) pairs(n int) []*dto.LabelPair {
	if n > arenaBlockSeries {
		return make([]*dto.LabelPair, n)
	}
	if len(a.pptrs) < n {
		a.grow()
	}
	p := a.pptrs[:n:n]
	a.pptrs = a.pptrs[n:]
	return p
}

func (a *arena) pair(name, val string) *dto.LabelPair {
	if len(a.lpairs) == 0 || len(a.strs) < 2 {
		a.grow()
	}
	a.strs[0], a.strs[1] = name, val
	lp := &a.lpairs[0]
	lp.Name, lp.Value = &a.strs[0], &a.strs[1]
	a.lpairs, a.strs = a.lpairs[1:], a.strs[2:]
	return lp
}

// grow starts a new set of blocks. The rest of the current ones is left unused.
func (a *arena) grow() {
	var b *arenaBlock
	if n := len(a.free); n > 0 {
		b, a.free = a.free[n-1], a.free[:n-1]
	} else {
		const pairs = 8 * arenaBlockSeries
		b = &arenaBlock{
			metrics:  make([]dto.Metric, arenaBlockSeries),
			lpairs:   make([]dto.LabelPair, pairs),
			pptrs:    make([]*dto.LabelPair, pairs),
			strs:     make([]string, 2*pairs),
			untypeds: make([]dto.Untyped, arenaBlockSeries),
			f64s:     make([]float64, arenaBlockSeries),
			i64s:     make([]int64, arenaBlockSeries),
		}
	}
	a.used = append(a.used, b)
	a.metrics, a.lpairs, a.pptrs, a.strs = b.metrics, b.lpairs, b.pptrs, b.strs
	a.untypeds, a.f64s, a.i64s = b.untypeds, b.f64s, b.i64s
}

// reset makes every block handed out free again. The caller guarantees that nothing
// refers to what they hold.
func (a *arena) reset() {
	for _, b := range a.used {
		clear(b.metrics)
		clear(b.lpairs)
		clear(b.pptrs)
		clear(b.strs)
		clear(b.untypeds)
	}
	// Keep a few blocks: one large family should not pin its memory for the rest of the
	// request.
	a.free = append(a.free, a.used...)
	if len(a.free) > 4 {
		a.free = a.free[:4]
	}
	a.used = a.used[:0]
	a.metrics, a.lpairs, a.pptrs, a.strs = nil, nil, nil, nil
	a.untypeds, a.f64s, a.i64s = nil, nil, nil
}
