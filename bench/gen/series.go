package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/prometheus/prometheus/model/labels"
)

// Series families. Every value is a pure function of (series, timestamp), so the two
// replicas, which scrape at different instants, see the same underlying targets: at an
// identical timestamp they would report identical values.
const (
	kindCounter = iota // http_requests_total{job,instance,handler,code}
	kindBucket         // http_request_duration_seconds_bucket{job,instance,handler,le}
	kindGauge          // bench_gauge{job,instance,shard}
)

// Shape of the generated data set; querybench relies on these names.
var (
	jobs     = []string{"api", "web", "db", "cache", "worker"}
	handlers = []string{"/", "/api/v1/query", "/api/v1/query_range", "/api/v1/series", "/metrics", "/healthz"}
	codes    = []string{"200", "404", "500"}
	les      = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, math.Inf(1)}
)

// gaugesPerShard is how many bench_gauge series share one shard label value, so that
// bench_gauge{shard="0"} selects 500 raw series (fewer only when there are fewer gauges).
const gaugesPerShard = 500

const (
	day        = 86400.0 // seconds; period of the diurnal request-rate wave
	diurnalAmp = 0.5     // request rate swings by ±50% over a day
)

// series is one generated time series and the parameters of its value function.
type series struct {
	lset   labels.Labels
	kind   int
	target int     // index of the scrape target (instance); samples of a target share timestamps
	id     uint64  // seed for per-sample noise
	rate   float64 // counter/bucket: mean increase per second
	phase  float64 // radians, shifts the diurnal wave
	resetP int64   // counter/bucket: reset period in ms (0: never resets)
	resetO int64   // counter/bucket: reset phase in ms; for non-resetting series the counter's start
	frac   float64 // bucket: cumulative fraction of requests at or below le
	base   float64 // gauge: mean value
	amp    float64 // gauge: relative amplitude of its wave
	period float64 // gauge: wave period in seconds
}

// buildSeries returns n series sorted by label set: 45% counters, 25% histogram buckets
// (whole histograms of len(les) buckets), the rest gauges. start is the first generated
// timestamp in ms and seeds the start of non-resetting counters.
func buildSeries(n int, seed uint64, start int64) []series {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	nBucket := n / 4 / len(les) * len(les)
	nCounter := n * 45 / 100
	nGauge := n - nBucket - nCounter
	out := make([]series, 0, n)

	counterParams := func(s *series) {
		s.rate = math.Exp(rng.Float64()*6 - 2.5) // ~0.08 .. 30 per second
		s.phase = rng.Float64() * 2 * math.Pi
		if rng.IntN(20) == 0 { // 5% of counters restart every 6h..48h
			s.resetP = int64(6*3600+rng.IntN(42*3600)) * 1000
			s.resetO = rng.Int64N(s.resetP)
		} else {
			s.resetO = start - rng.Int64N(30*86400*1000) // counting since up to 30 days ago
		}
	}
	perTarget := len(handlers) * len(codes)
	for i := range nCounter {
		t, h, c := i/perTarget, i%perTarget/len(codes), i%len(codes)
		s := series{kind: kindCounter, target: t, lset: labels.FromStrings(
			"__name__", "http_requests_total", "job", jobOf(t), "instance", instanceOf(t),
			"handler", handlers[h], "code", codes[c])}
		counterParams(&s)
		s.rate *= []float64{1, 0.05, 0.01}[c]
		out = append(out, s)
	}
	for g := 0; g*len(les) < nBucket; g++ {
		t, h := g/len(handlers), g%len(handlers)
		var group series
		counterParams(&group)
		median := math.Exp(math.Log(0.01) + rng.Float64()*math.Log(40)) // 10ms .. 400ms
		for _, le := range les {
			s := group
			s.kind, s.target = kindBucket, t
			s.frac = 1
			if !math.IsInf(le, 1) {
				s.frac = 0.5 * (1 + math.Erf(math.Log(le/median)/math.Sqrt2))
			}
			s.lset = labels.FromStrings("__name__", "http_request_duration_seconds_bucket",
				"job", jobOf(t), "instance", instanceOf(t), "handler", handlers[h],
				"le", strconv.FormatFloat(le, 'g', -1, 64))
			out = append(out, s)
		}
	}
	for i := range nGauge {
		t := i % max(1, nCounter/perTarget+1)
		s := series{kind: kindGauge, target: t, lset: labels.FromStrings(
			"__name__", "bench_gauge", "job", jobOf(t), "instance", instanceOf(t),
			"shard", strconv.Itoa(i/gaugesPerShard), "slot", strconv.Itoa(i))}
		s.base = math.Exp(10 + rng.Float64()*10)
		s.amp = 0.05 + rng.Float64()*0.3
		s.period = 600 + rng.Float64()*6*3600
		s.phase = rng.Float64() * 2 * math.Pi
		out = append(out, s)
	}
	for i := range out {
		out[i].id = rng.Uint64()
	}
	slices.SortFunc(out, func(a, b series) int { return labels.Compare(a.lset, b.lset) })
	return out
}

func jobOf(target int) string { return jobs[target%len(jobs)] }

func instanceOf(target int) string {
	return fmt.Sprintf("10.%d.%d.%d:8080", target>>16&255, target>>8&255, target&255)
}

// integral is the number of events up to t (seconds) of a counter whose rate follows the
// diurnal wave: the integral of rate*(1+diurnalAmp*sin(2πt/day+phase)).
func (s *series) integral(t float64) float64 {
	w := 2 * math.Pi / day
	return s.rate * (t - diurnalAmp/w*math.Cos(w*t+s.phase))
}

// value returns the series' value at t (ms).
func (s *series) value(t int64) float64 {
	switch s.kind {
	case kindGauge:
		sec := float64(t) / 1000
		wave := s.amp * math.Sin(2*math.Pi*sec/s.period+s.phase)
		return math.Round(s.base * (1 + wave + 0.02*noise(s.id, t)))
	default:
		since := s.resetO // last restart
		if s.resetP > 0 {
			since = s.resetO + floorDiv(t-s.resetO, s.resetP)*s.resetP
		}
		total := s.integral(float64(t)/1000) - s.integral(float64(since)/1000)
		if s.kind == kindBucket {
			total *= s.frac
		}
		return math.Floor(total)
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// noise returns a deterministic pseudo-random number in [-1, 1) for (id, t).
func noise(id uint64, t int64) float64 {
	return float64(mix(id^uint64(t))>>11)/(1<<52) - 1
}

// mix is the splitmix64 finalizer.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// scrapeTime returns the timestamp (ms) of the k-th scrape of target by replica, k
// counted from epoch (ms, a multiple of interval). Each replica scrapes each target at its
// own offset within the interval, plus up to ±jitter ms of per-scrape jitter.
func scrapeTime(epoch int64, k int64, target, replica int, interval, jitter int64) int64 {
	off := int64(mix(uint64(target)<<8|uint64(replica)) % uint64(interval))
	var j int64
	if jitter > 0 {
		j = int64(mix(uint64(k)<<24^uint64(target)<<4^uint64(replica))%uint64(2*jitter+1)) - jitter
	}
	return epoch + k*interval + off + j
}
