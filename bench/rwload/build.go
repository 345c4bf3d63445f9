package rwload

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"golang.org/x/sync/errgroup"
)

// Shape is what load to generate.
type Shape struct {
	Series      int           // distinct series
	Steps       int           // samples per series
	Batch       int           // samples per request
	Concurrency int           // senders, each with one request in flight
	Interval    time.Duration // between steps (the scrape interval)
	Start       time.Time     // timestamp of step 0; zero: now - (Steps-1)*Interval
	Seed        uint64        // seed of the values
}

// DefaultShape is the reference load: 20k series × 100 steps, batches of 2000
// samples, 4 senders, 15s apart.
func DefaultShape() Shape {
	return Shape{Series: 20000, Steps: 100, Batch: 2000, Concurrency: 4, Interval: 15 * time.Second, Seed: 1}
}

func (s Shape) validate() error {
	if s.Series <= 0 || s.Steps <= 0 || s.Batch <= 0 || s.Concurrency <= 0 {
		return fmt.Errorf("series, steps, batch and concurrency must be positive: %+v", s)
	}
	if s.Interval <= 0 {
		return errors.New("interval must be positive")
	}
	if s.Concurrency > s.Series {
		return fmt.Errorf("concurrency %d > series %d: a sender would own no series", s.Concurrency, s.Series)
	}
	return nil
}

// Request is one pre-encoded remote-write request.
type Request struct {
	Body    []byte  // snappy block-compressed prompb.WriteRequest
	Samples int     // samples in it
	Sum     float64 // of their values, to check what a receiver stored
}

// Plan is the whole load, encoded: per sender, its requests in the order they must be
// sent.
type Plan struct {
	Shape   Shape
	Senders [][]Request
	Samples int64   // in all requests: Series × Steps
	Sum     float64 // of all values
	MinT    int64   // first timestamp (ms)
	MaxT    int64   // last timestamp (ms)
	Bytes   int64   // compressed bodies, total
	Raw     int64   // uncompressed protobuf, total
}

// Requests returns the number of requests in the plan.
func (p *Plan) Requests() int {
	n := 0
	for _, rs := range p.Senders {
		n += len(rs)
	}
	return n
}

// Build generates and encodes the whole load. Sender k owns the series i with
// i%Concurrency == k. Its samples are ordered step by step (all its series at step 0,
// then at step 1, ...) and cut into requests of Batch samples, so a request may span the
// end of one step and the start of the next; within a request, each series is one
// TimeSeries with its samples in time order. The senders' plans are built in parallel.
func Build(s Shape) (*Plan, error) {
	if s.Start.IsZero() {
		s.Start = time.Now().Add(-time.Duration(s.Steps-1) * s.Interval)
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	p := &Plan{Shape: s, Senders: make([][]Request, s.Concurrency), MinT: s.Start.UnixMilli()}
	p.MaxT = p.MinT + int64(s.Steps-1)*s.Interval.Milliseconds()
	sums := make([]float64, s.Concurrency)
	raws := make([]int64, s.Concurrency)
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for k := range s.Concurrency {
		g.Go(func() error {
			var err error
			p.Senders[k], sums[k], raws[k], err = buildSender(s, k)
			if err != nil {
				return fmt.Errorf("sender %d: %w", k, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for k, rs := range p.Senders {
		p.Sum += sums[k]
		p.Raw += raws[k]
		for _, r := range rs {
			p.Samples += int64(r.Samples)
			p.Bytes += int64(len(r.Body))
		}
	}
	return p, nil
}

// buildSender encodes sender k's requests and returns them with the sum of their values
// and their uncompressed size.
func buildSender(s Shape, k int) ([]Request, float64, int64, error) {
	rng := rand.New(rand.NewPCG(s.Seed, uint64(k)))
	var ss []seriesState
	for i := k; i < s.Series; i += s.Concurrency {
		ss = append(ss, newSeries(i, rng))
	}
	enc := newEncoder(len(ss), s.Batch)
	t0, step := s.Start.UnixMilli(), s.Interval.Milliseconds()
	total := len(ss) * s.Steps
	reqs := make([]Request, 0, (total+s.Batch-1)/s.Batch)
	var sum float64
	var raw int64
	for a := 0; a < total; a += s.Batch {
		enc.reset()
		for p := a; p < min(a+s.Batch, total); p++ {
			j, st := p%len(ss), p/len(ss)
			enc.add(j, prompb.Sample{Timestamp: t0 + int64(st)*step, Value: ss[j].next(rng)})
		}
		r, n, err := enc.encode(ss)
		if err != nil {
			return nil, 0, 0, err
		}
		reqs = append(reqs, r)
		sum += r.Sum
		raw += int64(n)
	}
	return reqs, sum, raw, nil
}

// encoder groups one request's samples by series and encodes the request. It reuses its
// buffers from request to request; only the compressed body is kept.
type encoder struct {
	slot    []int32 // series → index in ts, or -1
	touched []int   // series in this request, in order of first sample
	ts      []prompb.TimeSeries
	samples [][]prompb.Sample // per entry of ts (reused backing arrays)
	raw     []byte
	comp    []byte
	sum     float64
	n       int
}

func newEncoder(series, batch int) *encoder {
	e := &encoder{slot: make([]int32, series)}
	for i := range e.slot {
		e.slot[i] = -1
	}
	e.touched = make([]int, 0, min(series, batch))
	return e
}

func (e *encoder) reset() {
	for _, j := range e.touched {
		e.slot[j] = -1
	}
	e.touched = e.touched[:0]
	e.sum, e.n = 0, 0
}

// add appends a sample of series j; samples of a series must come in time order.
func (e *encoder) add(j int, smp prompb.Sample) {
	if e.slot[j] < 0 {
		e.slot[j] = int32(len(e.touched))
		if len(e.touched) == len(e.samples) {
			e.samples = append(e.samples, nil)
		}
		e.samples[len(e.touched)] = e.samples[len(e.touched)][:0]
		e.touched = append(e.touched, j)
	}
	x := e.slot[j]
	e.samples[x] = append(e.samples[x], smp)
	e.sum += smp.Value
	e.n++
}

// encode marshals the request and compresses it. It returns the request and the size of
// the uncompressed protobuf.
func (e *encoder) encode(ss []seriesState) (Request, int, error) {
	e.ts = e.ts[:0]
	for x, j := range e.touched {
		e.ts = append(e.ts, prompb.TimeSeries{Labels: ss[j].labels, Samples: e.samples[x]})
	}
	wr := prompb.WriteRequest{Timeseries: e.ts}
	size := wr.Size()
	if cap(e.raw) < size {
		e.raw = make([]byte, size)
	}
	n, err := wr.MarshalToSizedBuffer(e.raw[:size])
	if err != nil {
		return Request{}, 0, fmt.Errorf("marshal write request: %w", err)
	}
	// Encode into a reused buffer and keep an exact-size copy: snappy.Encode's own
	// allocation has the capacity of the worst case, larger than the raw protobuf.
	e.comp = snappy.Encode(e.comp[:cap(e.comp)], e.raw[size-n:size])
	return Request{Body: bytes.Clone(e.comp), Samples: e.n, Sum: e.sum}, n, nil
}
