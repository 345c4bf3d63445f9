package rule

import (
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const fourRules = `groups:
- name: four
  interval: 100ms
  rules:
  - {record: a:sum, expr: sum(a)}
  - {record: b:sum, expr: sum(b)}
  - {record: c:sum, expr: sum(c)}
  - {record: d:sum, expr: sum(d)}
`

// With --rule-concurrent-evaluation above 1 the independent rules of a group are
// evaluated at once; by default one after the other.
func TestRulerConcurrentEvaluation(t *testing.T) {
	for _, tc := range []struct {
		evals      int
		concurrent bool
	}{{1, false}, {4, true}} {
		api := newSlowQueryAPI(t, 200*time.Millisecond, func(f url.Values) (int, string) { return vectorAnswer(f, "1", map[string]string{}) })
		dir := t.TempDir()
		writeFile(t, dir, "rules.yaml", fourRules)
		cfg := testRulerConfig(t, dir, api, &Alertmanagers{})
		cfg.ConcurrentEvals = tc.evals
		_, stop := startRuler(t, cfg)
		waitFor(t, 10*time.Second, "two evaluations of the group", func() bool { return api.count() >= 8 })
		stop()
		api.mu.Lock()
		most := api.maxInFlight
		api.mu.Unlock()
		if (tc.concurrent && most < 2) || (!tc.concurrent && most != 1) {
			t.Errorf("--rule-concurrent-evaluation=%d: at most %d queries at once", tc.evals, most)
		}
	}
}

// --tsdb.no-lockfile reaches the ruler's TSDB: without it the data directory holds a lock
// file.
func TestRulerLockfile(t *testing.T) {
	for _, noLock := range []bool{false, true} {
		api := rulerQueryAPI(t)
		dir := t.TempDir()
		writeFile(t, dir, "rules.yaml", rulerRules)
		cfg := testRulerConfig(t, dir, api, &Alertmanagers{})
		cfg.NoLockfile, cfg.UncompressedWAL = noLock, noLock
		_, stop := startRuler(t, cfg)
		_, err := os.Stat(filepath.Join(cfg.DataDir, "lock"))
		if locked := err == nil; locked == noLock {
			t.Errorf("NoLockfile=%v: lock file present=%v", noLock, locked)
		}
		stop()
	}
}
