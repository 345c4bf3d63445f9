package receive

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// v2Stats counts what a remote-write 2.0 request carried, for the response headers that
// tell a 2.0 sender what was written.
type v2Stats struct{ samples, histograms, exemplars int }

// writeHeaders sets the 2.0 "written" headers: everything on success, nothing on
// failure (the receiver writes a request whole or reports what it refused).
func (s v2Stats) writeHeaders(w http.ResponseWriter, ok bool) {
	if !ok {
		s = v2Stats{}
	}
	h := w.Header()
	h.Set("X-Prometheus-Remote-Write-Samples-Written", strconv.Itoa(s.samples))
	h.Set("X-Prometheus-Remote-Write-Histograms-Written", strconv.Itoa(s.histograms))
	h.Set("X-Prometheus-Remote-Write-Exemplars-Written", strconv.Itoa(s.exemplars))
}

// symbolPairs resolves 2.0 label references (name, value, name, value...) against the
// request's symbol table.
func symbolPairs(refs []uint32, symbols []string, dst []prompb.Label) ([]prompb.Label, error) {
	if len(refs)%2 != 0 {
		return nil, fmt.Errorf("odd number of label references (%d)", len(refs))
	}
	for i := 0; i < len(refs); i += 2 {
		n, v := refs[i], refs[i+1]
		if int(n) >= len(symbols) || int(v) >= len(symbols) {
			return nil, fmt.Errorf("label reference out of the symbol table (%d symbols)", len(symbols))
		}
		dst = append(dst, prompb.Label{Name: symbols[n], Value: symbols[v]})
	}
	return dst, nil
}

// fromV2 converts one 2.0 series into its 1.0 form. Metadata and start timestamps have
// no place in the 1.0 form and in the blocks, and are dropped.
func fromV2(ts *writev2.TimeSeries, symbols []string) (prompb.TimeSeries, error) {
	ls, err := symbolPairs(ts.LabelsRefs, symbols, make([]prompb.Label, 0, len(ts.LabelsRefs)/2))
	if err != nil {
		return prompb.TimeSeries{}, err
	}
	out := prompb.TimeSeries{Labels: ls}
	if len(ts.Samples) > 0 {
		out.Samples = make([]prompb.Sample, len(ts.Samples))
		for i, s := range ts.Samples {
			out.Samples[i] = prompb.Sample{Value: s.Value, Timestamp: s.Timestamp}
		}
	}
	for _, h := range ts.Histograms {
		if h.IsFloatHistogram() {
			out.Histograms = append(out.Histograms, prompb.FromFloatHistogram(h.Timestamp, h.ToFloatHistogram()))
		} else {
			out.Histograms = append(out.Histograms, prompb.FromIntHistogram(h.Timestamp, h.ToIntHistogram()))
		}
	}
	for _, e := range ts.Exemplars {
		els, err := symbolPairs(e.LabelsRefs, symbols, nil)
		if err != nil {
			return prompb.TimeSeries{}, fmt.Errorf("exemplar: %w", err)
		}
		out.Exemplars = append(out.Exemplars, prompb.Exemplar{Labels: els, Value: e.Value, Timestamp: e.Timestamp})
	}
	return out, nil
}
