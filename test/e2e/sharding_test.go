package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// Sharding (docs/sharding.md): four real Prometheus servers form two shards of an HA
// pair each, external labels {shard="0"|"1", replica="a"|"b"}. All four list the same
// targets in job "sharded" and keep, through hashmod relabeling on __address__, only
// those of their shard. Beside that, each pair scrapes a job of its own (functional
// sharding): shard 0 "frontend", shard 1 "backend". A sidecar runs beside each
// Prometheus and one `vigil query --query.replica-label=replica` reads all four.

const (
	shardModulus        = 2
	deadTargetsPerShard = 4 // plus the four Prometheus servers, wherever they hash to
	functionalTargets   = 3 // per functional job
)

var shardReplicas = []string{"a", "b"}

type shardingFixture struct {
	prom [shardModulus][2]*e2eutil.Prometheus // [shard][replica]
	side [shardModulus][2]*e2eutil.Vigil
	q    *e2eutil.Vigil
	// shardOf maps each target of job "sharded" to its shard ("0" or "1").
	shardOf map[string]string
	// functional maps "frontend" and "backend" to their targets; frontend is shard 0's.
	functional map[string][]string
	// configured is when the last Prometheus reloaded its final configuration, and
	// queryReady when the querier saw all four sidecars healthy.
	configured, queryReady time.Time
}

// sharded returns the targets of job "sharded", sorted.
func (f *shardingFixture) sharded() []string {
	out := make([]string, 0, len(f.shardOf))
	for a := range f.shardOf {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// deadTargets returns n loopback addresses where nothing listens (scraping them yields
// up=0) for which keep reports true.
func deadTargets(t *testing.T, n int, keep func(string) bool) []string {
	t.Helper()
	var out []string
	for range 1000 {
		if len(out) == n {
			return out
		}
		if a := e2eutil.FreeAddr(t); keep(a) {
			out = append(out, a)
		}
	}
	t.Fatalf("found only %d of %d target addresses", len(out), n)
	return nil
}

func shardExtLabels(shard, replica int) map[string]string {
	return map[string]string{"shard": strconv.Itoa(shard), replicaLabel: shardReplicas[replica]}
}

// shardConfig is the configuration of a Prometheus of shard s: job "sharded" over all
// targets with its hashmod filter, and its pair's functional job.
func shardConfig(t *testing.T, s, r int, sharded []string, funcJob string, funcTargets []string) e2eutil.PrometheusConfig {
	t.Helper()
	y, err := e2eutil.ScrapeConfigsYAML(
		e2eutil.ShardScrapeConfig{JobName: "sharded", Targets: sharded, Modulus: shardModulus, Shard: uint64(s)},
		e2eutil.ShardScrapeConfig{JobName: funcJob, Targets: funcTargets},
	)
	if err != nil {
		t.Fatal(err)
	}
	return e2eutil.PrometheusConfig{ExternalLabels: shardExtLabels(s, r), ScrapeInterval: time.Second, NoSelfScrape: true, ExtraYAML: y}
}

func startShardingFixture(t *testing.T) *shardingFixture {
	t.Helper()
	f := &shardingFixture{shardOf: map[string]string{}, functional: map[string][]string{}}
	// Dead targets, as many in each shard.
	for s := range shardModulus {
		for _, a := range deadTargets(t, deadTargetsPerShard, func(a string) bool { return e2eutil.HashMod(a, shardModulus) == uint64(s) }) {
			f.shardOf[a] = strconv.Itoa(s)
		}
	}
	all := func(string) bool { return true }
	f.functional["frontend"] = deadTargets(t, functionalTargets, all)
	f.functional["backend"] = deadTargets(t, functionalTargets, all)
	funcJob := [shardModulus]string{"frontend", "backend"}

	// Start all four with the dead targets, then add the four Prometheus servers
	// themselves to job "sharded" (their ports are known only now) and reload.
	for s := range shardModulus {
		for r := range shardReplicas {
			f.prom[s][r] = e2eutil.StartPrometheus(t, shardConfig(t, s, r, f.sharded(), funcJob[s], f.functional[funcJob[s]]))
		}
	}
	for s := range shardModulus {
		for r := range shardReplicas {
			a := f.prom[s][r].Addr
			f.shardOf[a] = strconv.FormatUint(e2eutil.HashMod(a, shardModulus), 10)
		}
	}
	for s := range shardModulus {
		for r, p := range f.prom[s] {
			if err := p.WriteConfig(shardConfig(t, s, r, f.sharded(), funcJob[s], f.functional[funcJob[s]])); err != nil {
				t.Fatal(err)
			}
			if err := p.Reload(); err != nil {
				t.Fatal(err)
			}
		}
	}
	f.configured = time.Now()

	var endpoints []string
	for s := range shardModulus {
		for r, p := range f.prom[s] {
			f.side[s][r] = e2eutil.StartVigil(t, "sidecar",
				"--prometheus.url="+p.URL, "--tsdb.path="+p.DataDir,
				"--prometheus.get_config_interval=1s", "--prometheus.ready_timeout=30s")
		}
	}
	for s := range shardModulus {
		for _, sc := range f.side[s] {
			sc.MustWaitReady(t)
			endpoints = append(endpoints, sc.GRPCAddr)
		}
	}
	args := []string{"query", "--query.replica-label=" + replicaLabel}
	for _, e := range endpoints {
		args = append(args, "--endpoint="+e)
	}
	f.q = e2eutil.StartVigil(t, args...)
	f.q.MustWaitReady(t)
	e2eutil.Poll(t, 20*time.Second, 200*time.Millisecond, func() error {
		return storesHealthy(f.q.HTTPURL, "sidecar", endpoints...)
	})
	f.queryReady = time.Now()
	return f
}

// upTargets returns the series of an instant query of sel at now.
func upTargets(base, sel string, extra url.Values) ([]promSeries, error) {
	p := url.Values{"query": {sel}}
	for k, v := range extra {
		p[k] = v
	}
	r, err := callAPI(base, "/api/v1/query", p)
	if err != nil {
		return nil, err
	}
	if err := r.ok(); err != nil {
		return nil, err
	}
	return r.series("vector")
}

// checkTargets returns an error unless vec holds each of targets exactly `copies` times
// (once per replica without deduplication), each with job, its shard label, and a
// replica label exactly when copies > 1.
func checkTargets(vec []promSeries, job string, targets []string, shardOf func(string) string, copies int) error {
	seen := map[string][]string{} // instance -> replicas
	for _, s := range vec {
		m := s.Metric
		inst := m["instance"]
		if !slices.Contains(targets, inst) {
			return fmt.Errorf("unexpected series %s", metricKey(m))
		}
		if m["job"] != job || m["shard"] != shardOf(inst) || m["__name__"] != "up" {
			return fmt.Errorf("series %s: want job %q and shard %q", metricKey(m), job, shardOf(inst))
		}
		wantLabels := 4
		if copies > 1 {
			wantLabels++
			if !slices.Contains(shardReplicas, m[replicaLabel]) {
				return fmt.Errorf("series %s has no replica label", metricKey(m))
			}
		} else if _, ok := m[replicaLabel]; ok {
			return fmt.Errorf("series %s kept its replica label", metricKey(m))
		}
		if len(m) != wantLabels {
			return fmt.Errorf("series %s: want %d labels", metricKey(m), wantLabels)
		}
		seen[inst] = append(seen[inst], m[replicaLabel])
	}
	for _, inst := range targets {
		reps := seen[inst]
		slices.Sort(reps)
		if len(slices.Compact(reps)) != copies || len(reps) != copies {
			return fmt.Errorf("target %s: %d series (replicas %q), want %d; %d series in all for %d targets", inst, len(seen[inst]), seen[inst], copies, len(vec), len(targets))
		}
	}
	return nil
}

func TestSharding(t *testing.T) {
	t.Parallel()
	f := startShardingFixture(t)
	targets := f.sharded()
	shardOf := func(a string) string { return f.shardOf[a] }
	perShard := map[string][]string{}
	for _, a := range targets {
		perShard[f.shardOf[a]] = append(perShard[f.shardOf[a]], a)
	}
	for s := range shardModulus {
		t.Logf("shard %d keeps %d of the %d targets of job sharded: %v", s, len(perShard[strconv.Itoa(s)]), len(targets), perShard[strconv.Itoa(s)])
	}

	// Complete: every target once deduplicated, and from both replicas without.
	var dedupAt time.Time
	e2eutil.Poll(t, 60*time.Second, 250*time.Millisecond, func() error {
		vec, err := upTargets(f.q.HTTPURL, `up{job="sharded"}`, nil)
		if err != nil {
			return err
		}
		if err := checkTargets(vec, "sharded", targets, shardOf, 1); err != nil {
			return err
		}
		if dedupAt.IsZero() {
			dedupAt = time.Now()
		}
		vec, err = upTargets(f.q.HTTPURL, `up{job="sharded"}`, url.Values{"dedup": {"false"}})
		if err != nil {
			return err
		}
		return checkTargets(vec, "sharded", targets, shardOf, 2)
	})
	t.Logf("first complete deduplicated answer %s after the last Prometheus reload (%s after the querier saw all four sidecars); from both replicas of each shard after %s",
		dedupAt.Sub(f.configured).Round(time.Millisecond), dedupAt.Sub(f.queryReady).Round(time.Millisecond), time.Since(f.configured).Round(time.Millisecond))

	t.Run("HashmodDedup", func(t *testing.T) {
		vec, err := upTargets(f.q.HTTPURL, `up{job="sharded"}`, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkTargets(vec, "sharded", targets, shardOf, 1); err != nil {
			t.Error(err)
		}
		// PromQL over the union: count per shard matches the hashmod split.
		_, counts := instant(t, f.q.HTTPURL, `count by (shard) (up{job="sharded"})`, time.Time{}, nil)
		got := map[string]string{}
		for _, s := range counts {
			got[s.Metric["shard"]] = string(s.Value[1])
		}
		for s, l := range perShard {
			if want := strconv.Quote(strconv.Itoa(len(l))); got[s] != want {
				t.Errorf("count for shard %s = %s, want %s", s, got[s], want)
			}
		}
		// The Prometheus servers are up, the dead targets are not.
		_, upOnes := instant(t, f.q.HTTPURL, `up{job="sharded"} == 1`, time.Time{}, nil)
		if len(upOnes) != 4 {
			t.Errorf("%d targets up, want the 4 Prometheus servers: %v", len(upOnes), metricKeys(upOnes))
		}
	})

	t.Run("HashmodNoDedup", func(t *testing.T) {
		vec, err := upTargets(f.q.HTTPURL, `up{job="sharded"}`, url.Values{"dedup": {"false"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := checkTargets(vec, "sharded", targets, shardOf, 2); err != nil {
			t.Error(err)
		}
	})

	t.Run("Federate", func(t *testing.T) {
		start := time.Now()
		fams, body, err := federate(f.q.HTTPURL, url.Values{"match[]": {`up{job="sharded"}`}}, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("/federate of %d targets: %d bytes of text in %s", len(targets), len(body), time.Since(start).Round(time.Millisecond))
		if n := strings.Count(body, "# TYPE up untyped"); n != 1 {
			t.Errorf("family up written %d times:\n%s", n, body)
		}
		if err := checkTargets(familySeries(fams), "sharded", targets, shardOf, 1); err != nil {
			t.Errorf("%v\n%s", err, body)
		}
		// dedup=false, as on the query API; and protobuf for a scraper that asks for it.
		fams, _, err = federate(f.q.HTTPURL, url.Values{"match[]": {`up{job="sharded"}`}, "dedup": {"false"}},
			"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited")
		if err != nil {
			t.Fatal(err)
		}
		if err := checkTargets(familySeries(fams), "sharded", targets, shardOf, 2); err != nil {
			t.Error(err)
		}
	})

	t.Run("UpperPrometheusFederates", func(t *testing.T) {
		// A Prometheus above the querier federates the global, deduplicated view.
		y, err := e2eutil.ScrapeConfigsYAML(e2eutil.ShardScrapeConfig{
			JobName: "federate", Targets: []string{f.q.HTTPAddr}, MetricsPath: "/federate",
			Params: map[string][]string{"match[]": {`up{job="sharded"}`, `up{job=~"frontend|backend"}`}}, HonorLabels: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		upper := e2eutil.StartPrometheus(t, e2eutil.PrometheusConfig{ScrapeInterval: time.Second, NoSelfScrape: true, ExtraYAML: y})
		start := time.Now()
		e2eutil.Poll(t, 30*time.Second, 250*time.Millisecond, func() error {
			vec, err := upTargets(upper.URL, `up{job="sharded"}`, nil)
			if err != nil {
				return err
			}
			return checkTargets(vec, "sharded", targets, shardOf, 1)
		})
		t.Logf("upper Prometheus had every target once %s after it started", time.Since(start).Round(time.Millisecond))
		vec, err := upTargets(upper.URL, `up{job=~"frontend|backend"}`, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(vec) != 2*functionalTargets {
			t.Errorf("upper Prometheus: %d functional series, want %d: %v", len(vec), 2*functionalTargets, metricKeys(vec))
		}
	})

	t.Run("Functional", func(t *testing.T) {
		// Each pair scrapes its own job; the querier answers with the union.
		funcShard := map[string]string{"frontend": "0", "backend": "1"}
		for job, tg := range f.functional {
			ofJob := func(string) string { return funcShard[job] }
			e2eutil.Poll(t, 30*time.Second, 250*time.Millisecond, func() error {
				vec, err := upTargets(f.q.HTTPURL, fmt.Sprintf("up{job=%q}", job), nil)
				if err != nil {
					return err
				}
				if err := checkTargets(vec, job, tg, ofJob, 1); err != nil {
					return err
				}
				vec, err = upTargets(f.q.HTTPURL, fmt.Sprintf("up{job=%q}", job), url.Values{"dedup": {"false"}})
				if err != nil {
					return err
				}
				return checkTargets(vec, job, tg, ofJob, 2)
			})
		}
		_, byJob := instant(t, f.q.HTTPURL, `count by (job, shard) (up{job=~"frontend|backend"})`, time.Time{}, nil)
		if got := metricKeys(byJob); !slices.Equal(got, []string{`{job="backend", shard="1"}`, `{job="frontend", shard="0"}`}) {
			t.Errorf("count by (job, shard): %v", got)
		}
		for _, s := range byJob {
			if v := string(s.Value[1]); v != strconv.Quote(strconv.Itoa(functionalTargets)) {
				t.Errorf("%s: %s targets, want %d", metricKey(s.Metric), v, functionalTargets)
			}
		}
	})
}

// federate GETs /federate with the Accept header (text when empty) and decodes the
// answer.
func federate(base string, params url.Values, accept string) ([]*dto.MetricFamily, string, error) {
	req, err := http.NewRequest(http.MethodGet, base+"/federate?"+params.Encode(), nil)
	if err != nil {
		return nil, "", err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, string(b), fmt.Errorf("/federate: HTTP %d: %.300s", resp.StatusCode, b)
	}
	dec := expfmt.NewDecoder(bytes.NewReader(b), expfmt.ResponseFormat(resp.Header))
	var fams []*dto.MetricFamily
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); errors.Is(err, io.EOF) {
			return fams, string(b), nil
		} else if err != nil {
			return nil, string(b), fmt.Errorf("decode /federate (%s): %w", resp.Header.Get("Content-Type"), err)
		}
		fams = append(fams, mf)
	}
}

// familySeries turns metric families into series as the query API returns them, so that
// checkTargets reads both.
func familySeries(fams []*dto.MetricFamily) []promSeries {
	var out []promSeries
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			labels := map[string]string{"__name__": f.GetName()}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			out = append(out, promSeries{Metric: labels})
		}
	}
	return out
}
