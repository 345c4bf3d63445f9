// Package cliflag holds the flag types Vigil shares with Thanos' command line: Prometheus
// model durations and time flags that take RFC3339 or a relative duration.
package cliflag

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// Duration registers a Prometheus model duration flag (ms, s, m, h, d, w, y).
func Duration(f *kingpin.FlagClause) *time.Duration {
	d := new(time.Duration)
	f.SetValue(&durationValue{d: d})
	return d
}

type durationValue struct{ d *time.Duration }

func (v *durationValue) Set(s string) error {
	md, err := model.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("parse duration %q: %w", s, err)
	}
	*v.d = time.Duration(md)
	return nil
}

func (v *durationValue) String() string { return model.Duration(*v.d).String() }

// TimeOrDuration is a time flag: an RFC3339 time or a duration relative to now ("-2w").
type TimeOrDuration struct {
	t   *time.Time
	dur *model.Duration
	neg bool
}

// Time registers a TimeOrDuration flag.
func Time(f *kingpin.FlagClause) *TimeOrDuration {
	v := &TimeOrDuration{}
	f.SetValue(v)
	return v
}

// Set parses an RFC3339 time or a (signed) model duration.
func (v *TimeOrDuration) Set(s string) error {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		v.t, v.dur = &t, nil
		return nil
	}
	neg := strings.HasPrefix(s, "-")
	d, err := model.ParseDuration(strings.TrimPrefix(s, "-"))
	if err != nil {
		return fmt.Errorf("%q is neither an RFC3339 time nor a relative duration such as -2w", s)
	}
	v.t, v.dur, v.neg = nil, &d, neg
	return nil
}

func (v *TimeOrDuration) String() string {
	switch {
	case v.t != nil:
		return v.t.Format(time.RFC3339)
	case v.dur != nil:
		if v.neg {
			return "-" + v.dur.String()
		}
		return v.dur.String()
	}
	return ""
}

// Millis resolves the flag against now, in Unix milliseconds; unset resolves to def.
func (v *TimeOrDuration) Millis(now time.Time, def int64) int64 {
	switch {
	case v.t != nil:
		return v.t.UnixMilli()
	case v.dur != nil:
		d := time.Duration(*v.dur)
		if v.neg {
			d = -d
		}
		return now.Add(d).UnixMilli()
	}
	return def
}

// MinTimeDefault and MaxTimeDefault are the Thanos defaults, 0000-01-01 and 9999-12-31.
var (
	MinTimeDefault = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	MaxTimeDefault = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).UnixMilli()
)

// ParseLabels parses --label values of the form name="value" (the value quoted as a Go
// string) into a label set. Names must be valid and unique.
func ParseLabels(flags []string) (labels.Labels, error) {
	b := labels.NewScratchBuilder(len(flags))
	seen := map[string]struct{}{}
	for _, f := range flags {
		name, quoted, ok := strings.Cut(f, "=")
		if !ok {
			return labels.EmptyLabels(), fmt.Errorf("label %q: want name=\"value\"", f)
		}
		if !model.LabelName(name).IsValid() {
			return labels.EmptyLabels(), fmt.Errorf("label %q: invalid name %q", f, name)
		}
		value, err := strconv.Unquote(quoted)
		if err != nil {
			return labels.EmptyLabels(), fmt.Errorf("label %q: the value must be quoted, as in %s=\"value\": %w", f, name, err)
		}
		if _, dup := seen[name]; dup {
			return labels.EmptyLabels(), fmt.Errorf("label %q: %q given twice", f, name)
		}
		seen[name] = struct{}{}
		b.Add(name, value)
	}
	b.Sort()
	return b.Labels(), nil
}
