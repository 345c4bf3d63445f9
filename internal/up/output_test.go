package up

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
)

func itoa(i int) string { return strconv.Itoa(i) }

// recorder keeps each Write separately.
type recorder struct{ writes []string }

func (r *recorder) Write(p []byte) (int, error) {
	r.writes = append(r.writes, string(p))
	return len(p), nil
}

func TestLineWriterSplitsAndJoins(t *testing.T) {
	var r recorder
	w := newLineWriter(&r, "[x] ")
	for _, chunk := range []string{"hel", "lo\nwor", "ld\n\nlast"} {
		if n, err := w.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
		}
	}
	w.Flush()
	w.Flush() // nothing left
	want := []string{"[x] hello\n", "[x] world\n", "[x] \n", "[x] last\n"}
	if strings.Join(r.writes, "|") != strings.Join(want, "|") {
		t.Errorf("writes %q, want %q", r.writes, want)
	}
}

func TestLineWriterCutsLongLines(t *testing.T) {
	var r recorder
	w := newLineWriter(&r, "> ")
	long := bytes.Repeat([]byte("a"), 2*maxLine+10)
	_, _ = w.Write(long)
	w.Flush()
	if len(r.writes) != 3 || len(r.writes[0]) != maxLine+3 || r.writes[2] != "> "+strings.Repeat("a", 10)+"\n" {
		t.Errorf("got %d writes of lengths %v", len(r.writes), lengths(r.writes))
	}
}

func lengths(ss []string) []int {
	var out []int
	for _, s := range ss {
		out = append(out, len(s))
	}
	return out
}

func TestTable(t *testing.T) {
	l := testLayout(t)
	s := string(table(l.parts(), "/data", []string{"store"}))
	for _, want := range []string{
		"NAME", "query          http://127.0.0.1:9090", "prometheus-0", "sidecar-1", "node-exporter",
		"Not ready after", ": store\n", "Data and configuration: /data",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("table lacks %q:\n%s", want, s)
		}
	}
}
