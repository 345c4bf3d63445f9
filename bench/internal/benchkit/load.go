package benchkit

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// LoadClient is an HTTP client that keeps up to clients connections open to one host,
// for load from that many goroutines.
func LoadClient(clients int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = clients
	tr.MaxConnsPerHost = 0
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}

// Time GETs u on hc, reads the whole body and returns how long that took; a status other
// than 200 is an error quoting the start of the body.
func Time(ctx context.Context, hc *http.Client, u string) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	began := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	took := time.Since(began)
	if err != nil {
		return took, fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return took, fmt.Errorf("HTTP %d: %.300s", resp.StatusCode, body)
	}
	return took, nil
}

// Tally is the outcome of timed requests: latencies of those that succeeded, failures
// with the first error, and how long it all took.
type Tally struct {
	OK, Errs int
	FirstErr string
	Lat      []time.Duration
	Wall     time.Duration
}

// QPS is the rate of successful requests.
func (t *Tally) QPS() float64 { return float64(t.OK) / t.Wall.Seconds() }

// ClosedLoop sends requests from clients goroutines, each with one in flight, until d has
// passed or ctx ends: client c's i-th request GETs the URL next(c, i) returns, whose name
// prefixes its error if it fails.
func ClosedLoop(ctx context.Context, hc *http.Client, clients int, d time.Duration, next func(c, i int) (u, name string)) Tally {
	var (
		mu  sync.Mutex
		res Tally
		wg  sync.WaitGroup
	)
	began := time.Now()
	deadline := began.Add(d)
	for c := range clients {
		wg.Go(func() {
			for i := c; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				u, name := next(c, i)
				took, err := Time(ctx, hc, u)
				mu.Lock()
				switch {
				case err == nil:
					res.OK++
					res.Lat = append(res.Lat, took)
				case res.FirstErr == "" && name != "":
					res.FirstErr = name + ": " + err.Error()
				case res.FirstErr == "":
					res.FirstErr = err.Error()
				}
				if err != nil {
					res.Errs++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.Wall = time.Since(began)
	return res
}

// CPUSeconds returns the process's user+system CPU seconds from /proc/PID/stat (0 if it
// cannot be read).
func (p *Proc) CPUSeconds() float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.Cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces:
	// state is the first, utime and stime the 12th and 13th.
	s := string(b)
	fs := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fs) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(fs[11], 64)
	st, _ := strconv.ParseFloat(fs[12], 64)
	return (ut + st) / clockTicks
}

// clockTicks is USER_HZ, 100 on every Linux platform Go supports.
const clockTicks = 100

// Percentile returns the p-th percentile (nearest rank) of ds.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}
