package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/rulesapi"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/rulespb"
	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// rulesFile is loaded by both replicas: an alert that fires at its first evaluation and
// a recording rule.
const rulesFile = `groups:
- name: example
  interval: 1s
  rules:
  - alert: AlwaysFiring
    expr: vector(1) > 0
    labels:
      severity: page
    annotations:
      summary: always firing
  - record: job:up:sum
    expr: sum by (job) (up)
`

// Rules API JSON as the querier and Prometheus write it.
type rulesData struct {
	Groups []struct {
		Name  string      `json:"name"`
		File  string      `json:"file"`
		Rules []rulesRule `json:"rules"`
	} `json:"groups"`
}

type rulesRule struct {
	Type   string            `json:"type"`
	Name   string            `json:"name"`
	State  string            `json:"state"`
	Health string            `json:"health"`
	Labels map[string]string `json:"labels"`
	Alerts []rulesAlert      `json:"alerts"`
}

type rulesAlert struct {
	Labels   map[string]string `json:"labels"`
	State    string            `json:"state"`
	ActiveAt string            `json:"activeAt"`
	Value    string            `json:"value"`
}

func getRules(base string, params url.Values) (rulesData, apiResult, error) {
	var d rulesData
	r, err := callAPI(base, "/api/v1/rules", params)
	if err == nil {
		err = r.ok()
	}
	if err == nil {
		err = json.Unmarshal(r.Data, &d)
	}
	return d, r, err
}

func getAlerts(base string, params url.Values) ([]rulesAlert, apiResult, error) {
	var d struct {
		Alerts []rulesAlert `json:"alerts"`
	}
	r, err := callAPI(base, "/api/v1/alerts", params)
	if err == nil {
		err = r.ok()
	}
	if err == nil {
		err = json.Unmarshal(r.Data, &d)
	}
	return d.Alerts, r, err
}

func TestRulesAPI(t *testing.T) {
	t.Parallel()
	var (
		proms [2]*e2eutil.Prometheus
	)
	// Prometheus reports rule files by absolute path, and groups are merged by (file,
	// name): both replicas load the same file, as HA replicas deployed alike do.
	rulesPath := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(rulesPath, []byte(rulesFile), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range proms {
		proms[i] = e2eutil.StartPrometheus(t, e2eutil.PrometheusConfig{
			ExternalLabels: map[string]string{"cluster": "test", replicaLabel: fmt.Sprintf("r%d", i)},
			ScrapeInterval: time.Second,
			ExtraYAML:      "rule_files:\n- " + rulesPath,
		})
	}
	side, q := sidecarsAndQuerier(t, proms)

	// Wait until both replicas have evaluated both rules and the alert fires in both.
	e2eutil.Poll(t, 30*time.Second, 250*time.Millisecond, func() error {
		d, r, err := getRules(q.HTTPURL, url.Values{"dedup": {"false"}})
		if err != nil {
			return err
		}
		if len(r.Warnings) > 0 {
			return fmt.Errorf("warnings %q", r.Warnings)
		}
		if len(d.Groups) != 1 || len(d.Groups[0].Rules) != 4 {
			return fmt.Errorf("want 1 group with 4 rules (2 per replica), got %.800s", r.Data)
		}
		for _, rule := range d.Groups[0].Rules {
			if rule.Health != "ok" || rule.Type == "alerting" && (rule.State != "firing" || len(rule.Alerts) != 1) {
				return fmt.Errorf("rules not evaluated yet: %.800s", r.Data)
			}
		}
		return nil
	})

	t.Run("GRPCFromSidecar", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		info, err := side[0].StoreClient(t, "").Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.GetRules() == nil {
			t.Fatalf("sidecar Info does not advertise rules: %v", info)
		}
		c := rulespb.NewRulesClient(side[0].GRPCConn(t))
		stream, err := c.Rules(ctx, &rulespb.RulesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		groups, warnings, err := rulesapi.Collect(stream)
		if err != nil || len(warnings) > 0 {
			t.Fatalf("Rules: %v, warnings %q", err, warnings)
		}
		if len(groups) != 1 || groups[0].GetName() != "example" || groups[0].GetFile() != rulesPath ||
			len(groups[0].GetRules()) != 2 || groups[0].GetInterval() != 1 {
			t.Fatalf("groups %v", groups)
		}
		a, rec := groups[0].GetRules()[0].GetAlert(), groups[0].GetRules()[1].GetRecording()
		if a == nil || rec == nil {
			t.Fatalf("want the alert then the recording rule, got %v", groups[0].GetRules())
		}
		wantRule := map[string]string{"cluster": "test", replicaLabel: "r0", "severity": "page"}
		if got := storeapi.LabelsFromProto(a.GetLabels().GetLabels()).Map(); !maps.Equal(got, wantRule) {
			t.Errorf("alert rule labels %v, want %v", got, wantRule)
		}
		if got := storeapi.LabelsFromProto(rec.GetLabels().GetLabels()).Map(); !maps.Equal(got, map[string]string{"cluster": "test", replicaLabel: "r0"}) {
			t.Errorf("recording rule labels %v", got)
		}
		if a.GetState() != rulespb.AlertState_FIRING || a.GetQuery() != "vector(1) > 0" || len(a.GetAlerts()) != 1 {
			t.Fatalf("alert %v", a)
		}
		in := a.GetAlerts()[0]
		wantAlert := map[string]string{"alertname": "AlwaysFiring", "cluster": "test", replicaLabel: "r0", "severity": "page"}
		if got := storeapi.LabelsFromProto(in.GetLabels().GetLabels()).Map(); !maps.Equal(got, wantAlert) {
			t.Errorf("alert labels %v, want %v", got, wantAlert)
		}
		if in.GetState() != rulespb.AlertState_FIRING || in.GetActiveAt() == nil || in.GetValue() != "1e+00" {
			t.Errorf("alert instance %v", in)
		}

		// Filters: match[] on an external label, and type.
		for _, tc := range []struct {
			req   *rulespb.RulesRequest
			rules int
		}{
			{&rulespb.RulesRequest{MatcherString: []string{`{replica="r0",severity="page"}`}}, 1},
			{&rulespb.RulesRequest{MatcherString: []string{`{replica="r1"}`}}, 0},
			{&rulespb.RulesRequest{Type: rulespb.RulesRequest_RECORD}, 1},
		} {
			stream, err := c.Rules(ctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			groups, _, err := rulesapi.Collect(stream)
			n := 0
			for _, g := range groups {
				n += len(g.GetRules())
			}
			if err != nil || n != tc.rules {
				t.Errorf("%v: %d rules (err %v), want %d", tc.req, n, err, tc.rules)
			}
		}
	})

	t.Run("QueryRulesDedup", func(t *testing.T) {
		d, r, err := getRules(q.HTTPURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Groups) != 1 || d.Groups[0].Name != "example" || len(d.Groups[0].Rules) != 2 {
			t.Fatalf("want one group with both rules once, got %.1000s", r.Data)
		}
		a, rec := d.Groups[0].Rules[0], d.Groups[0].Rules[1]
		if a.Type != "alerting" || a.Name != "AlwaysFiring" || a.State != "firing" || rec.Type != "recording" || rec.Name != "job:up:sum" {
			t.Fatalf("rules %.1000s", r.Data)
		}
		if !maps.Equal(a.Labels, map[string]string{"cluster": "test", "severity": "page"}) || !maps.Equal(rec.Labels, map[string]string{"cluster": "test"}) {
			t.Errorf("replica label not removed: %v %v", a.Labels, rec.Labels)
		}
		if len(a.Alerts) != 1 || a.Alerts[0].State != "firing" || a.Alerts[0].Labels[replicaLabel] != "" {
			t.Errorf("alerts of the merged rule %+v", a.Alerts)
		}
		// Prometheus's filters through the querier.
		for _, tc := range []struct {
			params url.Values
			names  []string
		}{
			{url.Values{"type": {"alert"}}, []string{"AlwaysFiring"}},
			{url.Values{"type": {"record"}}, []string{"job:up:sum"}},
			{url.Values{"rule_name[]": {"job:up:sum"}}, []string{"job:up:sum"}},
			{url.Values{"rule_group[]": {"nope"}}, nil},
			{url.Values{"match[]": {`{severity="page"}`}}, []string{"AlwaysFiring"}},
			{url.Values{"match[]": {`{replica="r1"}`}}, []string{"AlwaysFiring", "job:up:sum"}},
		} {
			d, r, err := getRules(q.HTTPURL, tc.params)
			if err != nil {
				t.Fatalf("%v: %v", tc.params, err)
			}
			var names []string
			for _, g := range d.Groups {
				for _, rule := range g.Rules {
					names = append(names, rule.Name)
				}
			}
			if !slices.Equal(names, tc.names) {
				t.Errorf("%v: rules %v, want %v (%.600s)", tc.params, names, tc.names, r.Data)
			}
		}
		d, r, err = getRules(q.HTTPURL, url.Values{"exclude_alerts": {"true"}})
		if err != nil || len(d.Groups) != 1 || len(d.Groups[0].Rules[0].Alerts) != 0 {
			t.Errorf("exclude_alerts: %v %.600s", err, r.Data)
		}
	})

	t.Run("QueryAlerts", func(t *testing.T) {
		alerts, r, err := getAlerts(q.HTTPURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"alertname": "AlwaysFiring", "cluster": "test", "severity": "page"}
		if len(alerts) != 1 || alerts[0].State != "firing" || !maps.Equal(alerts[0].Labels, want) || alerts[0].ActiveAt == "" {
			t.Fatalf("dedup: want one firing alert %v, got %.800s", want, r.Data)
		}
		alerts, r, err = getAlerts(q.HTTPURL, url.Values{"dedup": {"false"}})
		if err != nil {
			t.Fatal(err)
		}
		var replicas []string
		for _, a := range alerts {
			replicas = append(replicas, a.Labels[replicaLabel])
		}
		if len(alerts) != 2 || !slices.Equal(replicas, []string{"r0", "r1"}) {
			t.Fatalf("dedup=false: want r0's and r1's alert, got %.800s", r.Data)
		}
	})

	t.Run("OneReplicaDown", func(t *testing.T) {
		if err := proms[1].Stop(e2eutil.DefaultStopTimeout); err != nil {
			t.Fatal(err)
		}
		// Until the querier's probe notices, the failure is a warning of the request
		// (partial response); afterwards the unhealthy endpoint is. Either way the
		// healthy replica's rules answer, with a warning.
		e2eutil.Poll(t, 20*time.Second, 250*time.Millisecond, func() error {
			d, r, err := getRules(q.HTTPURL, nil)
			if err != nil {
				return err
			}
			if len(r.Warnings) == 0 || len(d.Groups) != 1 || len(d.Groups[0].Rules) != 2 {
				return fmt.Errorf("want both rules once and a warning, got %s", r)
			}
			return nil
		})
		alerts, r, err := getAlerts(q.HTTPURL, url.Values{"dedup": {"false"}})
		if err != nil || len(alerts) != 1 || alerts[0].Labels[replicaLabel] != "r0" {
			t.Fatalf("want r0's alert only: %v %s", err, r)
		}
	})
}
