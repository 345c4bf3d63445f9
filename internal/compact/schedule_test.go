package compact

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
)

// nineBlocks are nine 2h blocks: two 8h compactions, then the newest block stays.
func nineBlocks(labels map[string]string) []spec {
	var out []spec
	for i := range int64(9) {
		out = append(out, spec{mint: base + i*2*hour, maxt: base + (i+1)*2*hour, labels: labels, series: 3})
	}
	return out
}

// TestParallelGroupsNeverShareAGroup compacts four groups of two compactions each, three
// groups at a time, and checks that groups do run in parallel, that no two compactions
// of one group ever run at once, and that every group ends compacted.
func TestParallelGroupsNeverShareAGroup(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	specs := map[string][]spec{}
	for i := range 4 {
		cl := fmt.Sprint(i)
		for _, sp := range nineBlocks(map[string]string{"cluster": cl}) {
			specs[cl] = append(specs[cl], sp)
			upload(t, bkt, sp)
		}
	}
	c := newCompactor(t, bkt, Config{DisableDownsampling: true, CompactConcurrency: 3})
	var (
		mu                sync.Mutex
		running           = map[string]int{}
		total, maxTotal   int
		sameGroup, starts int
		twoRunning        = make(chan struct{})
		closeOnce         sync.Once
	)
	c.testCompactionHook = func(key string) func() {
		mu.Lock()
		running[key]++
		total++
		starts++
		if running[key] > 1 {
			sameGroup++
		}
		maxTotal = max(maxTotal, total)
		if total >= 2 {
			closeOnce.Do(func() { close(twoRunning) })
		}
		mu.Unlock()
		// Give another group the chance to start alongside (bounded: a slow machine
		// must not hang the test).
		select {
		case <-twoRunning:
		case <-time.After(5 * time.Second):
		}
		return func() {
			mu.Lock()
			running[key]--
			total--
			mu.Unlock()
		}
	}
	if err := c.Iteration(ctx); err != nil {
		t.Fatal(err)
	}
	if sameGroup > 0 {
		t.Errorf("%d compactions started while another of the same group was running", sameGroup)
	}
	if maxTotal < 2 {
		t.Errorf("at most %d compactions ran at once, want groups in parallel", maxTotal)
	}
	if starts != 8 {
		t.Errorf("%d compactions, want 8 (two per group)", starts)
	}
	byCluster := map[string][]*block.Meta{}
	for _, m := range visible(t, bkt) {
		byCluster[m.Thanos.Labels["cluster"]] = append(byCluster[m.Thanos.Labels["cluster"]], m)
	}
	for cl, sps := range specs {
		if len(byCluster[cl]) != 3 {
			t.Errorf("group %s: %d visible blocks, want 3 (two 8h, the newest 2h)", cl, len(byCluster[cl]))
		}
		equalSeries(t, readSeries(t, bkt, byCluster[cl]), expectSeries(sps...))
	}
}

// TestParallelFailureKeepsOtherGroupsWork runs two groups at once, one of which fails in
// its second compaction, and checks that the other group's compactions and the failing
// group's first compaction are all uploaded, with their sources marked.
func TestParallelFailureKeepsOtherGroupsWork(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	// A block of the broken group's second 8h window loses a chunk file.
	broken, good := brokenAndGood(t, bkt, nineBlocks, 5)
	c := newCompactor(t, bkt, Config{DisableDownsampling: true, CompactConcurrency: 2})
	err := c.Iteration(ctx)
	if err == nil || IsHalt(err) || !strings.Contains(err.Error(), broken[5].ULID.String()) {
		t.Fatalf("want a non-halt error naming block %s, got %v", broken[5].ULID, err)
	}
	var goodVis, brokenVis []*block.Meta
	for _, m := range visible(t, bkt) {
		if m.Thanos.Labels["cluster"] == "good" {
			goodVis = append(goodVis, m)
		} else {
			brokenVis = append(brokenVis, m)
		}
	}
	if len(goodVis) != 3 {
		t.Errorf("good group: %d visible blocks, want 3", len(goodVis))
	}
	equalSeries(t, readSeries(t, bkt, goodVis), expectSeries(good...))
	// The broken group's first window was compacted before the failure and is kept:
	// one 8h block plus the five 2h blocks after it.
	if len(brokenVis) != 6 {
		t.Errorf("broken group: %d visible blocks, want 6 (its first compaction kept)", len(brokenVis))
	}
	compacted := 0
	for _, m := range brokenVis {
		if m.Compaction.Level > 1 {
			compacted++
		}
	}
	if compacted != 1 {
		t.Errorf("broken group: %d compacted blocks, want 1", compacted)
	}
}
