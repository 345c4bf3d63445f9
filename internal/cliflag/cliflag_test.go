package cliflag

import (
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
)

func parseDuration(t *testing.T, arg string) (time.Duration, error) {
	t.Helper()
	app := kingpin.New("test", "")
	app.Terminate(nil)
	d := Duration(app.Flag("d", "").Default("5m"))
	var args []string
	if arg != "" {
		args = []string{"--d=" + arg}
	}
	_, err := app.Parse(args)
	return *d, err
}

func TestDuration(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
	}{
		{"", 5 * time.Minute}, // default
		{"2h", 2 * time.Hour},
		{"1d", 24 * time.Hour},
		{"0d", 0},
		{"0", 0},
		{"2w", 14 * 24 * time.Hour},
		{"1y", 365 * 24 * time.Hour},
		{"1h30m", 90 * time.Minute},
		{"500ms", 500 * time.Millisecond},
	}
	for _, tc := range cases {
		got, err := parseDuration(t, tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%q = %v, want %v", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{"2hours", "-1h", "1.5h", "h", "1d2x"} {
		if got, err := parseDuration(t, bad); err == nil {
			t.Errorf("%q accepted as %v, want an error", bad, got)
		}
	}
}

func TestDurationString(t *testing.T) {
	d := 36 * time.Hour
	if got := (&durationValue{d: &d}).String(); got != "1d12h" {
		t.Errorf("String() = %q, want 1d12h", got)
	}
}

func TestTimeOrDuration(t *testing.T) {
	now := time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want int64
		str  string
	}{
		{"2024-01-02T03:04:05Z", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli(), "2024-01-02T03:04:05Z"},
		{"2024-01-02T03:04:05+02:00", time.Date(2024, 1, 2, 1, 4, 5, 0, time.UTC).UnixMilli(), "2024-01-02T03:04:05+02:00"},
		{"0000-01-01T00:00:00Z", MinTimeDefault, "0000-01-01T00:00:00Z"},
		{"-2w", now.Add(-14 * 24 * time.Hour).UnixMilli(), "-2w"},
		{"-1d", now.Add(-24 * time.Hour).UnixMilli(), "-1d"},
		{"30m", now.Add(30 * time.Minute).UnixMilli(), "30m"},
		{"0s", now.UnixMilli(), "0s"},
	}
	for _, tc := range cases {
		var v TimeOrDuration
		if err := v.Set(tc.in); err != nil {
			t.Errorf("Set(%q): %v", tc.in, err)
			continue
		}
		if got := v.Millis(now, 12345); got != tc.want {
			t.Errorf("%q: Millis = %d, want %d", tc.in, got, tc.want)
		}
		if got := v.String(); got != tc.str {
			t.Errorf("%q: String = %q, want %q", tc.in, got, tc.str)
		}
	}
}

func TestTimeOrDurationSetOverwrites(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	var v TimeOrDuration
	if err := v.Set("-1h"); err != nil {
		t.Fatal(err)
	}
	if err := v.Set("1970-01-01T00:00:01Z"); err != nil {
		t.Fatal(err)
	}
	if got := v.Millis(now, 0); got != 1000 {
		t.Errorf("after duration then time: %d, want 1000", got)
	}
	if err := v.Set("1h"); err != nil {
		t.Fatal(err)
	}
	// A positive duration after a negative one must not keep the sign.
	if got := v.Millis(now, 0); got != now.Add(time.Hour).UnixMilli() {
		t.Errorf("after time then 1h: %d, want %d", got, now.Add(time.Hour).UnixMilli())
	}
}

func TestTimeOrDurationBadInput(t *testing.T) {
	for _, bad := range []string{"yesterday", "2024-01-02", "2024-01-02 03:04:05", "--2w", "-", "2w-"} {
		var v TimeOrDuration
		err := v.Set(bad)
		if err == nil {
			t.Errorf("Set(%q) succeeded", bad)
			continue
		}
		if !strings.Contains(err.Error(), "RFC3339") {
			t.Errorf("Set(%q) error %q should explain the accepted forms", bad, err)
		}
	}
}

func TestTimeFlagDefaultAndUnset(t *testing.T) {
	app := kingpin.New("test", "")
	app.Terminate(nil)
	withDefault := Time(app.Flag("min-time", "").Default("0000-01-01T00:00:00Z"))
	unset := Time(app.Flag("max-time", ""))
	if _, err := app.Parse([]string{"--max-time=-2w"}); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := withDefault.Millis(now, 1); got != MinTimeDefault {
		t.Errorf("default min-time = %d, want %d", got, MinTimeDefault)
	}
	if got := unset.Millis(now, 1); got != now.Add(-14*24*time.Hour).UnixMilli() {
		t.Errorf("--max-time=-2w = %d", got)
	}
	var empty TimeOrDuration
	if got := empty.Millis(now, 777); got != 777 || empty.String() != "" {
		t.Errorf("unset flag: Millis %d String %q, want the default and empty", got, empty.String())
	}
	if _, err := app.Parse([]string{"--max-time=never"}); err == nil {
		t.Error("kingpin accepted --max-time=never")
	}
}

func TestTimeDefaults(t *testing.T) {
	if got := time.UnixMilli(MaxTimeDefault).UTC(); got != time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC) {
		t.Errorf("MaxTimeDefault = %v", got)
	}
	if got := time.UnixMilli(MinTimeDefault).UTC(); got.Year() != 0 || got.Month() != 1 || got.Day() != 1 {
		t.Errorf("MinTimeDefault = %v", got)
	}
}
