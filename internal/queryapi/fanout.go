package queryapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/prometheus/prometheus/util/annotations"

	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// The APIs read from every endpoint beside the StoreAPI (rules, alerts, metadata,
// targets, exemplars) share their Thanos parameters and their error handling.

// fanoutParams are the Thanos parameters of those APIs.
type fanoutParams struct {
	// replicaLabels are those to deduplicate on: replicaLabels[] or
	// --query.replica-label, none with dedup=false.
	replicaLabels []string
	// strategy is WARN with partial_response (default --query.partial-response),
	// ABORT without.
	strategy storepb.PartialResponseStrategy
}

// parseFanoutParams reads dedup, replicaLabels[] and partial_response.
func (a *API) parseFanoutParams(r *http.Request) (fanoutParams, *apiError) {
	var p fanoutParams
	dedup, apiErr := parseBoolParam(r, "dedup", true)
	if apiErr != nil {
		return p, apiErr
	}
	partial, apiErr := parseBoolParam(r, "partial_response", a.cfg.PartialResponse)
	if apiErr != nil {
		return p, apiErr
	}
	if dedup {
		p.replicaLabels = slices.Clone(a.cfg.ReplicaLabels)
		if rl := r.Form["replicaLabels[]"]; len(rl) > 0 {
			p.replicaLabels = rl
		}
	}
	p.strategy = storepb.PartialResponseStrategy_ABORT
	if partial {
		p.strategy = storepb.PartialResponseStrategy_WARN
	}
	return p, nil
}

// fetchFanout calls fetch under the request's timeout. Its warnings become the
// response's; its error is a timeout or cancellation when the request's context ended,
// an internal "error retrieving <what>" otherwise.
func fetchFanout[T any](a *API, r *http.Request, what string, fetch func(context.Context) (T, []string, error)) (T, annotations.Annotations, *apiError) {
	var zero T
	ctx, cancel, apiErr := a.withTimeout(r)
	if apiErr != nil {
		return zero, nil, apiErr
	}
	defer cancel()
	v, warns, err := fetch(ctx)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return zero, nil, toAPIError(errors.Join(ctxErr, err))
		}
		return zero, nil, &apiError{errorInternal, fmt.Errorf("error retrieving %s: %w", what, err)}
	}
	var warnings annotations.Annotations
	for _, w := range warns {
		warnings.Add(errors.New(w))
	}
	return v, warnings, nil
}

// rawResult is a result whose data is encoded JSON.
func rawResult(b []byte, warnings annotations.Annotations) result {
	return result{data: func(j *jsonWriter) { j.buf = append(j.buf, b...) }, warnings: warnings}
}

// jsonResult is a result whose data is v encoded by encoding/json.
func jsonResult(v any, warnings annotations.Annotations) result {
	b, err := json.Marshal(v)
	if err != nil {
		return errResult(&apiError{errorInternal, fmt.Errorf("encode response: %w", err)})
	}
	return rawResult(b, warnings)
}
