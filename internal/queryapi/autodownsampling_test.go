package queryapi

import (
	"testing"
)

// --query.auto-downsampling makes range queries without max_source_resolution read up
// to step/5; instant queries and explicit values are unchanged.
func TestAutoDownsampling(t *testing.T) {
	f := newFixture(t, nil, func(c *Config) { c.AutoDownsampling = true })
	for _, tc := range []struct {
		path string
		args []string
		want int64
	}{
		{"/api/v1/query_range", []string{"step", "60"}, 12_000},
		{"/api/v1/query_range", []string{"step", "60", "max_source_resolution", "0s"}, 0},
		{"/api/v1/query_range", []string{"step", "60", "max_source_resolution", "1h"}, 3_600_000},
		{"/api/v1/query_range", []string{"step", "3000", "max_source_resolution", "auto"}, 600_000},
		{"/api/v1/query", []string{"time", "1700000600"}, 0},
	} {
		args := append([]string{"query", "up", "start", "1700000000", "end", "1700000600"}, tc.args...)
		code, body := f.get(t, tc.path, vals(args...))
		if code != 200 {
			t.Fatalf("%s %v: %d %s", tc.path, tc.args, code, body)
		}
		if got := f.rec.Last(t).MaxSourceResolution; got != tc.want {
			t.Errorf("%s %v: max source resolution %d, want %d", tc.path, tc.args, got, tc.want)
		}
	}
	// Off by default.
	g := newFixture(t, nil, nil)
	g.get(t, "/api/v1/query_range", vals("query", "up", "start", "1700000000", "end", "1700000600", "step", "60"))
	if got := g.rec.Last(t).MaxSourceResolution; got != 0 {
		t.Errorf("default: max source resolution %d, want 0", got)
	}
}
