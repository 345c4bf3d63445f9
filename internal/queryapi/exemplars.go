package queryapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/vigilhq/vigil/internal/exemplarsapi"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/exemplarspb"
)

// queryExemplars serves /api/v1/query_exemplars: the exemplars of the series the
// query's selectors select, from every exemplars endpoint, merged and, with dedup,
// deduplicated on the replica labels (exemplarsapi.Merge). It takes Prometheus's
// query, start and end, and Thanos's dedup, replicaLabels[] and partial_response.
func (a *API) queryExemplars(r *http.Request) result {
	query := r.FormValue("query")
	expr, err := a.parser.ParseExpr(query)
	if err != nil {
		return errResult(invalidParam(err, "query"))
	}
	start, err := parseTimeParam(r, "start", minTime)
	if err != nil {
		return errResult(&apiError{errorBadData, err})
	}
	end, err := parseTimeParam(r, "end", maxTime)
	if err != nil {
		return errResult(&apiError{errorBadData, err})
	}
	if end.Before(start) {
		return errResult(&apiError{errorBadData, errors.New("end timestamp must not be before start timestamp")})
	}
	params, apiErr := a.parseFanoutParams(r)
	if apiErr != nil {
		return errResult(apiErr)
	}
	if len(parser.ExtractSelectors(expr)) == 0 {
		// No series to look for (Prometheus answers 204 No Content).
		return result{data: func(j *jsonWriter) { j.buf = append(j.buf, "[]"...) }}
	}
	var (
		data     []*exemplarspb.ExemplarData
		warnings annotations.Annotations
	)
	if a.cfg.Exemplars != nil {
		req := &exemplarspb.ExemplarsRequest{Query: query, Start: timestamp.FromTime(start), End: timestamp.FromTime(end),
			PartialResponseStrategy: params.strategy}
		data, warnings, apiErr = fetchFanout(a, r, "exemplars", func(ctx context.Context) ([]*exemplarspb.ExemplarData, []string, error) {
			return a.cfg.Exemplars.Exemplars(ctx, req)
		})
		if apiErr != nil {
			return errResult(apiErr)
		}
	}
	merged := exemplarsapi.Merge(data, params.replicaLabels)
	return result{data: func(j *jsonWriter) { writeExemplars(j, merged) }, warnings: warnings}
}

// writeExemplars writes exemplars as Prometheus does:
// [{"seriesLabels":{..},"exemplars":[{"labels":{..},"value":"..","timestamp":..}]}].
func writeExemplars(j *jsonWriter, data []*exemplarspb.ExemplarData) {
	j.buf = append(j.buf, '[')
	for i, d := range data {
		if i > 0 {
			j.buf = append(j.buf, ',')
		}
		j.buf = append(j.buf, `{"seriesLabels":`...)
		j.buf = appendLabels(j.buf, storeapi.LabelsFromProto(d.GetSeriesLabels().GetLabels()))
		j.buf = append(j.buf, `,"exemplars":[`...)
		for k, e := range d.GetExemplars() {
			if k > 0 {
				j.buf = append(j.buf, ',')
			}
			j.buf = append(j.buf, `{"labels":`...)
			j.buf = appendLabels(j.buf, storeapi.LabelsFromProto(e.GetLabels().GetLabels()))
			j.buf = append(j.buf, `,"value":`...)
			j.buf = appendSampleValue(j.buf, e.GetValue())
			j.buf = append(j.buf, `,"timestamp":`...)
			j.buf = appendTimestamp(j.buf, e.GetTs())
			j.buf = append(j.buf, '}')
		}
		j.buf = append(j.buf, "]}"...)
		j.maybeFlush()
	}
	j.buf = append(j.buf, ']')
}
