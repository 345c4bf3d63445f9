package rwload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Target is where and how Run sends.
type Target struct {
	URLs         []string      // remote-write endpoints; sender k sends its j-th request to URLs[(k+j)%len]
	Tenant       string        // sent in TenantHeader when not empty
	TenantHeader string        // default THANOS-TENANT
	Timeout      time.Duration // per attempt; default 30s
	MaxRetries   int           // retries of a request after a 5xx, 429 or transport error; <0: none
	MinBackoff   time.Duration // first wait before a retry, doubled each time; default 50ms
	MaxBackoff   time.Duration // longest wait; default 2s
}

// DefaultMaxRetries is the retry budget of a request when Target.MaxRetries is 0.
const DefaultMaxRetries = 10

func (t *Target) defaults() error {
	if len(t.URLs) == 0 {
		return errors.New("no target URL")
	}
	if t.TenantHeader == "" {
		t.TenantHeader = "THANOS-TENANT"
	}
	if t.Timeout <= 0 {
		t.Timeout = 30 * time.Second
	}
	switch {
	case t.MaxRetries == 0:
		t.MaxRetries = DefaultMaxRetries
	case t.MaxRetries < 0:
		t.MaxRetries = 0
	}
	if t.MinBackoff <= 0 {
		t.MinBackoff = 50 * time.Millisecond
	}
	if t.MaxBackoff < t.MinBackoff {
		t.MaxBackoff = max(2*time.Second, t.MinBackoff)
	}
	return nil
}

// StatusTransport is the key of Result.Errors for attempts that got no HTTP answer
// (connection refused, timeout, ...).
const StatusTransport = 0

// Result is what Run measured.
type Result struct {
	Duration  time.Duration // from the first request until the last answer
	Samples   int64         // acknowledged (2xx) samples
	Sum       float64       // of the acknowledged values
	Requests  int64         // HTTP attempts, retries included
	Retries   int64         // attempts that were retries
	Failed    int64         // requests given up: a 4xx other than 429, or retries exhausted
	FailedSmp int64         // samples in them
	// Errors counts the attempts that were not 2xx by status (StatusTransport: no
	// answer), retried ones included; ErrorText keeps the first answer of each.
	Errors    map[int]int64
	ErrorText map[int]string
	Latencies []time.Duration // of every attempt, sorted
}

// SamplesPerSec is the acknowledged samples per second of wall time.
func (r *Result) SamplesPerSec() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Samples) / r.Duration.Seconds()
}

// Latency returns the q-quantile (0..1) of the attempt latencies (nearest rank).
func (r *Result) Latency(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(q*float64(len(r.Latencies))+0.5) - 1
	return r.Latencies[min(max(i, 0), len(r.Latencies)-1)]
}

// Run sends the plan to the target: one goroutine per sender, each with one request in
// flight, in plan order. It returns when every request is acknowledged or given up, or
// ctx ends (then with ctx's error and what was measured so far).
func Run(ctx context.Context, p *Plan, t Target) (*Result, error) {
	if err := t.defaults(); err != nil {
		return nil, err
	}
	tr := &http.Transport{
		MaxIdleConnsPerHost: len(p.Senders),
		DisableCompression:  true, // the bodies are snappy already; answers are tiny
		IdleConnTimeout:     time.Minute,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	ss := make([]*sender, len(p.Senders))
	var wg sync.WaitGroup
	began := time.Now()
	for k, reqs := range p.Senders {
		ss[k] = &sender{k: k, t: &t, client: client, res: newResult()}
		wg.Go(func() { ss[k].run(ctx, reqs) })
	}
	wg.Wait()
	res := newResult()
	res.Duration = time.Since(began)
	for _, s := range ss {
		res.merge(s.res)
	}
	slices.Sort(res.Latencies)
	return res, ctx.Err()
}

func newResult() *Result {
	return &Result{Errors: map[int]int64{}, ErrorText: map[int]string{}}
}

func (r *Result) merge(o *Result) {
	r.Samples += o.Samples
	r.Sum += o.Sum
	r.Requests += o.Requests
	r.Retries += o.Retries
	r.Failed += o.Failed
	r.FailedSmp += o.FailedSmp
	for code, n := range o.Errors {
		r.Errors[code] += n
		if _, ok := r.ErrorText[code]; !ok {
			r.ErrorText[code] = o.ErrorText[code]
		}
	}
	r.Latencies = append(r.Latencies, o.Latencies...)
}

// sender sends one sender's requests; its result is its own, so senders share no locks.
type sender struct {
	k      int
	t      *Target
	client *http.Client
	res    *Result
}

func (s *sender) run(ctx context.Context, reqs []Request) {
	s.res.Latencies = make([]time.Duration, 0, len(reqs))
	for j, r := range reqs {
		if ctx.Err() != nil {
			return
		}
		s.send(ctx, s.t.URLs[(s.k+j)%len(s.t.URLs)], r)
	}
}

// send delivers one request, retrying 5xx, 429 and transport errors with exponential
// backoff (with jitter, so that senders rejected together do not come back together).
func (s *sender) send(ctx context.Context, url string, r Request) {
	backoff := s.t.MinBackoff
	for attempt := 0; ; attempt++ {
		code, msg := s.post(ctx, url, r.Body)
		if code/100 == 2 {
			s.res.Samples += int64(r.Samples)
			s.res.Sum += r.Sum
			return
		}
		if ctx.Err() != nil {
			return // interrupted: not the receiver's error
		}
		s.res.Errors[code]++
		if _, ok := s.res.ErrorText[code]; !ok {
			s.res.ErrorText[code] = msg
		}
		retryable := code == StatusTransport || code == http.StatusTooManyRequests || code >= 500
		if !retryable || attempt >= s.t.MaxRetries {
			s.res.Failed++
			s.res.FailedSmp += int64(r.Samples)
			return
		}
		s.res.Retries++
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(2*backoff, s.t.MaxBackoff)
	}
}

// post makes one attempt and returns the status (StatusTransport if there was no answer)
// and, for a non-2xx answer, the start of its body.
func (s *sender) post(ctx context.Context, url string, body []byte) (int, string) {
	ctx, cancel := context.WithTimeout(ctx, s.t.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return StatusTransport, err.Error()
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("User-Agent", "vigil-rwload")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	if s.t.Tenant != "" {
		req.Header.Set(s.t.TenantHeader, s.t.Tenant)
	}
	began := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		s.res.Requests++
		s.res.Latencies = append(s.res.Latencies, time.Since(began))
		return StatusTransport, err.Error()
	}
	var msg []byte
	if resp.StatusCode/100 != 2 {
		msg, _ = io.ReadAll(io.LimitReader(resp.Body, 512))
	}
	// Drain the rest so the connection is reused.
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	s.res.Requests++
	s.res.Latencies = append(s.res.Latencies, time.Since(began))
	return resp.StatusCode, fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
}
