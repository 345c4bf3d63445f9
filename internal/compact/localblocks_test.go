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

// TestLocalBlocksReused compacts 48h of 2h blocks (and one more) into 8h blocks, those into a 2d block,
// and downsamples it, with and without kept local blocks. Keeping them must change
// nothing in the bucket but what is downloaded: the 8h blocks and the 2d block are read
// from disk, and nothing is left under data-dir/local afterwards.
func TestLocalBlocksReused(t *testing.T) {
	ctx := context.Background()
	sp := func(i int64) spec {
		return spec{mint: base + i*2*hour, maxt: base + (i+1)*2*hour, series: 3, step: minute,
			labels: map[string]string{"cluster": "a"}, source: block.SourceSidecar}
	}
	run := func(keep int64) (*Compactor, objstore.Bucket) {
		bkt := objstore.NewInMemBucket()
		var specs []spec
		for i := range int64(25) { // the newest 2h block lets the first 2d range close

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
				if m.MaxTime-m.MinTime == 48*hour {
					twoDays = append(twoDays, m)
				}
			}
		}
		if len(raw) != 2 || len(twoDays) != 1 {
			t.Fatalf("keep=%d: raw blocks %v, want a 2d block and the newest 2h block", keep, describeMetas(raw))
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

	// 6 compactions of four 2h blocks, then one of the six 8h blocks, which are reused,
	// and the 2d block is reused by downsampling.
	if got := testutil.ToFloat64(with.metrics.localBlocksUsed); got != 7 {
		t.Errorf("local blocks used = %v, want 7 (six 8h blocks, the 2d block)", got)
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
