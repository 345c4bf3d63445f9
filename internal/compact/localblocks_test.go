package compact

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
)

// TestLocalBlocksReused compacts 40h of 2h blocks (a 2d window that is not complete, but
// ends before newer blocks) into 8h blocks, those into one 40h block, and downsamples
// it, with and without kept local blocks. Keeping them must change nothing in the bucket
// but what is downloaded: the 8h blocks and the 40h block are read from disk, and
// nothing is left under data-dir/local afterwards.
func TestLocalBlocksReused(t *testing.T) {
	ctx := context.Background()
	sp := func(i int64) spec {
		return spec{mint: base + i*2*hour, maxt: base + (i+1)*2*hour, series: 3, step: minute,
			labels: map[string]string{"cluster": "a"}, source: block.SourceSidecar}
	}
	run := func(keep int64) (*Compactor, objstore.Bucket) {
		bkt := objstore.NewInMemBucket()
		var specs []spec
		for i := range int64(26) {
			if i >= 20 && i < 24 {
				continue // hours 40-48 are missing; blocks 24 and 25 start the next 2d window
			}
			specs = append(specs, sp(i))
			upload(t, bkt, sp(i))
		}
		c := newCompactor(t, bkt, Config{KeepLocalBytes: keep})
		if err := c.Iteration(ctx); err != nil {
			t.Fatal(err)
		}
		var raw, twoDays []*block.Meta
		for _, m := range visible(t, bkt) {
			if m.Thanos.Downsample.Resolution == block.ResolutionRaw {
				raw = append(raw, m)
				if m.MaxTime-m.MinTime == 40*hour {
					twoDays = append(twoDays, m)
				}
			}
		}
		if len(raw) != 3 || len(twoDays) != 1 {
			t.Fatalf("keep=%d: raw blocks %v, want a 40h block and the two newest 2h blocks", keep, describeMetas(raw))
		}
		equalSeries(t, readSeries(t, bkt, raw), expectSeries(specs...))
		if entries, err := os.ReadDir(filepath.Join(c.cfg.DataDir, localDirname)); err == nil && len(entries) > 0 {
			t.Errorf("keep=%d: %d entries left under %s after the iteration", keep, len(entries), localDirname)
		}
		return c, bkt
	}

	without, bktWithout := run(0)
	with, bktWith := run(1 << 30)
	tiny, _ := run(1)

	// 5 compactions of four 2h blocks, then one of the five 8h blocks, which are reused,
	// and the 40h block is reused by downsampling.
	if got := testutil.ToFloat64(with.metrics.localBlocksUsed); got != 6 {
		t.Errorf("local blocks used = %v, want 6 (five 8h blocks, the 40h block)", got)
	}
	for name, c := range map[string]*Compactor{"without": without, "tiny limit": tiny} {
		if got := testutil.ToFloat64(c.metrics.localBlocksUsed); got != 0 {
			t.Errorf("%s: local blocks used = %v, want 0", name, got)
		}
	}
	dlWith, dlWithout := testutil.ToFloat64(with.metrics.bytesDownloaded), testutil.ToFloat64(without.metrics.bytesDownloaded)
	if dlWith >= dlWithout/2 {
		t.Errorf("downloaded %v bytes with local blocks, %v without: want less than half", dlWith, dlWithout)
	}
	// The downsampled blocks hold the same samples either way.
	down := func(bkt objstore.Bucket) []*block.Meta {
		var out []*block.Meta
		for _, m := range visible(t, bkt) {
			if m.Thanos.Downsample.Resolution == block.Resolution5m {
				out = append(out, m)
			}
		}
		return out
	}
	a, b := down(bktWith), down(bktWithout)
	if len(a) != 1 || len(b) != 1 || a[0].Stats.NumSamples != b[0].Stats.NumSamples || a[0].Stats.NumSamples == 0 {
		t.Fatalf("5m blocks with local blocks %v, without %v: want one each with the same samples", describeMetas(a), describeMetas(b))
	}
}

func describeMetas(ms []*block.Meta) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.ULID.String())
	}
	return out
}
