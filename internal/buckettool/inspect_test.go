package buckettool

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
)

// listBucket holds three blocks of two clusters (one downsampled), a block marked for
// deletion, a corrupt block and a partial upload.
func listBucket(t *testing.T) (bkt objstore.Bucket, a, b, c, del *block.Meta) {
	bkt = objstore.NewInMemBucket()
	a = upload(t, bkt, spec{mint: base, maxt: base + 2*hour, labels: eu1, series: 3})
	b = upload(t, bkt, spec{mint: base - 2*hour, maxt: base + 6*hour, labels: us1, level: 3, series: 1, source: block.SourceCompactor})
	c = upload(t, bkt, spec{mint: base - 2*hour, maxt: base + 6*hour, labels: eu1, level: 3, resolution: block.Resolution5m,
		series: 2, source: block.SourceCompactor})
	del = upload(t, bkt, spec{mint: base + 2*hour, maxt: base + 4*hour, labels: eu1, series: 1})
	markDeleted(t, bkt, del.ULID, time.Now())
	corruptBlock(t, bkt)
	partialBlock(t, bkt)
	return bkt, a, b, c, del
}

func TestList(t *testing.T) {
	bkt, a, b, c, del := listBucket(t)
	ctx := context.Background()
	logger, logs := logBuffer()
	var out bytes.Buffer
	if err := List(ctx, &out, bkt, ListOptions{}, logger); err != nil {
		t.Fatal(err)
	}
	want := []string{a.ULID.String(), b.ULID.String(), c.ULID.String(), del.ULID.String()}
	slices.Sort(want)
	if got := strings.Fields(out.String()); !slices.Equal(got, want) {
		t.Errorf("ls = %v, want %v", got, want)
	}
	if !strings.Contains(logs.String(), "unreadable meta.json") {
		t.Errorf("corrupt block not reported; logs:\n%s", logs)
	}

	out.Reset()
	if err := List(ctx, &out, bkt, ListOptions{Format: ListWide, ExcludeDeleted: true}, discard()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || strings.Contains(out.String(), del.ULID.String()) {
		t.Fatalf("ls -o wide --exclude-delete:\n%s", out.String())
	}
	for _, l := range lines {
		if strings.HasPrefix(l, b.ULID.String()) && !strings.Contains(l, "Diff: 8h0m0s, Compaction: 3, Downsample: 0, Source: compactor") {
			t.Errorf("wide line of b: %q", l)
		}
	}

	out.Reset()
	if err := List(ctx, &out, bkt, ListOptions{Format: ListJSON}, discard()); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(&out)
	n := 0
	for dec.More() {
		var m block.Meta
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 4 {
		t.Errorf("ls -o json: %d metas, want 4", n)
	}
	if err := List(ctx, &out, bkt, ListOptions{Format: "yaml"}, discard()); err == nil {
		t.Error("unknown format accepted")
	}
}

func inspect(t *testing.T, bkt objstore.Bucket, o InspectOptions) string {
	t.Helper()
	var out bytes.Buffer
	if err := Inspect(context.Background(), &out, bkt, o, discard()); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// firstColumn returns the first field of every line but the header.
func firstColumn(table string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(table), "\n")[1:] {
		out = append(out, strings.Fields(l)[0])
	}
	return out
}

func TestInspectTable(t *testing.T) {
	bkt, a, b, c, del := listBucket(t)
	out := inspect(t, bkt, InspectOptions{})
	header := strings.Fields(strings.Split(out, "\n")[0])
	if !slices.Equal(header, ColumnNames()) {
		t.Errorf("header %v, want %v", header, ColumnNames())
	}
	// Default order: FROM, then UNTIL, then ULID.
	want := []string{b.ULID.String(), c.ULID.String()}
	slices.Sort(want)
	want = append(want, a.ULID.String(), del.ULID.String())
	if got := firstColumn(out); !slices.Equal(got, want) {
		t.Errorf("rows %v, want %v\n%s", got, want, out)
	}
	for _, frag := range []string{"5m", "raw", "compactor", "deletion", `{cluster="us1", replica="a"}`, "8h", formatTime(base)} {
		if !strings.Contains(out, frag) {
			t.Errorf("table lacks %q:\n%s", frag, out)
		}
	}

	sel, err := ParseSelector([]string{`cluster="eu1"`, `{replica=~"a|b"}`})
	if err != nil {
		t.Fatal(err)
	}
	out = inspect(t, bkt, InspectOptions{Selector: sel, SortBy: []string{"#samples", "ULID"}})
	// Samples: del 1 series × 2h, a 3 × 2h, c 2 × 8h; b is in us1.
	if got, want := firstColumn(out), []string{del.ULID.String(), a.ULID.String(), c.ULID.String()}; !slices.Equal(got, want) {
		t.Errorf("selector cluster=\"eu1\", sorted by #SAMPLES: rows %v, want %v\n%s", got, want, out)
	}
	sel, _ = ParseSelector([]string{`cluster!="eu1"`})
	if got := firstColumn(inspect(t, bkt, InspectOptions{Selector: sel})); !slices.Equal(got, []string{b.ULID.String()}) {
		t.Errorf(`cluster!="eu1": %v`, got)
	}
	if _, err := ParseSelector([]string{`cluster=eu1`}); err == nil {
		t.Error("unquoted selector value accepted")
	}
	if err := Inspect(context.Background(), &bytes.Buffer{}, bkt, InspectOptions{SortBy: []string{"SIZE"}}, discard()); err == nil {
		t.Error("unknown sort column accepted")
	}
}

func TestInspectJSONAndCSV(t *testing.T) {
	bkt, a, _, c, _ := listBucket(t)
	var rows []jsonRow
	if err := json.Unmarshal([]byte(inspect(t, bkt, InspectOptions{Output: OutputJSON, SortBy: []string{"RESOLUTION", "ULID"}})), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || rows[3].ULID != c.ULID.String() || rows[3].Resolution != block.Resolution5m || rows[3].Level != 3 {
		t.Fatalf("json rows: %+v", rows)
	}
	for _, r := range rows {
		if r.ULID == a.ULID.String() && (r.Series != 3 || r.MinTime != base || r.Range != "2h" || r.Labels["cluster"] != "eu1" || r.Marks == nil) {
			t.Errorf("row of a: %+v", r)
		}
	}
	recs, err := csv.NewReader(strings.NewReader(inspect(t, bkt, InspectOptions{Output: OutputCSV}))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 5 || !slices.Equal(recs[0], ColumnNames()) || recs[1][len(recs[1])-1] == "" {
		t.Errorf("csv: %v", recs)
	}
}
