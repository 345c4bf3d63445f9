package buckettool

import (
	"bytes"
	"context"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
)

func verify(t *testing.T, bkt objstore.Bucket, o VerifyOptions) ([]Issue, string) {
	t.Helper()
	var out bytes.Buffer
	issues, err := Verify(context.Background(), &out, bkt, o, discard())
	if err != nil {
		t.Fatal(err)
	}
	return issues, out.String()
}

func kinds(issues []Issue) []string {
	var out []string
	for _, i := range issues {
		out = append(out, i.Kind)
	}
	slices.Sort(out)
	return out
}

func TestVerify(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	// A healthy bucket: two adjacent raw blocks of eu1, their 5m version, and a level-2
	// us1 block whose sources are marked for deletion (they overlap it, as after every
	// compaction until the compactor deletes them).
	x1 := upload(t, bkt, spec{mint: base, maxt: base + 2*hour, labels: eu1})
	x2 := upload(t, bkt, spec{mint: base + 2*hour, maxt: base + 4*hour, labels: eu1})
	upload(t, bkt, spec{mint: base, maxt: base + 4*hour, labels: eu1, level: 2, resolution: block.Resolution5m,
		sources: []ulid.ULID{x1.ULID, x2.ULID}, source: block.SourceCompactor})
	s1 := upload(t, bkt, spec{mint: base, maxt: base + 2*hour, labels: us1})
	s2 := upload(t, bkt, spec{mint: base + 2*hour, maxt: base + 4*hour, labels: us1})
	y := upload(t, bkt, spec{mint: base, maxt: base + 4*hour, labels: us1, level: 2, sources: []ulid.ULID{s1.ULID, s2.ULID},
		source: block.SourceCompactor})
	markDeleted(t, bkt, s1.ULID, time.Now())
	markDeleted(t, bkt, s2.ULID, time.Now())
	partialBlock(t, bkt)

	issues, out := verify(t, bkt, VerifyOptions{})
	if len(issues) != 0 || !strings.Contains(out, "verified 4 blocks") || !strings.Contains(out, "2 marked for deletion and 1 partial uploads skipped): 0 issues") {
		t.Fatalf("healthy bucket: %v\n%s", issues, out)
	}

	// An overlapping raw block of eu1.
	o := upload(t, bkt, spec{mint: base + hour, maxt: base + 3*hour, labels: eu1})
	issues, out = verify(t, bkt, VerifyOptions{})
	if len(issues) != 1 || issues[0].Kind != IssueOverlap || len(issues[0].Blocks) != 3 || !slices.Contains(issues[0].Blocks, o.ULID) {
		t.Fatalf("overlap: %v\n%s", issues, out)
	}
	if !strings.Contains(out, `overlapped_blocks: group {cluster="eu1", replica="a"} raw: 3 blocks overlap`) {
		t.Errorf("overlap output:\n%s", out)
	}

	// s1 loses its deletion mark: its data is in y twice (and it overlaps y).
	if err := bkt.Delete(context.Background(), path.Join(s1.ULID.String(), block.DeletionMarkFilename)); err != nil {
		t.Fatal(err)
	}
	issues, out = verify(t, bkt, VerifyOptions{})
	if got := kinds(issues); !slices.Equal(got, []string{IssueDuplicate, IssueOverlap, IssueOverlap}) {
		t.Fatalf("duplicate: kinds %v\n%s", got, out)
	}
	i := slices.IndexFunc(issues, func(i Issue) bool { return i.Kind == IssueDuplicate })
	if !slices.Equal(issues[i].Blocks, []ulid.ULID{s1.ULID, y.ULID}) || !strings.Contains(issues[i].Detail, "all its 1 sources are in block "+y.ULID.String()) {
		t.Errorf("duplicate issue: %+v", issues[i])
	}

	// Only the checks asked for run.
	issues, _ = verify(t, bkt, VerifyOptions{Issues: []string{IssueDuplicate}})
	if got := kinds(issues); !slices.Equal(got, []string{IssueDuplicate}) {
		t.Errorf("--issues=duplicated_compaction: %v", got)
	}
	if _, err := Verify(context.Background(), &bytes.Buffer{}, bkt, VerifyOptions{Issues: []string{"bad"}}, discard()); err == nil {
		t.Error("unknown issue accepted")
	}
}

func TestVerifyIndexAndMeta(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	good := upload(t, bkt, spec{mint: base, maxt: base + 2*hour, labels: eu1, series: 2})
	// meta.json claims a range 10h after the samples: every chunk lies outside it.
	bad := upload(t, bkt, spec{mint: base, maxt: base + 2*hour, labels: us1, shift: 10 * hour})
	corrupt := corruptBlock(t, bkt)

	issues, out := verify(t, bkt, VerifyOptions{})
	if got := kinds(issues); !slices.Equal(got, []string{IssueIndex, IssueMeta}) {
		t.Fatalf("kinds %v\n%s", got, out)
	}
	for _, i := range issues {
		switch i.Kind {
		case IssueIndex:
			if i.Blocks[0] != bad.ULID || !strings.Contains(i.Detail, "outside the block range") || strings.Contains(i.Detail, "vigil-bucket-verify") {
				t.Errorf("index issue: %+v", i)
			}
		case IssueMeta:
			if i.Blocks[0] != corrupt {
				t.Errorf("meta issue: %+v", i)
			}
		}
	}
	// --id restricts the index check.
	issues, _ = verify(t, bkt, VerifyOptions{Issues: []string{IssueIndex}, IDs: []ulid.ULID{good.ULID}})
	if got := kinds(issues); !slices.Equal(got, []string{IssueMeta}) {
		t.Errorf("--id=good: %v", got)
	}
	// A missing index file is an issue too.
	if err := bkt.Delete(context.Background(), path.Join(good.ULID.String(), block.IndexFilename)); err != nil {
		t.Fatal(err)
	}
	issues, _ = verify(t, bkt, VerifyOptions{Issues: []string{IssueIndex}, IDs: []ulid.ULID{good.ULID}})
	if len(issues) != 2 || !strings.Contains(issues[1].Detail, "index file is missing") {
		t.Errorf("missing index: %v", issues)
	}
}
