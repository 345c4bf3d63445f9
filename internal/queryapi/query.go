package queryapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/stats"

	"github.com/vigilhq/vigil/internal/query"
)

// errTruncated is the warning added when limit cuts a result short.
var errTruncated = errors.New("results truncated due to limit")

// query serves /api/v1/query: query, time (default now), timeout, limit, stats and
// the Thanos parameters.
func (a *API) query(r *http.Request) result {
	limit, err := parseLimit(r.FormValue("limit"))
	if err != nil {
		return errResult(invalidParam(err, "limit"))
	}
	ts, err := parseTimeParam(r, "time", a.now())
	if err != nil {
		return errResult(invalidParam(err, "time"))
	}
	// Instant queries read raw data unless a resolution is requested ("auto" is 0 too,
	// Thanos's --query.instant.default.max_source_resolution).
	opts, apiErr := a.parseOptions(r, 0, 0)
	if apiErr != nil {
		return errResult(apiErr)
	}
	return a.execute(r, limit, opts.MaxSourceResolution, func(ctx context.Context, lookback time.Duration) (promql.Query, error) {
		return a.cfg.Engine.NewInstantQuery(ctx, a.cfg.Queryable(opts), a.queryOpts(r, lookback), a.queryText(r, opts), ts)
	})
}

// queryRange serves /api/v1/query_range: query, start, end, step (default
// max(range/250, DefaultStep)), timeout, limit, stats and the Thanos parameters.
func (a *API) queryRange(r *http.Request) result {
	limit, err := parseLimit(r.FormValue("limit"))
	if err != nil {
		return errResult(invalidParam(err, "limit"))
	}
	start, err := parseTime(r.FormValue("start"))
	if err != nil {
		return errResult(invalidParam(err, "start"))
	}
	end, err := parseTime(r.FormValue("end"))
	if err != nil {
		return errResult(invalidParam(err, "end"))
	}
	if end.Before(start) {
		return errResult(invalidParam(errors.New("end timestamp must not be before start time"), "end"))
	}
	var step time.Duration
	if v := r.FormValue("step"); v != "" {
		if step, err = parseDuration(v); err != nil {
			return errResult(invalidParam(err, "step"))
		}
	} else {
		step = a.defaultStep(start, end)
	}
	if step <= 0 {
		return errResult(invalidParam(errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer"), "step"))
	}
	if end.Sub(start)/step > maxPointsPerSeries {
		return errResult(&apiError{errorBadData, errors.New("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")})
	}
	// With max_source_resolution=auto, fit at least five samples in a step;
	// --query.auto-downsampling makes that the default.
	absent := time.Duration(0)
	if a.cfg.AutoDownsampling {
		absent = step / 5
	}
	opts, apiErr := a.parseOptions(r, step/5, absent)
	if apiErr != nil {
		return errResult(apiErr)
	}
	return a.execute(r, limit, opts.MaxSourceResolution, func(ctx context.Context, lookback time.Duration) (promql.Query, error) {
		return a.cfg.Engine.NewRangeQuery(ctx, a.cfg.Queryable(opts), a.queryOpts(r, lookback), a.queryText(r, opts), start, end, step)
	})
}

// queryText is the PromQL the engine runs: the request's, with counting functions
// rewritten when downsampled data may be read (see query.RewriteForDownsampling).
func (a *API) queryText(r *http.Request, opts query.Options) string {
	qs := r.FormValue("query")
	if opts.MaxSourceResolution > 0 {
		return query.RewriteForDownsampling(a.parser, qs)
	}
	return qs
}

// queryOpts are the engine options of a request.
func (*API) queryOpts(r *http.Request, lookback time.Duration) promql.QueryOpts {
	return promql.NewPrometheusQueryOpts(r.FormValue("stats") == "all", lookback, nil)
}

// execute builds a query with build, runs it under the request's timeout and turns the
// outcome into a result.
func (a *API) execute(r *http.Request, limit int, maxSourceResolution int64, build func(context.Context, time.Duration) (promql.Query, error)) result {
	lookback, apiErr := a.lookbackDelta(r, maxSourceResolution)
	if apiErr != nil {
		return errResult(apiErr)
	}
	ctx, cancel, apiErr := a.withTimeout(r)
	if apiErr != nil {
		return errResult(apiErr)
	}
	defer cancel()

	qry, err := build(ctx, lookback)
	if err != nil {
		return errResult(constructionError(err))
	}
	res := qry.Exec(ctx)
	if res.Err == nil {
		// A result assembled after the deadline may lack what the endpoints had not sent
		// yet (partial response turns their failures into warnings): it is a timeout.
		res.Err = ctx.Err()
	}
	if res.Err != nil {
		qry.Close()
		return errResult(toAPIError(res.Err))
	}
	warnings := res.Warnings
	if limit > 0 && truncate(res, limit) {
		warnings.Add(errTruncated)
	}
	statsParam := r.FormValue("stats")
	var qs stats.QueryStats
	if statsParam != "" {
		qs = stats.NewQueryStats(qry.Stats())
	}
	value := res.Value
	return result{
		data: func(j *jsonWriter) {
			j.buf = append(j.buf, `{"resultType":"`...)
			j.buf = append(j.buf, value.Type()...)
			j.buf = append(j.buf, `","result":`...)
			writeValue(j, value)
			if qs != nil {
				if b, err := json.Marshal(qs); err == nil {
					j.buf = append(j.buf, `,"stats":`...)
					j.buf = append(j.buf, b...)
				} else {
					a.logger.Warn("error encoding query stats", "err", err)
				}
			}
			j.buf = append(j.buf, '}')
		},
		warnings:  warnings,
		finalizer: qry.Close,
	}
}

// writeValue writes a PromQL result value.
func writeValue(j *jsonWriter, v parser.Value) {
	switch v := v.(type) {
	case promql.Matrix:
		j.writeMatrix(v)
	case promql.Vector:
		j.writeVector(v)
	case promql.Scalar:
		j.buf = appendScalar(j.buf, v)
	case promql.String:
		j.buf = appendStringResult(j.buf, v)
	default:
		j.buf = append(j.buf, "null"...)
	}
}

// truncate keeps the first limit series of a vector or matrix result and reports
// whether it dropped any.
func truncate(res *promql.Result, limit int) bool {
	switch v := res.Value.(type) {
	case promql.Matrix:
		if len(v) > limit {
			res.Value = v[:limit]
			return true
		}
	case promql.Vector:
		if len(v) > limit {
			res.Value = v[:limit]
			return true
		}
	}
	return false
}

// constructionError classifies an error from building a query: timeouts and
// cancellations (e.g. while waiting for a query slot) keep their type, anything else
// is a bad query.
func constructionError(err error) *apiError {
	var (
		timeout  promql.ErrQueryTimeout
		canceled promql.ErrQueryCanceled
		ceiling  promql.ErrLimitAboveCeiling
	)
	switch {
	case errors.As(err, &ceiling):
		return &apiError{errorBadData, err}
	case errors.As(err, &timeout), errors.As(err, &canceled):
		return toAPIError(err)
	}
	return invalidParam(err, "query")
}

// mergeWarnings adds b's annotations to a.
func mergeWarnings(a *annotations.Annotations, b annotations.Annotations) {
	if len(b) > 0 {
		a.Merge(b)
	}
}
