package exemplarsapi

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/exemplarspb"
)

func ex(trace string, v float64, ts int64) *exemplarspb.Exemplar {
	return &exemplarspb.Exemplar{Labels: storeapi.LabelSet(labels.FromStrings("trace_id", trace)), Value: v, Ts: ts}
}

func data(ls labels.Labels, exs ...*exemplarspb.Exemplar) *exemplarspb.ExemplarData {
	return &exemplarspb.ExemplarData{SeriesLabels: storeapi.LabelSet(ls), Exemplars: exs}
}

func summary(ds []*exemplarspb.ExemplarData) string {
	var parts []string
	for _, d := range ds {
		var es []string
		for _, e := range d.GetExemplars() {
			es = append(es, fmt.Sprintf("%s=%g@%d", storeapi.LabelsFromProto(e.GetLabels().GetLabels()).Get("trace_id"), e.GetValue(), e.GetTs()))
		}
		parts = append(parts, storeapi.LabelsFromProto(d.GetSeriesLabels().GetLabels()).String()+":"+strings.Join(es, ","))
	}
	return strings.Join(parts, " ")
}

func TestMerge(t *testing.T) {
	series := func(r, name string) labels.Labels {
		return labels.FromStrings("__name__", name, "cluster", "c", "replica", r)
	}
	in := []*exemplarspb.ExemplarData{
		data(series("r1", "b_total"), ex("t3", 3, 3000), ex("t1", 1, 1000)),
		data(series("r0", "b_total"), ex("t1", 1, 1000), ex("t2", 2, 2000)),
		data(series("r0", "a_total"), ex("t9", 9, 9000)),
		data(series("r0", "empty")),
	}
	got := summary(Merge(in, []string{"replica"}))
	want := `{__name__="a_total", cluster="c"}:t9=9@9000 {__name__="b_total", cluster="c"}:t1=1@1000,t2=2@2000,t3=3@3000`
	if got != want {
		t.Fatalf("dedup:\ngot  %s\nwant %s", got, want)
	}
	got = summary(Merge(in, nil))
	want = `{__name__="a_total", cluster="c", replica="r0"}:t9=9@9000 {__name__="b_total", cluster="c", replica="r0"}:t1=1@1000,t2=2@2000 ` +
		`{__name__="b_total", cluster="c", replica="r1"}:t1=1@1000,t3=3@3000`
	if got != want {
		t.Fatalf("without dedup:\ngot  %s\nwant %s", got, want)
	}
	if storeapi.LabelsFromProto(in[0].GetSeriesLabels().GetLabels()).Get("replica") != "r1" || in[0].GetExemplars()[0].GetTs() != 3000 {
		t.Fatal("Merge modified its input")
	}
}

func TestQueryFor(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	r0 := labels.FromStrings("cluster", "c", "replica", "r0")
	r1 := labels.FromStrings("cluster", "c", "replica", "r1")
	for _, tc := range []struct {
		query string
		sets  []labels.Labels
		want  string // "" when nothing is to be asked
	}{
		{`up`, []labels.Labels{r0}, `{__name__="up"}`},
		{`rate(http_total{replica="r0",job="a"}[5m])`, []labels.Labels{r0}, `{job="a",__name__="http_total"}`},
		{`http_total{replica="r1"}`, []labels.Labels{r0}, ""},
		{`http_total{replica=~"r.*"} / on() b{cluster="other"}`, []labels.Labels{r0}, `{__name__="http_total"}`},
		{`{replica="r0"}`, []labels.Labels{r0}, `{__name__=~".+"}`},
		{`x{team="a"}`, []labels.Labels{r0}, `{team="a",__name__="x"}`},
		// A querier with both replicas: keep what only some sets match.
		{`x{replica="r1",cluster="c"}`, []labels.Labels{r0, r1}, `{replica="r1",__name__="x"}`},
		{`x{replica="r9"}`, []labels.Labels{r0, r1}, ""},
		// No label sets: as is.
		{`x{replica="r9"}`, nil, `{replica="r9",__name__="x"}`},
		{`vector(1)`, []labels.Labels{r0}, ""},
	} {
		got, ok, err := QueryFor(p, tc.query, tc.sets)
		if err != nil {
			t.Fatalf("%s: %v", tc.query, err)
		}
		if ok != (tc.want != "") || got != tc.want {
			t.Errorf("%s for %v: got %q (ok %v), want %q", tc.query, tc.sets, got, ok, tc.want)
		}
		if ok {
			if _, err := p.ParseExpr(got); err != nil {
				t.Errorf("%s: rewritten query %q does not parse: %v", tc.query, got, err)
			}
		}
	}
	if _, _, err := QueryFor(p, "rate(", nil); err == nil {
		t.Error("want a parse error")
	}
	two, ok, _ := QueryFor(p, `a{replica="r0"} + b`, []labels.Labels{r0})
	if !ok || two != `{__name__="a"} + {__name__="b"}` {
		t.Errorf("two selectors: %q", two)
	}
}

func TestAddExternalLabels(t *testing.T) {
	ds := []*exemplarspb.ExemplarData{data(labels.FromStrings("__name__", "x", "replica", "own"), ex("t", 1, 1))}
	AddExternalLabels(ds, labels.FromStrings("cluster", "c", "replica", "r0"))
	if got := storeapi.LabelsFromProto(ds[0].GetSeriesLabels().GetLabels()); !labels.Equal(got, labels.FromStrings("__name__", "x", "cluster", "c", "replica", "r0")) {
		t.Fatalf("series labels %v", got)
	}
	if got := storeapi.LabelsFromProto(ds[0].GetExemplars()[0].GetLabels().GetLabels()); got.Has("cluster") {
		t.Fatalf("exemplar labels got external labels: %v", got)
	}
}
