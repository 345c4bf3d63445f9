package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Column order of every table.
const (
	colProm = iota
	colThanos
	colVigil
	nCols
)

var colNames = [nCols]string{"Prometheus 2.42 (direct)", "Thanos v0.42.4 query", "Vigil query"}

// row is one case of the table: the answers of each column over all rounds.
type row struct {
	name    string
	answers [nCols][]answer
	skip    [nCols]string // why a column does not apply ("—" in the table)
	value   bool          // the case reports a count(up) value
	durOnly bool          // the case reports only a duration (Took), or Error if it never ended
}

// results is everything one run measured.
type results struct {
	rows     []*row
	bad      []badRequest
	badAns   [nCols][]answer
	notes    []string
	interop  []string
	heavyArg string
}

// heavy returns the heavy selector's query_range parameters plus extra: every series
// over the last hour at a 15 s step.
func heavy(now time.Time, extra ...string) url.Values {
	v := url.Values{
		"query": {`{__name__=~".+"}`},
		"start": {strconv.FormatInt(now.Add(-time.Hour).Unix(), 10)},
		"end":   {strconv.FormatInt(now.Unix(), 10)},
		"step":  {"15"},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return v
}

// measure runs every case for o.rounds rounds.
func measure(ctx context.Context, o options, s *stack) (*results, error) {
	res := &results{heavyArg: `query_range {__name__=~".+"} over the last 1h, step 15s`}
	bases := [nCols]string{s.promURL[0], s.tq.url, s.vq.url}
	base := &row{name: "0. heavy selector, no timeout (baseline)"}
	to := &row{name: "1. `timeout=1ms`, heavy selector, default partial_response"}
	toStrict := &row{name: "2. same with `partial_response=false`"}
	frozen := &row{name: "3. one of two sidecars frozen (SIGSTOP) after it was healthy: the next `count(up)`", value: true}
	recovered := &row{name: "3b. after SIGCONT (sent as soon as row 3 answered, or after --freeze-hold; one freeze per querier): until the querier lists the sidecar healthy and `count(up)` with dedup=false is complete again", durOnly: true}
	hole := &row{name: "4. extra endpoint that accepts TCP and never speaks: `count(up)`", value: true}
	for _, r := range []*row{frozen, recovered, hole} {
		r.skip[colProm] = "—"
	}
	res.rows = []*row{base, to, toStrict, frozen, recovered, hole}

	for round := 1; round <= o.rounds; round++ {
		fmt.Fprintf(logw, "round %d/%d: heavy selector\n", round, o.rounds)
		for c := range nCols {
			now := time.Now()
			base.answers[c] = append(base.answers[c], call(ctx, o.maxWait, http.MethodGet, bases[c], "/api/v1/query_range", heavy(now)))
			to.answers[c] = append(to.answers[c], call(ctx, o.maxWait, http.MethodGet, bases[c], "/api/v1/query_range", heavy(now, "timeout", "1ms")))
			toStrict.answers[c] = append(toStrict.answers[c], call(ctx, o.maxWait, http.MethodGet, bases[c], "/api/v1/query_range",
				heavy(now, "timeout", "1ms", "partial_response", "false")))
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}

		// One freeze per querier, thawed as soon as that querier answered: how long the
		// sidecar stays frozen does not depend on the other querier.
		for _, x := range []struct {
			c int
			q *querier
		}{{colThanos, s.tq}, {colVigil, s.vq}} {
			c, q := x.c, x.q
			fmt.Fprintf(logw, "round %d/%d: freezing %s under %s\n", round, o.rounds, s.side[1].Name, q.name)
			a, rec, err := s.frozenReplica(ctx, o, q)
			if err != nil {
				return nil, err
			}
			frozen.answers[c] = append(frozen.answers[c], a)
			recovered.answers[c] = append(recovered.answers[c], rec)
		}

		fmt.Fprintf(logw, "round %d/%d: blackhole endpoint\n", round, o.rounds)
		// These queriers use the sidecar that was frozen too: start from both replicas seen.
		for _, q := range []*querier{s.tqBH, s.vqBH} {
			if err := s.waitComplete(ctx, q, 2*time.Minute); err != nil {
				return nil, err
			}
		}
		q := url.Values{"query": {"count(up)"}}
		hole.answers[colThanos] = append(hole.answers[colThanos], call(ctx, o.maxWait, http.MethodGet, s.tqBH.url, "/api/v1/query", q))
		hole.answers[colVigil] = append(hole.answers[colVigil], call(ctx, o.maxWait, http.MethodGet, s.vqBH.url, "/api/v1/query", q))
	}
	res.notes = append(res.notes,
		fmt.Sprintf("the blackhole %s accepted %d connections; querier ready after start: %s %s, %s %s, %s %s, %s %s",
			s.hole.Addr, s.hole.Accepted(), s.vq.name, s.vq.ready.Round(time.Millisecond), s.tq.name, s.tq.ready.Round(time.Millisecond),
			s.vqBH.name, s.vqBH.ready.Round(time.Millisecond), s.tqBH.name, s.tqBH.ready.Round(time.Millisecond)))

	fmt.Fprintln(logw, "malformed requests")
	res.bad = badRequests(time.Now())
	for c := range nCols {
		for _, b := range res.bad {
			res.badAns[c] = append(res.badAns[c], call(ctx, 30*time.Second, b.method, bases[c], b.path, b.params))
		}
	}
	return res, ctx.Err()
}

// frozenReplica waits until both queriers see both sidecars, freezes r1's sidecar, sends
// count(up) to q, thaws the sidecar as soon as q answered (or --freeze-hold after the
// freeze, if later), and returns the answer and how long after SIGCONT q saw both
// replicas again (Took; Error if not within 2 minutes).
func (s *stack) frozenReplica(ctx context.Context, o options, q *querier) (ans, rec answer, err error) {
	for _, q := range []*querier{s.tq, s.vq} {
		if err := s.waitComplete(ctx, q, 2*time.Minute); err != nil {
			return ans, rec, err
		}
	}
	if err := s.side[1].Freeze(ctx); err != nil {
		return ans, rec, err
	}
	frozen := time.Now()
	ans = call(ctx, o.maxWait, http.MethodGet, q.url, "/api/v1/query", url.Values{"query": {"count(up)"}})
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(frozen.Add(o.freezeHold))):
	}
	if err := s.side[1].Thaw(); err != nil {
		return ans, rec, err
	}
	thawed := time.Now()
	for {
		err := healthy(ctx, q.url, q.endpoints...)
		if err == nil {
			err = expectValue(ctx, q.url, url.Values{"query": {"count(up)"}, "dedup": {"false"}}, 2*targets)
		}
		rec.Took = time.Since(thawed)
		if err == nil || ctx.Err() != nil || rec.Took > 2*time.Minute {
			if err != nil {
				rec.Error = err.Error()
			}
			return ans, rec, ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkInterop records whether Thanos's querier accepts Vigil's sidecars and Vigil's
// querier a Thanos sidecar: the endpoint list, and queries answered through them.
func checkInterop(ctx context.Context, s *stack) []string {
	var out []string
	for _, q := range []*querier{s.tq, s.vqInterop} {
		if err := s.waitComplete(ctx, q, 2*time.Minute); err != nil {
			out = append(out, fmt.Sprintf("%s never saw both replicas again: %v", q.name, err))
		}
	}
	at := strconv.FormatInt(time.Now().Add(-5*time.Second).Unix(), 10)
	// Same instant, same selector: every series of one replica, directly and through the
	// querier with dedup=false (which keeps the replica label).
	compare := func(q *querier, replica int) string {
		direct := call(ctx, time.Minute, http.MethodGet, s.promURL[replica], "/api/v1/query",
			url.Values{"query": {`count({__name__=~".+"})`}, "time": {at}})
		via := call(ctx, time.Minute, http.MethodGet, q.url, "/api/v1/query",
			url.Values{"query": {`count({__name__=~".+",replica="` + replicas[replica] + `"})`}, "time": {at}, "dedup": {"false"}})
		verdict := "equal"
		if !direct.HasValue || !via.HasValue || direct.Value != via.Value {
			verdict = "DIFFERENT"
		}
		return fmt.Sprintf("count of every series of %s at one instant: Prometheus %s directly %s, through %s %s (HTTP %d, %d warnings): %s",
			replicas[replica], replicas[replica], fmtValue(direct), q.name, fmtValue(via), via.Code, len(via.Warnings), verdict)
	}
	upCounts := func(q *querier) string {
		d := call(ctx, time.Minute, http.MethodGet, q.url, "/api/v1/query", url.Values{"query": {"count(up)"}})
		nd := call(ctx, time.Minute, http.MethodGet, q.url, "/api/v1/query", url.Values{"query": {"count(up)"}, "dedup": {"false"}})
		return fmt.Sprintf("%s: count(up) = %s deduplicated, %s with dedup=false (want %d and %d); warnings %d/%d",
			q.name, fmtValue(d), fmtValue(nd), targets, 2*targets, len(d.Warnings), len(nd.Warnings))
	}
	listing := func(q *querier, addrs ...string) string {
		all, err := stores(ctx, q.url)
		if err != nil {
			return fmt.Sprintf("%s /api/v1/stores: %v", q.name, err)
		}
		line := q.name + " /api/v1/stores:"
		for _, a := range addrs {
			e, typ, ok := findStore(all, a)
			switch {
			case !ok:
				line += fmt.Sprintf(" %s NOT LISTED;", a)
			case e.LastError != nil && *e.LastError != "":
				line += fmt.Sprintf(" %s type %q lastError %q;", a, typ, *e.LastError)
			default:
				line += fmt.Sprintf(" %s type %q healthy, labelSets %v, minTime %d;", a, typ, e.LabelSets, e.MinTime)
			}
		}
		return line
	}
	out = append(out,
		"Thanos querier over the two Vigil sidecars:",
		"  "+listing(s.tq, s.sideGRPC[:]...),
		"  "+upCounts(s.tq),
		"  "+compare(s.tq, 1),
		"Vigil querier over a Thanos sidecar (beside r0) and the Vigil sidecar of r1:",
		"  "+listing(s.vqInterop, s.thGRPC, s.sideGRPC[1]),
		"  "+upCounts(s.vqInterop),
		"  "+compare(s.vqInterop, 0),
	)
	return out
}

func fmtValue(a answer) string {
	if !a.HasValue {
		if a.Code == 0 {
			return "(" + a.Error + ")"
		}
		return fmt.Sprintf("(HTTP %d %s)", a.Code, a.ErrorType)
	}
	return strconv.FormatFloat(a.Value, 'f', -1, 64)
}
