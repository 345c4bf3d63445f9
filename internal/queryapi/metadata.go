package queryapi

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/vigilhq/vigil/internal/query"
)

// checkContextEvery is how many series /series reads between context checks.
const checkContextEvery = 128

// metadataRange holds the common parameters of series, labels and label values.
type metadataRange struct {
	limit    int
	mint     int64
	maxt     int64
	matchers [][]*labels.Matcher
	opts     query.Options
}

// parseMetadata reads limit, start, end, match[] and the Thanos parameters.
// Metadata reads no samples, so every resolution may be used unless
// max_source_resolution says otherwise.
func (a *API) parseMetadata(r *http.Request, wrapMatchErr bool) (metadataRange, *apiError) {
	var m metadataRange
	var err error
	if m.limit, err = parseLimit(r.FormValue("limit")); err != nil {
		return m, invalidParam(err, "limit")
	}
	defStart, defEnd := minTime, maxTime
	if d := a.cfg.MetadataDefaultRange; d > 0 && r.FormValue("start") == "" {
		// --query.metadata.default-time-range: without start, the last d up to end (now
		// by default) rather than all time.
		defEnd = a.now()
	}
	end, err := parseTimeParam(r, "end", defEnd)
	if err != nil {
		return m, invalidParam(err, "end")
	}
	if d := a.cfg.MetadataDefaultRange; d > 0 {
		defStart = end.Add(-d)
	}
	start, err := parseTimeParam(r, "start", defStart)
	if err != nil {
		return m, invalidParam(err, "start")
	}
	m.mint, m.maxt = timestamp.FromTime(start), timestamp.FromTime(end)
	if m.matchers, err = a.parseMatchers(r.Form["match[]"]); err != nil {
		if wrapMatchErr {
			return m, invalidParam(err, "match[]")
		}
		return m, &apiError{errorBadData, err}
	}
	var apiErr *apiError
	m.opts, apiErr = a.parseOptions(r, math.MaxInt64, math.MaxInt64)
	return m, apiErr
}

// series serves /api/v1/series: the label sets of the series matching any match[].
func (a *API) series(r *http.Request) result {
	if len(r.Form["match[]"]) == 0 {
		return errResult(&apiError{errorBadData, fmt.Errorf("no match[] parameter provided")})
	}
	m, apiErr := a.parseMetadata(r, true)
	if apiErr != nil {
		return errResult(apiErr)
	}
	ctx, cancel, apiErr := a.withTimeout(r)
	if apiErr != nil {
		return errResult(apiErr)
	}
	defer cancel()
	q, err := a.cfg.Queryable(m.opts).Querier(m.mint, m.maxt)
	if err != nil {
		return errResult(toAPIError(err))
	}
	return closeAfter(a.selectSeries(ctx, q, m), q)
}

// selectSeries reads the label sets of the series matching m.
func (*API) selectSeries(ctx context.Context, q storage.Querier, m metadataRange) result {
	hints := &storage.SelectHints{
		Start: m.mint,
		End:   m.maxt,
		Func:  "series", // no such function: tells storage that no samples are needed
		Limit: hintLimit(m.limit),
	}
	var set storage.SeriesSet
	if len(m.matchers) == 1 {
		set = q.Select(ctx, false, hints, m.matchers[0]...)
	} else {
		// Merging (and de-duplicating) needs sorted sets.
		sets := make([]storage.SeriesSet, 0, len(m.matchers))
		for _, ms := range m.matchers {
			sets = append(sets, q.Select(ctx, true, hints, ms...))
		}
		set = storage.NewMergeSeriesSet(sets, 0, storage.ChainedSeriesMerge)
	}

	var (
		metrics   = []labels.Labels{}
		warnings  annotations.Annotations
		truncated bool
	)
	for i := 1; set.Next(); i++ {
		if i%checkContextEvery == 0 {
			if err := ctx.Err(); err != nil {
				return errResult(toAPIError(err))
			}
		}
		if m.limit > 0 && len(metrics) == m.limit {
			truncated = true
			break
		}
		metrics = append(metrics, set.At().Labels())
	}
	if !truncated {
		if err := cmp.Or(set.Err(), ctx.Err()); err != nil {
			return errResult(toAPIError(err))
		}
	}
	mergeWarnings(&warnings, set.Warnings())
	if truncated {
		warnings.Add(errTruncated)
	}
	return result{
		data: func(j *jsonWriter) {
			j.buf = append(j.buf, '[')
			for i, ls := range metrics {
				if i > 0 {
					j.buf = append(j.buf, ',')
				}
				j.buf = appendLabels(j.buf, ls)
				j.maybeFlush()
			}
			j.buf = append(j.buf, ']')
		},
		warnings: warnings,
	}
}

// labelNames serves /api/v1/labels: the label names, of the series matching any
// match[] when given.
func (a *API) labelNames(r *http.Request) result {
	m, apiErr := a.parseMetadata(r, false)
	if apiErr != nil {
		return errResult(apiErr)
	}
	return a.labelQuery(r, m, func(ctx context.Context, q storage.Querier, hints *storage.LabelHints, ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelNames(ctx, hints, ms...)
	})
}

// labelValues serves /api/v1/label/{name}/values. Names in the U__ escaping scheme
// are unescaped first.
func (a *API) labelValues(r *http.Request) result {
	name := r.PathValue("name")
	if strings.HasPrefix(name, "U__") {
		name = model.UnescapeName(name, model.ValueEncodingEscaping)
	}
	if !model.UTF8Validation.IsValidLabelName(name) {
		return errResult(&apiError{errorBadData, fmt.Errorf("invalid label name: %q", name)})
	}
	m, apiErr := a.parseMetadata(r, false)
	if apiErr != nil {
		return errResult(apiErr)
	}
	return a.labelQuery(r, m, func(ctx context.Context, q storage.Querier, hints *storage.LabelHints, ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelValues(ctx, name, hints, ms...)
	})
}

// labelCall is one label names or values lookup.
type labelCall func(context.Context, storage.Querier, *storage.LabelHints, []*labels.Matcher) ([]string, annotations.Annotations, error)

// labelQuery runs a label names or values lookup once per matcher set (or once
// without matchers), merges, sorts and de-duplicates the results and applies limit.
func (a *API) labelQuery(r *http.Request, m metadataRange, call labelCall) result {
	ctx, cancel, apiErr := a.withTimeout(r)
	if apiErr != nil {
		return errResult(apiErr)
	}
	defer cancel()

	q, err := a.cfg.Queryable(m.opts).Querier(m.mint, m.maxt)
	if err != nil {
		return errResult(toAPIError(err))
	}
	return closeAfter(lookupLabels(ctx, q, m, call), q)
}

// closeAfter closes q once the response has been written (what the querier returned
// may live in memory it owns), or at once when res is an error.
func closeAfter(res result, q storage.Querier) result {
	if res.err != nil {
		_ = q.Close()
		return res
	}
	res.finalizer = func() { _ = q.Close() }
	return res
}

// lookupLabels performs the calls of labelQuery.
func lookupLabels(ctx context.Context, q storage.Querier, m metadataRange, call labelCall) result {
	hints := &storage.LabelHints{Limit: hintLimit(m.limit)}
	var (
		vals     []string
		warnings annotations.Annotations
		err      error
	)
	if len(m.matchers) <= 1 {
		var ms []*labels.Matcher
		if len(m.matchers) == 1 {
			ms = m.matchers[0]
		}
		vals, warnings, err = call(ctx, q, hints, ms)
		if err != nil {
			return errResult(toAPIError(err))
		}
		vals = slices.Clone(vals) // sorted and compacted below; the querier owns vals
		if !slices.IsSorted(vals) {
			slices.Sort(vals)
		}
	} else {
		for _, ms := range m.matchers {
			v, w, err := call(ctx, q, hints, ms)
			if err != nil {
				return errResult(toAPIError(err))
			}
			mergeWarnings(&warnings, w)
			vals = append(vals, v...)
		}
		slices.Sort(vals)
	}
	if err := ctx.Err(); err != nil { // endpoints cut short by the deadline: not an answer
		return errResult(toAPIError(err))
	}
	vals = slices.Compact(vals)
	if vals == nil {
		vals = []string{}
	}
	if m.limit > 0 && len(vals) > m.limit {
		vals = vals[:m.limit]
		warnings.Add(errTruncated)
	}
	return result{
		data: func(j *jsonWriter) {
			j.buf = appendStrings(j.buf, vals)
		},
		warnings: warnings,
	}
}

// buildInfo serves /api/v1/status/buildinfo.
func (a *API) buildInfo(*http.Request) result {
	bi := a.cfg.BuildInfo
	return result{data: func(j *jsonWriter) {
		b := j.buf
		b = append(b, `{"version":`...)
		b = appendString(b, bi.Version)
		b = append(b, `,"revision":`...)
		b = appendString(b, bi.Revision)
		b = append(b, `,"branch":`...)
		b = appendString(b, bi.Branch)
		b = append(b, `,"buildUser":`...)
		b = appendString(b, bi.BuildUser)
		b = append(b, `,"buildDate":`...)
		b = appendString(b, bi.BuildDate)
		b = append(b, `,"goVersion":`...)
		b = appendString(b, bi.GoVersion)
		j.buf = append(b, '}')
	}}
}

// stores serves Thanos's /api/v1/stores: an object keyed by component type, each
// holding the status of the endpoints of that type.
func (a *API) stores(*http.Request) result {
	var statuses map[string][]query.StoreStatus
	if a.cfg.Stores != nil {
		statuses = a.cfg.Stores.Stores()
	}
	if statuses == nil {
		statuses = map[string][]query.StoreStatus{}
	}
	b, err := json.Marshal(statuses)
	if err != nil {
		return errResult(&apiError{errorInternal, fmt.Errorf("encode stores: %w", err)})
	}
	return result{data: func(j *jsonWriter) { j.buf = append(j.buf, b...) }}
}
