package rule

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
)

// matrixAnswer is a success answer of a matrix: each series with its [seconds, value] pairs.
func matrixAnswer(series ...matrixAnswerSeries) (int, string) {
	res := make([]map[string]any, 0, len(series))
	for _, s := range series {
		vals := make([][2]any, len(s.points))
		for i, p := range s.points {
			vals[i] = [2]any{json.Number(strconv.FormatFloat(float64(p.T)/1000, 'f', 3, 64)), strconv.FormatFloat(p.F, 'f', -1, 64)}
		}
		res = append(res, map[string]any{"metric": s.metric, "values": vals})
	}
	b, _ := json.Marshal(map[string]any{"status": "success", "data": map[string]any{"resultType": "matrix", "result": res}})
	return http.StatusOK, string(b)
}

type matrixAnswerSeries struct {
	metric map[string]string
	points []promql.FPoint
}

// forStateSeries is the stored state of alert Held with job=api, as two HA rulers wrote
// it through a receiver: the same series once the external labels (cluster, replica)
// and the receiver's tenant label are dropped. activeAt is in seconds, as stored.
func forStateSeries(now time.Time, activeAt float64) []matrixAnswerSeries {
	m := func(replica string) map[string]string {
		return map[string]string{"__name__": "ALERTS_FOR_STATE", "alertname": "Held", "job": "api",
			"cluster": "eu1", "replica": replica, "tenant_id": "default-tenant"}
	}
	at := func(ago time.Duration) int64 { return now.Add(-ago).UnixMilli() }
	return []matrixAnswerSeries{
		{m("r0"), []promql.FPoint{{T: at(30 * time.Second), F: activeAt}, {T: at(20 * time.Second), F: activeAt}}},
		{m("r2"), []promql.FPoint{{T: at(25 * time.Second), F: activeAt}, {T: at(20 * time.Second), F: activeAt}}},
	}
}

func TestRemoteForStateSelect(t *testing.T) {
	now := time.Now()
	api := newFakeQueryAPI(t, func(url.Values) (int, string) { return matrixAnswer(forStateSeries(now, 1000)...) })
	r := &Ruler{cfg: Config{Labels: labels.FromStrings("cluster", "eu1", "replica", "r1"), RestoreIgnored: []string{"tenant_id"}},
		querier: newTestQuerier(prometheus.NewRegistry(), 5*time.Second, api.URL)}
	mint, maxt := now.Add(-time.Hour).UnixMilli(), now.UnixMilli()
	q, err := r.forStateQueryable(nil).Querier(mint, maxt)
	if err != nil {
		t.Fatal(err)
	}
	set := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "ALERTS_FOR_STATE"),
		labels.MustNewMatcher(labels.MatchEqual, "alertname", "Held"))
	var got []storage.Series
	for set.Next() {
		got = append(got, set.At())
	}
	if set.Err() != nil || len(got) != 1 {
		t.Fatalf("%d series, err %v: want the two rulers' series as one", len(got), set.Err())
	}
	if want := labels.FromStrings("__name__", "ALERTS_FOR_STATE", "alertname", "Held", "job", "api"); !labels.Equal(got[0].Labels(), want) {
		t.Errorf("labels %v, want %v", got[0].Labels(), want)
	}
	var ts []int64
	it := got[0].Iterator(nil)
	for it.Next() != 0 {
		tt, v := it.At()
		if v != 1000 {
			t.Errorf("value %v at %d", v, tt)
		}
		ts = append(ts, tt)
	}
	if len(ts) != 3 || ts[0] >= ts[1] || ts[1] >= ts[2] {
		t.Errorf("sample times %v: want three, in order, the shared one once", ts)
	}

	reqs := api.requests()
	wantExpr := `{__name__="ALERTS_FOR_STATE",alertname="Held"}[3600000ms]`
	if len(reqs) != 1 || reqs[0].Form.Get("query") != wantExpr || reqs[0].Form.Get("time") != strconv.FormatFloat(float64(maxt)/1000, 'f', 3, 64) {
		t.Fatalf("requests %+v: want one instant query %s at the querier's maxt", reqs, wantExpr)
	}
}

func TestRemoteForStateErrors(t *testing.T) {
	for name, answer := range map[string]func(url.Values) (int, string){
		"refused":    func(url.Values) (int, string) { return errorAnswer(http.StatusBadRequest, "bad_data", "no") },
		"not matrix": func(f url.Values) (int, string) { return vectorAnswer(f, "1", map[string]string{}) },
		"bad samples": func(url.Values) (int, string) {
			return http.StatusOK, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"x"]]}]}}`
		},
	} {
		api := newFakeQueryAPI(t, answer)
		r := &Ruler{querier: newTestQuerier(prometheus.NewRegistry(), 5*time.Second, api.URL)}
		q, _ := r.forStateQueryable(nil).Querier(0, 1000)
		set := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "alertname", "Held"))
		if set.Next() || set.Err() == nil || !strings.Contains(set.Err().Error(), "read alert state through the query API") {
			t.Errorf("%s: err %v, want the reason", name, set.Err())
		}
		var qe *QueryError
		if name != "bad samples" && !errors.As(set.Err(), &qe) {
			t.Errorf("%s: %v is not a QueryError", name, set.Err())
		}
	}
}

const heldRules = `groups:
- name: held
  interval: 100ms
  rules:
  - alert: Held
    expr: held_metric > 0
    for: 1h
`

// TestRulerRestoresForStateThroughQueryAPI: an alert that another ruler had held active
// for 2h (its `for` is 1h) fires at once on a ruler starting with no state of its own,
// stateful or stateless, instead of waiting its whole `for` again. Without the tenant
// label in RestoreIgnored the stored state matches no alert and the alert stays pending.
func TestRulerRestoresForStateThroughQueryAPI(t *testing.T) {
	for _, tc := range []struct {
		name      string
		stateless bool
		ignored   []string
		restored  bool
	}{
		{"stateful", false, []string{"tenant_id"}, true},
		{"stateless", true, []string{"tenant_id"}, true},
		{"tenant label not ignored", true, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Now()
			activeAt := float64(now.Add(-2 * time.Hour).Unix())
			api := newFakeQueryAPI(t, func(f url.Values) (int, string) {
				if f.Get("query") == "held_metric > 0" {
					return vectorAnswer(f, "1", map[string]string{"__name__": "held_metric", "job": "api"})
				}
				return matrixAnswer(forStateSeries(now, activeAt)...)
			})
			dir := t.TempDir()
			writeFile(t, dir, "rules.yaml", heldRules)
			cfg := testRulerConfig(t, dir, api, &Alertmanagers{})
			cfg.RestoreIgnored = tc.ignored
			if tc.stateless {
				rwc, err := config.Load("remote_write:\n- url: "+newRemoteWriteReceiver(t).URL+"/api/v1/write\n", discardLogger())
				if err != nil {
					t.Fatal(err)
				}
				cfg.RemoteWrite = rwc
			}
			r, _ := startRuler(t, cfg)
			held := func() *rules.Alert {
				for _, ar := range r.Manager().AlertingRules() {
					if as := ar.ActiveAlerts(); len(as) == 1 {
						return as[0]
					}
				}
				return nil
			}
			if !tc.restored {
				waitFor(t, 10*time.Second, "restore done and evaluations after it", func() bool {
					return api.count() >= 6 && held() != nil
				})
				if a := held(); a.State != rules.StatePending || a.ActiveAt.Unix() < now.Unix()-1 {
					t.Fatalf("alert %v active since %v: want pending since the ruler started", a.State, a.ActiveAt)
				}
				return
			}
			waitFor(t, 10*time.Second, "the alert firing", func() bool { a := held(); return a != nil && a.State == rules.StateFiring })
			if a := held(); a.ActiveAt.Unix() != int64(activeAt) {
				t.Errorf("active since %v, want %v as restored", a.ActiveAt, time.Unix(int64(activeAt), 0))
			}
		})
	}
}
