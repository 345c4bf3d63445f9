// Package queryapi serves the Prometheus HTTP API v1 (query, query_range, series,
// labels, label values, build info, rules, alerts, metadata, targets, exemplars, TSDB status) plus
// Thanos's /api/v1/stores and per-request parameters (dedup, replicaLabels[],
// partial_response, max_source_resolution, lookback_delta, storeMatch[]) on top of a
// query.QueryableFactory and a PromQL engine, and of the proxies of the other Thanos
// APIs. Responses are byte-for-byte what Prometheus writes, so Grafana, promtool and the
// Prometheus Go client work unchanged.
package queryapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/vigilhq/vigil/internal/exemplarsapi"
	"github.com/vigilhq/vigil/internal/metadataapi"
	"github.com/vigilhq/vigil/internal/query"
	"github.com/vigilhq/vigil/internal/rulesapi"
	"github.com/vigilhq/vigil/internal/statusapi"
	"github.com/vigilhq/vigil/internal/targetsapi"
)

// BuildInfo is the payload of /api/v1/status/buildinfo.
type BuildInfo struct {
	Version   string
	Revision  string
	Branch    string
	BuildUser string
	BuildDate string
	GoVersion string
}

// Config configures the API.
type Config struct {
	// Engine runs PromQL (built by the caller with promql.NewEngine).
	Engine promql.QueryEngine
	// Queryable builds the storage for one request's Thanos options.
	Queryable query.QueryableFactory
	// Stores lists the endpoints for /api/v1/stores; nil serves {}.
	Stores query.StoresLister
	// Rules answers /api/v1/rules and /api/v1/alerts (query.RulesProxy); nil serves no
	// rules.
	Rules rulesapi.Source
	// Metadata answers /api/v1/metadata (query.MetadataProxy); nil serves none.
	Metadata metadataapi.Source
	// Targets answers /api/v1/targets (query.TargetsProxy); nil serves none.
	Targets targetsapi.Source
	// Exemplars answers /api/v1/query_exemplars (query.ExemplarsProxy); nil serves none.
	Exemplars exemplarsapi.Source
	// Status answers /api/v1/status/tsdb (query.StatusProxy); nil serves an empty head.
	Status statusapi.Source
	// ReplicaLabels is --query.replica-label, overridden per request by replicaLabels[].
	ReplicaLabels []string
	// PartialResponse is the --query.partial-response default of partial_response.
	PartialResponse bool
	// LookbackDelta is the engine's lookback delta (--query.lookback-delta); 0 means the
	// engine default. It is raised for coarse max_source_resolution values as Thanos
	// does.
	LookbackDelta time.Duration
	// AutoDownsampling is --query.auto-downsampling: range queries without
	// max_source_resolution read up to step/5 (as with max_source_resolution=auto)
	// instead of raw data only.
	AutoDownsampling bool
	// MetadataDefaultRange is --query.metadata.default-time-range: series, label names
	// and label values requests without start cover this much before end (0: all time).
	MetadataDefaultRange time.Duration
	// DisableCORS is --web.disable-cors: no Access-Control-* headers, so browsers only
	// call the API from pages of its own origin.
	DisableCORS bool
	// DefaultStep is --query.default-step, the lower bound of the step of range queries
	// that do not give one.
	DefaultStep time.Duration
	// Timeout is --query.timeout, the upper bound of the timeout parameter and the
	// deadline of requests without one; 0 means none.
	Timeout time.Duration
	// BuildInfo is served by /api/v1/status/buildinfo.
	BuildInfo BuildInfo
	// Logger logs encoding and write failures; nil discards.
	Logger *slog.Logger
	// Parser parses match[] and storeMatch[] selectors; nil uses the default parser
	// options. It should match the engine's parser.
	Parser parser.Parser
}

// API is the HTTP query API. Create it with New and mount it with Register.
type API struct {
	cfg    Config
	logger *slog.Logger
	parser parser.Parser
	now    func() time.Time
	comp   *compressors
}

// New returns an API for cfg.
func New(cfg Config) *API {
	a := &API{cfg: cfg, logger: cfg.Logger, parser: cfg.Parser, now: time.Now, comp: newCompressors()}
	if a.logger == nil {
		a.logger = slog.New(slog.DiscardHandler)
	}
	if a.parser == nil {
		a.parser = parser.NewParser(parser.Options{})
	}
	return a
}

// Register mounts the endpoints on mux under prefix+"/api/v1/". Each accepts GET and
// POST (form-encoded body) and answers OPTIONS for CORS pre-flight requests.
func (a *API) Register(mux *http.ServeMux, prefix string) {
	p := strings.TrimRight(prefix, "/") + "/api/v1"
	endpoints := []struct {
		path string
		f    func(*http.Request) result
	}{
		{"/query", a.query},
		{"/query_range", a.queryRange},
		{"/series", a.series},
		{"/labels", a.labelNames},
		{"/label/{name}/values", a.labelValues},
		{"/status/buildinfo", a.buildInfo},
		{"/stores", a.stores},
		{"/rules", a.rules},
		{"/alerts", a.alerts},
		{"/metadata", a.metricMetadata},
		{"/targets", a.targets},
		{"/query_exemplars", a.queryExemplars},
		{"/status/tsdb", a.tsdbStatus},
	}
	for _, e := range endpoints {
		h := a.handler(e.f)
		// Method-specific patterns do not conflict with a catch-all such as "GET /",
		// and the mux answers other methods with 405.
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodOptions} {
			mux.Handle(m+" "+p+e.path, h)
		}
	}
}

// SelectParams are what a handler beside the API that selects series (/federate)
// reads from its request; see ParseSelect.
type SelectParams struct {
	Matchers [][]*labels.Matcher // match[], required
	Options  query.Options       // dedup, replicaLabels[], partial_response, storeMatch[], max_source_resolution (raw by default)
	Timeout  time.Duration       // the timeout parameter capped by Config.Timeout; 0 means none
}

// ParseSelect parses r's query string and form body with the API's own rules, for
// handlers served beside it. Every error is the client's.
func (a *API) ParseSelect(r *http.Request) (SelectParams, error) {
	var p SelectParams
	if err := parseForm(r); err != nil {
		return p, errors.New("error parsing form values: " + err.Error())
	}
	if len(r.Form["match[]"]) == 0 {
		return p, errors.New("no match[] parameter provided")
	}
	ms, err := a.parseMatchers(r.Form["match[]"])
	if err != nil {
		return p, invalidParam(err, "match[]").err
	}
	opts, apiErr := a.parseOptions(r, 0, 0)
	if apiErr == nil {
		p.Timeout, apiErr = a.parseTimeout(r)
	}
	if apiErr != nil {
		return p, apiErr.err
	}
	p.Matchers, p.Options = ms, opts
	return p, nil
}

// ErrorStatus is the HTTP status code the API answers a storage or engine error with
// (a timeout is 503, a cancellation 499), for handlers served beside it.
func ErrorStatus(err error) int { return toAPIError(err).typ.httpStatus() }

// errorType classifies API errors as Prometheus does.
type errorType string

const (
	errorTimeout     errorType = "timeout"
	errorCanceled    errorType = "canceled"
	errorExec        errorType = "execution"
	errorBadData     errorType = "bad_data"
	errorInternal    errorType = "internal"
	errorUnavailable errorType = "unavailable"
	errorNotFound    errorType = "not_found"
	errorCostLimit   errorType = "cost_limit"
)

// statusClientClosedRequest is nginx's 499, which Prometheus uses for cancellations.
const statusClientClosedRequest = 499

// httpStatus is the status code of an error type.
func (t errorType) httpStatus() int {
	switch t {
	case errorBadData:
		return http.StatusBadRequest
	case errorExec, errorCostLimit:
		return http.StatusUnprocessableEntity
	case errorCanceled:
		return statusClientClosedRequest
	case errorTimeout, errorUnavailable:
		return http.StatusServiceUnavailable
	case errorNotFound:
		return http.StatusNotFound
	default:
		return http.StatusInternalServerError
	}
}

// apiError is an error with its API classification.
type apiError struct {
	typ errorType
	err error
}

func (e *apiError) Error() string { return string(e.typ) + ": " + e.err.Error() }

// toAPIError classifies an error from the engine or storage.
func toAPIError(err error) *apiError {
	var (
		canceled   promql.ErrQueryCanceled
		timeout    promql.ErrQueryTimeout
		series     promql.ErrTooManySeries
		samplesRd  promql.ErrTooManySamplesRead
		storageErr promql.ErrStorage
	)
	switch {
	case errors.As(err, &canceled):
		return &apiError{errorCanceled, err}
	case errors.As(err, &timeout):
		return &apiError{errorTimeout, err}
	case errors.As(err, &series), errors.As(err, &samplesRd):
		return &apiError{errorCostLimit, err}
	case errors.As(err, &storageErr):
		return &apiError{errorInternal, err}
	case errors.Is(err, context.Canceled):
		return &apiError{errorCanceled, err}
	case errors.Is(err, context.DeadlineExceeded):
		return &apiError{errorTimeout, err}
	}
	return &apiError{errorExec, err}
}

// result is what an endpoint produces: an error, or data with its warnings.
type result struct {
	// data writes the value of the "data" field.
	data func(*jsonWriter)
	// warnings become "warnings" and "infos".
	warnings annotations.Annotations
	err      *apiError
	// finalizer runs after the response is written (it releases the query result).
	finalizer func()
}

// errResult wraps an API error.
func errResult(err *apiError) result { return result{err: err} }

// handler adapts an endpoint to HTTP: method check, CORS, form parsing, compression
// and encoding of the envelope.
func (a *API) handler(f func(*http.Request) result) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.cfg.DisableCORS {
			setCORS(w, r)
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodPost:
		case http.MethodOptions:
			w.WriteHeader(http.StatusNoContent)
			return
		default:
			w.Header().Set("Allow", "GET, POST, OPTIONS")
			http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
			return
		}
		cw := a.comp.writer(w, r)
		defer cw.Close()

		var res result
		if err := parseForm(r); err != nil {
			res = errResult(&apiError{errorBadData, errors.New("error parsing form values: " + err.Error())})
		} else {
			res = f(r)
		}
		if res.finalizer != nil {
			defer res.finalizer()
		}
		if res.err != nil {
			if res.err.typ == errorInternal {
				a.logger.Warn("internal error serving query API", "path", r.URL.Path, "err", res.err.err)
			}
			a.respondError(cw, res.err)
			return
		}
		a.respond(cw, r, res)
	})
}

// setCORS allows cross-origin calls from any origin, as Prometheus does by default.
func setCORS(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Add("Vary", "Origin")
	if r.Header.Get("Origin") == "" {
		return
	}
	h.Set("Access-Control-Allow-Headers", "Accept, Authorization, Content-Type, Origin")
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	h.Set("Access-Control-Expose-Headers", "Date")
	h.Set("Access-Control-Allow-Origin", "*")
}

// respond writes a success envelope, streaming the data as it is encoded.
func (a *API) respond(w http.ResponseWriter, r *http.Request, res result) {
	warns, infos := res.warnings.AsStrings(r.FormValue("query"), 10, 10)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	j := &jsonWriter{buf: getJSONBuf(), w: w}
	defer func() { putJSONBuf(j.buf) }()
	j.buf = append(j.buf, `{"status":"success","data":`...)
	if res.data != nil {
		res.data(j)
	} else {
		j.buf = append(j.buf, "null"...)
	}
	if len(warns) > 0 {
		j.buf = append(j.buf, `,"warnings":`...)
		j.buf = appendStrings(j.buf, warns)
	}
	if len(infos) > 0 {
		j.buf = append(j.buf, `,"infos":`...)
		j.buf = appendStrings(j.buf, infos)
	}
	j.buf = append(j.buf, '}')
	j.flush()
	if j.err != nil {
		a.logger.Debug("error writing API response", "url", r.URL.String(), "err", j.err)
	}
}

// respondError writes an error envelope with the status code of its type.
func (a *API) respondError(w http.ResponseWriter, apiErr *apiError) {
	b := make([]byte, 0, 128)
	b = append(b, `{"status":"error","errorType":`...)
	b = appendString(b, string(apiErr.typ))
	b = append(b, `,"error":`...)
	b = appendString(b, apiErr.err.Error())
	b = append(b, '}')
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(apiErr.typ.httpStatus())
	if _, err := w.Write(b); err != nil {
		a.logger.Debug("error writing API error response", "err", err)
	}
}

// withTimeout derives the request context with the effective timeout.
func (a *API) withTimeout(r *http.Request) (context.Context, context.CancelFunc, *apiError) {
	timeout, apiErr := a.parseTimeout(r)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	if timeout > 0 {
		ctx, cancel := context.WithDeadline(r.Context(), a.now().Add(timeout))
		return ctx, cancel, nil
	}
	ctx, cancel := context.WithCancel(r.Context())
	return ctx, cancel, nil
}

// parseForm parses the query string and a form-encoded (or multipart) POST body.
func parseForm(r *http.Request) error {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		return r.ParseMultipartForm(32 << 20)
	}
	return r.ParseForm()
}
