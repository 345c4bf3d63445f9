package queryapi

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigilhq/vigil/internal/query"
)

var (
	// minTime and maxTime are the defaults of optional start and end parameters. They
	// are the values Prometheus uses (and accepts back in RFC 3339 form), chosen so
	// that they survive a round trip through millisecond timestamps.
	minTime = time.Unix(math.MinInt64/1000+62135596801, 0).UTC()
	maxTime = time.Unix(math.MaxInt64/1000-62135596801, 999999999).UTC()

	minTimeFormatted = minTime.Format(time.RFC3339Nano)
	maxTimeFormatted = maxTime.Format(time.RFC3339Nano)
)

// maxPointsPerSeries bounds (end-start)/step of range queries, as in Prometheus.
const maxPointsPerSeries = 11000

// Thanos resolution levels (ms) used by the dynamic lookback delta.
const (
	res5m = int64(5 * time.Minute / time.Millisecond)
	res1h = int64(time.Hour / time.Millisecond)
)

// defaultEngineLookback is the PromQL engine's default lookback delta.
const defaultEngineLookback = 5 * time.Minute

// invalidParam builds the bad_data error Prometheus returns for a bad parameter.
func invalidParam(err error, name string) *apiError {
	return &apiError{typ: errorBadData, err: fmt.Errorf("invalid parameter %q: %w", name, err)}
}

// parseTime parses a Unix timestamp in seconds (fractions rounded to milliseconds) or
// an RFC 3339 time.
func parseTime(s string) (time.Time, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(f)
		frac = math.Round(frac*1000) / 1000
		return time.Unix(int64(sec), int64(frac*float64(time.Second))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	// time.Parse handles only four-digit years; accept the boundary values anyway.
	switch s {
	case minTimeFormatted:
		return minTime, nil
	case maxTimeFormatted:
		return maxTime, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
}

// parseTimeParam parses the optional time parameter name, returning def when it is
// absent.
func parseTimeParam(r *http.Request, name string, def time.Time) (time.Time, error) {
	v := r.FormValue(name)
	if v == "" {
		return def, nil
	}
	t, err := parseTime(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid time value for '%s': %w", name, err)
	}
	return t, nil
}

// parseDuration parses a number of seconds (possibly fractional) or a Prometheus
// duration such as 5m or 1h30m.
func parseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		ns := f * float64(time.Second)
		if math.IsNaN(ns) || ns >= float64(math.MaxInt64) || ns < float64(math.MinInt64) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration. It overflows int64", s)
		}
		return time.Duration(ns), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
}

// parseLimit parses the limit parameter; 0 means no limit.
func parseLimit(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, errors.New("limit must be non-negative")
	}
	return n, nil
}

// hintLimit asks storage for one result more than the limit, so that truncation can
// be detected and reported.
func hintLimit(limit int) int {
	if limit > 0 && limit < math.MaxInt {
		return limit + 1
	}
	return limit
}

// parseMatchers parses match[] selectors. Every set needs a matcher that rejects the
// empty string, so a selector cannot select every series.
func (a *API) parseMatchers(values []string) ([][]*labels.Matcher, error) {
	sets := make([][]*labels.Matcher, 0, len(values))
	for _, v := range values {
		ms, err := a.parser.ParseMetricSelector(v)
		if err != nil {
			return nil, err
		}
		sets = append(sets, ms)
	}
	for _, ms := range sets {
		ok := false
		for _, m := range ms {
			if m != nil && !m.Matches("") {
				ok = true
				break
			}
		}
		if !ok {
			return nil, errors.New("match[] must contain at least one non-empty matcher")
		}
	}
	return sets, nil
}

// parseTimeout returns the deadline for the request: the timeout parameter, capped by
// Config.Timeout, or Config.Timeout alone. Zero means none.
func (a *API) parseTimeout(r *http.Request) (time.Duration, *apiError) {
	timeout := a.cfg.Timeout
	v := r.FormValue("timeout")
	if v == "" {
		return timeout, nil
	}
	d, err := parseDuration(v)
	if err != nil {
		return 0, invalidParam(err, "timeout")
	}
	if d <= 0 {
		return 0, invalidParam(fmt.Errorf("timeout must be positive, got %s", d), "timeout")
	}
	if timeout <= 0 || d < timeout {
		timeout = d
	}
	return timeout, nil
}

// parseBoolParam parses a Thanos boolean parameter, returning def when it is absent.
func parseBoolParam(r *http.Request, name string, def bool) (bool, *apiError) {
	v := r.FormValue(name)
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, &apiError{typ: errorBadData, err: fmt.Errorf("'%s' parameter: %w", name, err)}
	}
	return b, nil
}

// parseMaxSourceResolution parses max_source_resolution into milliseconds. "auto"
// selects def; absent selects absent.
func parseMaxSourceResolution(r *http.Request, def, absent time.Duration) (int64, *apiError) {
	const name = "max_source_resolution"
	res := absent
	switch v := r.FormValue(name); v {
	case "":
	case "auto":
		res = def
	default:
		d, err := parseDuration(v)
		if err != nil {
			return 0, &apiError{typ: errorBadData, err: fmt.Errorf("param %s: %w", name, err)}
		}
		res = d
	}
	if res < 0 {
		return 0, &apiError{typ: errorBadData, err: fmt.Errorf("negative '%s' is not accepted. Try a positive integer", name)}
	}
	if res == time.Duration(math.MaxInt64) {
		return math.MaxInt64, nil
	}
	return res.Milliseconds(), nil
}

// parseOptions reads the Thanos parameters common to all data endpoints. The
// resolution used for max_source_resolution=auto is autoRes, and absentRes applies
// when the parameter is missing.
func (a *API) parseOptions(r *http.Request, autoRes, absentRes time.Duration) (query.Options, *apiError) {
	var (
		opts   query.Options
		apiErr *apiError
	)
	if opts.Dedup, apiErr = parseBoolParam(r, "dedup", true); apiErr != nil {
		return opts, apiErr
	}
	opts.ReplicaLabels = slices.Clone(a.cfg.ReplicaLabels)
	if rl := r.Form["replicaLabels[]"]; len(rl) > 0 {
		opts.ReplicaLabels = rl
	}
	for _, s := range r.Form["storeMatch[]"] {
		ms, err := a.parser.ParseMetricSelector(s)
		if err != nil {
			return opts, &apiError{typ: errorBadData, err: err}
		}
		opts.StoreMatchers = append(opts.StoreMatchers, ms)
	}
	if opts.MaxSourceResolution, apiErr = parseMaxSourceResolution(r, autoRes, absentRes); apiErr != nil {
		return opts, apiErr
	}
	if opts.PartialResponse, apiErr = parseBoolParam(r, "partial_response", a.cfg.PartialResponse); apiErr != nil {
		return opts, apiErr
	}
	return opts, nil
}

// lookbackDelta returns the lookback delta for a PromQL query: the lookback_delta
// parameter when positive, otherwise Config.LookbackDelta raised, as Thanos's dynamic
// lookback delta does, to 5m or 1h when the maximum source resolution goes beyond
// those resolution levels. Zero lets the engine use its default.
func (a *API) lookbackDelta(r *http.Request, maxSourceResolution int64) (time.Duration, *apiError) {
	if v := r.FormValue("lookback_delta"); v != "" {
		d, err := parseDuration(v)
		if err != nil {
			return 0, &apiError{typ: errorBadData, err: fmt.Errorf("error parsing lookback delta duration: %w", err)}
		}
		if d > 0 {
			return d, nil
		}
	}
	base := a.cfg.LookbackDelta
	eff := base
	if eff <= 0 {
		eff = defaultEngineLookback
	}
	ld := eff.Milliseconds()
	switch {
	case maxSourceResolution > max(ld, res5m):
		if ld < res1h {
			return time.Hour, nil
		}
	case maxSourceResolution > ld:
		if ld < res5m {
			return 5 * time.Minute, nil
		}
	}
	return base, nil
}

// defaultStep is the step of a range query without one: range/250 in whole seconds,
// at least Config.DefaultStep (whole seconds) and at least one second.
func (a *API) defaultStep(start, end time.Time) time.Duration {
	rangeSec := int64(end.Sub(start) / time.Second)
	step := max(rangeSec/250, int64(a.cfg.DefaultStep/time.Second))
	if step < 1 {
		step = 1
	}
	return time.Duration(step) * time.Second
}
