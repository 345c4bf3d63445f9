package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// fmtTook renders a latency: ms with one decimal below a second, s with two above.
func fmtTook(d time.Duration) string {
	if d < time.Second {
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + " s"
}

// status renders an answer's outcome: "200", "503 `timeout`", "no answer (...)".
func status(a answer) string {
	switch {
	case a.Code == 0:
		return "no answer"
	case a.ErrorType != "":
		return fmt.Sprintf("%d `%s`", a.Code, a.ErrorType)
	case a.Status == "" && a.Code != 200:
		return fmt.Sprintf("%d (not JSON)", a.Code)
	}
	return strconv.Itoa(a.Code)
}

// durSpan renders the range of latencies: "1.2 ms", "1.2–3.4 ms", "0.3 ms – 1.20 s".
func durSpan(ds []time.Duration) string {
	lo, hi := fmtTook(slices.Min(ds)), fmtTook(slices.Max(ds))
	switch {
	case lo == hi:
		return lo
	case lo[len(lo)-2:] == hi[len(hi)-2:]: // same unit
		return strings.Fields(lo)[0] + "–" + hi
	}
	return lo + " – " + hi
}

func durations(as []answer) []time.Duration {
	var ds []time.Duration
	for _, a := range as {
		ds = append(ds, a.Took)
	}
	return ds
}

// span renders the range of ints: "3" or "2–5".
func span(xs []int) string {
	lo, hi := slices.Min(xs), slices.Max(xs)
	if lo == hi {
		return strconv.Itoa(lo)
	}
	return fmt.Sprintf("%d–%d", lo, hi)
}

// cell summarises one column of one row over every round.
func cell(r *row, c int) string {
	as := r.answers[c]
	if r.skip[c] != "" {
		return r.skip[c]
	}
	if len(as) == 0 {
		return "not run"
	}
	if r.durOnly {
		var took []time.Duration
		failed := 0
		for _, a := range as {
			if a.Error != "" {
				failed++
				continue
			}
			took = append(took, a.Took)
		}
		if len(took) == 0 {
			return fmt.Sprintf("not within %s (%d of %d)", fmtTook(slices.Max(durations(as))), failed, len(as))
		}
		out := durSpan(took)
		if failed > 0 {
			out += fmt.Sprintf("; %d of %d never", failed, len(as))
		}
		return out
	}
	var statuses []string
	count := map[string]int{}
	var took []time.Duration
	var sizes, warns []int
	var values []string
	for _, a := range as {
		st := status(a)
		if count[st] == 0 {
			statuses = append(statuses, st)
		}
		count[st]++
		took = append(took, a.Took)
		if a.Code == 200 {
			sizes = append(sizes, a.Series)
			warns = append(warns, len(a.Warnings))
			v := fmtValue(a)
			if !slices.Contains(values, v) {
				values = append(values, v)
			}
		}
	}
	var parts []string
	for _, st := range statuses {
		if len(statuses) > 1 {
			st = fmt.Sprintf("%s ×%d", st, count[st])
		}
		parts = append(parts, st)
	}
	out := strings.Join(parts, ", ")
	if len(sizes) > 0 {
		if r.value {
			out += ", count(up) = " + strings.Join(values, "/")
		} else {
			out += ", " + span(sizes) + " series"
		}
		out += ", " + span(warns) + " warning(s)"
	}
	return out + ", " + durSpan(took)
}

func badSummary(as []answer) string {
	clear := 0
	codes := map[int]int{}
	for _, a := range as {
		if a.clear4xx() {
			clear++
		}
		codes[a.Code]++
	}
	var cs []int
	for c := range codes {
		cs = append(cs, c)
	}
	slices.Sort(cs)
	var parts []string
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%d ×%d", c, codes[c]))
	}
	return fmt.Sprintf("%d/%d clear 4xx (%s)", clear, len(as), strings.Join(parts, ", "))
}

// printReport writes the markdown tables, the details and the interop findings.
func printReport(w io.Writer, o options, res *results) {
	fmt.Fprintf(w, "\nheavy selector: %s (%d generated series + Prometheus's own, 2 replicas); %d round(s); each cell: status `errorType`, result size, warnings, latency (min–max over rounds)\n\n",
		res.heavyArg, o.series, o.rounds)
	if o.freezeHold > 0 {
		fmt.Fprintf(w, "case 3: the sidecar stayed frozen for at least --freeze-hold=%s\n\n", o.freezeHold)
	}
	fmt.Fprintf(w, "| Case | %s | %s | %s |\n|---|---|---|---|\n", colNames[0], colNames[1], colNames[2])
	for _, r := range res.rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", r.name, cell(r, colProm), cell(r, colThanos), cell(r, colVigil))
	}
	fmt.Fprintf(w, "| 5. %d malformed query-API requests | %s | %s | %s |\n", len(res.bad),
		badSummary(res.badAns[colProm]), badSummary(res.badAns[colThanos]), badSummary(res.badAns[colVigil]))

	fmt.Fprintln(w, "\nerrors and warnings (first round that had them, cut at 200 characters):")
	for _, r := range res.rows {
		for c := range nCols {
			seen := map[string]bool{}
			for _, a := range r.answers[c] {
				var texts []string
				if r.durOnly {
					if a.Error != "" {
						texts = append(texts, "never: "+a.Error)
					}
				} else if a.Code != 200 {
					texts = append(texts, "error: "+a.Error+a.Body)
				}
				for _, wt := range a.Warnings {
					texts = append(texts, "warning: "+wt)
				}
				for _, t := range texts {
					if t = fmt.Sprintf("%.200s", t); !seen[t] {
						seen[t] = true
						fmt.Fprintf(w, "  %s | %s | %s\n", strings.TrimSuffix(strings.Fields(r.name)[0], "."), colNames[c], t)
					}
				}
			}
		}
	}
	for _, n := range res.notes {
		fmt.Fprintln(w, "  note: "+n)
	}

	fmt.Fprintf(w, "\nthe %d malformed requests (status `errorType`; * = not a clear 4xx, i.e. not 400 `bad_data` with a message):\n\n", len(res.bad))
	fmt.Fprintf(w, "| # | request | %s | %s | %s |\n|---|---|---|---|---|\n", colNames[0], colNames[1], colNames[2])
	for i, b := range res.bad {
		q := b.params.Encode()
		if q != "" {
			q = "?" + q
		}
		fmt.Fprintf(w, "| %d | %s: `%s %s%s` |", i+1, b.name, b.method, b.path, strings.ReplaceAll(q, "|", "%7C"))
		for c := range nCols {
			a := res.badAns[c][i]
			mark := ""
			if !a.clear4xx() {
				mark = " *"
			}
			fmt.Fprintf(w, " %s%s |", status(a), mark)
		}
		fmt.Fprintln(w)
	}

	for i, b := range res.bad {
		for c := range nCols {
			if a := res.badAns[c][i]; a.Code != 400 {
				fmt.Fprintf(w, "  request %d (%s), %s: %s: %.200s\n", i+1, b.name, colNames[c], status(a), a.Error+a.Body)
			}
		}
	}

	fmt.Fprintln(w, "\ninterop:")
	for _, l := range res.interop {
		fmt.Fprintln(w, "  "+l)
	}
}

// vigilVerdict compares Vigil's column with what issue 15 asks for and returns the
// deviations (none when every row is as expected).
func vigilVerdict(res *results, hole string) []string {
	var bad []string
	for _, r := range res.rows {
		if r.durOnly {
			continue // recovery time: issue 15 sets no bound
		}
		for i, a := range r.answers[colVigil] {
			id, where := r.name[:1], fmt.Sprintf("round %d", i+1)
			switch id {
			case "1", "2":
				if a.Code != 503 || a.ErrorType != "timeout" {
					bad = append(bad, fmt.Sprintf("row %s, %s: %s (%s), want 503 timeout", id, where, status(a), a.Error))
				}
			case "3":
				if a.Code != 200 || a.Value != targets || a.Took >= 500*time.Millisecond {
					bad = append(bad, fmt.Sprintf("row 3, %s: %s count(up)=%s in %s, want 200, %d, under 0.5 s", where, status(a), fmtValue(a), fmtTook(a.Took), targets))
				}
			case "4":
				warned := slices.ContainsFunc(a.Warnings, func(w string) bool { return strings.Contains(w, hole) })
				if a.Code != 200 || a.Value != targets || a.Took >= time.Second || !warned {
					bad = append(bad, fmt.Sprintf("row 4, %s: %s count(up)=%s in %s, warnings %q; want 200, %d, at once, a warning naming %s",
						where, status(a), fmtValue(a), fmtTook(a.Took), a.Warnings, targets, hole))
				}
			}
		}
	}
	for i, a := range res.badAns[colVigil] {
		if !a.clear4xx() {
			bad = append(bad, fmt.Sprintf("row 5, request %d (%s): %s %s%s, want a clear 4xx", i+1, res.bad[i].name, status(a), a.Error, a.Body))
		}
	}
	return bad
}
