package receive

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
)

// Writer appends remote-write series to the tenants' TSDBs.
type Writer struct {
	tenants *Tenants
	limits  *Limits
}

// NewWriter returns a writer over tenants; limits may be nil (no head-series limit).
func NewWriter(tenants *Tenants, limits *Limits) *Writer {
	return &Writer{tenants: tenants, limits: limits}
}

// appendStats counts what one Write rejected, by reason.
type appendStats struct {
	conflict, badLabels, exemplars int
	firstConflict, firstBad        error
}

// Write appends series to the tenant's TSDB in one transaction. A sample the TSDB
// rejects (out of order, duplicate, too old) or a series with invalid labels does not
// stop the others: they are stored and the error names what was refused, so that the
// client does not resend what is already stored.
func (w *Writer) Write(ctx context.Context, tenantName string, series []prompb.TimeSeries) error {
	tn, err := w.tenants.Get(tenantName)
	if err != nil {
		return err
	}
	if err := tn.acquire(); err != nil {
		return err
	}
	defer tn.mu.RUnlock()
	if limit := w.limits.HeadSeries(tenantName); limit > 0 && tn.db.Head().NumSeries() >= limit {
		return writeErr(CauseTooMany, "tenant %q has %d head series, at its limit of %d; retry later", tenantName, tn.db.Head().NumSeries(), limit)
	}
	app := tn.db.Appender(ctx)
	var st appendStats
	var b labels.ScratchBuilder
	keys := make([]uint64, len(series))
	var buf []byte
	for i := range series {
		keys[i], buf = hashWire(series[i].Labels, buf)
	}
	hits := make([]*cachedSeries, len(series))
	tn.refs.lookup(series, keys, hits)
	added := make([]*cachedSeries, len(series))
	for i := range series {
		added[i], err = appendSeries(app, &b, &series[i], hits[i], &st)
		if err != nil {
			_ = app.Rollback()
			return fmt.Errorf("append to tenant %q: %w", tenantName, err)
		}
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("commit to tenant %q: %w", tenantName, err)
	}
	tn.refs.add(keys, added)
	tn.lastWrite.Store(time.Now().UnixMilli())
	switch {
	case st.badLabels > 0:
		return &WriteError{Cause: CauseBadRequest, Err: fmt.Errorf("%d series or histograms with invalid content not stored, e.g.: %w", st.badLabels, st.firstBad)}
	case st.conflict > 0:
		return &WriteError{Cause: CauseConflict, Err: fmt.Errorf("%d samples not stored, e.g.: %w", st.conflict, st.firstConflict)}
	}
	return nil
}

// appendSeries appends one series' samples, histograms and exemplars. With hit, the
// series is known: its labels were checked and built before. Rejections are counted in
// st; only an error the TSDB cannot recover from is returned. It returns the cache entry
// of a series seen for the first time.
func appendSeries(app storage.Appender, b *labels.ScratchBuilder, ts *prompb.TimeSeries, hit *cachedSeries, st *appendStats) (*cachedSeries, error) {
	var lset labels.Labels
	var ref storage.SeriesRef
	if hit != nil {
		lset, ref = hit.lset, hit.ref
	} else {
		if err := validateLabels(ts.Labels); err != nil {
			st.badLabels++
			if st.firstBad == nil {
				st.firstBad = err
			}
			return nil, nil
		}
		lset = prompbLabels(b, ts.Labels) // a copy: ts may alias the request body
	}
	var err error
	reject := func(t int64) error {
		if isConflict(err) {
			st.conflict++
			if st.firstConflict == nil {
				st.firstConflict = fmt.Errorf("%w for series %s at %d", err, lset.String(), t)
			}
			return nil
		}
		return err
	}
	for _, s := range ts.Samples {
		r, aerr := app.Append(ref, lset, s.Timestamp, s.Value)
		if err = aerr; err != nil {
			if err = reject(s.Timestamp); err != nil {
				return nil, err
			}
			continue
		}
		ref = r
	}
	for i := range ts.Histograms {
		h := &ts.Histograms[i]
		var r storage.SeriesRef
		if h.IsFloatHistogram() {
			r, err = app.AppendHistogram(ref, lset, h.Timestamp, nil, h.ToFloatHistogram())
		} else {
			r, err = app.AppendHistogram(ref, lset, h.Timestamp, h.ToIntHistogram(), nil)
		}
		if err != nil {
			if !isConflict(err) {
				// The head refuses a histogram only for what it carries (inconsistent
				// counts, spans, schema): bad input, not a failed write.
				st.badLabels++
				if st.firstBad == nil {
					st.firstBad = fmt.Errorf("invalid native histogram for series %s at %d: %w", lset.String(), h.Timestamp, err)
				}
				continue
			}
			if err = reject(h.Timestamp); err != nil {
				return nil, err
			}
			continue
		}
		ref = r
	}
	if ref == 0 {
		return nil, nil // no sample stored: exemplars need the series
	}
	appendExemplars(app, b, ref, lset, ts.Exemplars, st)
	if hit != nil {
		if hit.ref != ref { // the head dropped the series and made it anew
			return &cachedSeries{ref: ref, lset: lset}, nil
		}
		return nil, nil
	}
	return &cachedSeries{ref: ref, lset: lset}, nil
}

// appendExemplars stores exemplars best effort, as Prometheus does: one that is out of
// order, a duplicate or not stored at all does not fail the write.
func appendExemplars(app storage.Appender, b *labels.ScratchBuilder, ref storage.SeriesRef, lset labels.Labels, exs []prompb.Exemplar, st *appendStats) {
	for _, e := range exs {
		ex := exemplar.Exemplar{Labels: prompbLabels(b, e.Labels), Value: e.Value, Ts: e.Timestamp, HasTs: true}
		if _, err := app.AppendExemplar(ref, lset, ex); err != nil && !errors.Is(err, storage.ErrOutOfOrderExemplar) &&
			!errors.Is(err, storage.ErrDuplicateExemplar) && !errors.Is(err, storage.ErrExemplarsDisabled) {
			st.exemplars++
		}
	}
}

func prompbLabels(b *labels.ScratchBuilder, ls []prompb.Label) labels.Labels {
	b.Reset()
	for _, l := range ls {
		b.Add(l.Name, l.Value)
	}
	return b.Labels()
}

// validateLabels checks a series' labels as received: not empty, names and values
// non-empty, names valid and strictly ascending (sorted, no duplicates), as the TSDB
// needs them.
func validateLabels(ls []prompb.Label) error {
	if len(ls) == 0 {
		return errors.New("series without labels")
	}
	for i, l := range ls {
		if l.Name == "" || l.Value == "" {
			return fmt.Errorf("empty label name or value in %s", labelsString(ls))
		}
		if !model.LabelName(l.Name).IsValid() || !utf8.ValidString(l.Value) {
			return fmt.Errorf("invalid UTF-8 in label %q in %s", l.Name, labelsString(ls))
		}
		if i > 0 && ls[i-1].Name >= l.Name {
			if ls[i-1].Name == l.Name {
				return fmt.Errorf("duplicate label name %q in %s", l.Name, labelsString(ls))
			}
			return fmt.Errorf("labels out of order in %s", labelsString(ls))
		}
	}
	return nil
}

// labelsString renders labels as received, for error messages, at most 512 bytes.
func labelsString(ls []prompb.Label) string {
	var sb strings.Builder
	sb.WriteByte('{')
	for i, l := range ls {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "%s=%q", l.Name, l.Value)
		if sb.Len() > 512 {
			sb.WriteString(", ...")
			break
		}
	}
	sb.WriteByte('}')
	return sb.String()
}
