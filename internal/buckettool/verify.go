package buckettool

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
)

// Issue kinds; the first three are Thanos's names for --issues.
const (
	// IssueOverlap: blocks of one compaction group (same labels and resolution) overlap
	// in time. The compactor halts on them unless vertical compaction is on.
	IssueOverlap = "overlapped_blocks"
	// IssueIndex: a block's index is broken (unsorted postings or series, bad labels,
	// chunks out of order or outside the block's time range).
	IssueIndex = "index_known_issues"
	// IssueDuplicate: all sources of a block are in another block of its group, so its
	// data is there twice (an interrupted compaction left it behind).
	IssueDuplicate = "duplicated_compaction"
	// IssueMeta: a block's meta.json cannot be read. Always checked.
	IssueMeta = "unreadable_meta"
)

// IssueNames are the checks --issues selects from.
var IssueNames = []string{IssueOverlap, IssueIndex, IssueDuplicate}

// Issue is one problem verify found.
type Issue struct {
	Kind   string
	Blocks []ulid.ULID
	Detail string
}

func (i Issue) String() string { return i.Kind + ": " + i.Detail }

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// Issues are the checks to run (IssueNames); empty means all.
	Issues []string
	// IDs restricts the index check to these blocks; empty means all.
	IDs []ulid.ULID
	// TempDir is where indexes are downloaded; empty means the system's.
	TempDir string
}

// Verify checks the blocks of the bucket and writes every issue to w, one per line,
// then a summary line. Blocks marked for deletion are skipped: they are on their way
// out, and a compaction leaves its sources marked, overlapping the new block. Partial
// uploads are skipped too. The error is about the run itself (bucket unreachable),
// not about the issues found.
func Verify(ctx context.Context, w io.Writer, bkt objstore.BucketReader, o VerifyOptions, logger *slog.Logger) ([]Issue, error) {
	checks := map[string]bool{}
	for _, name := range o.Issues {
		if !slices.Contains(IssueNames, name) {
			return nil, fmt.Errorf("unknown issue %q (want %s)", name, strings.Join(IssueNames, ", "))
		}
		checks[name] = true
	}
	if len(checks) == 0 {
		for _, name := range IssueNames {
			checks[name] = true
		}
	}
	s, err := Fetch(ctx, block.NewFetcher(bkt, logger, fetchConcurrency))
	if err != nil {
		return nil, err
	}
	var issues []Issue
	for _, d := range s.Corrupt() {
		issues = append(issues, Issue{Kind: IssueMeta, Blocks: []ulid.ULID{d.ID}, Detail: fmt.Sprintf("block %s: %v", d.ID, d.MetaErr)})
	}
	live := slices.DeleteFunc(s.Blocks(), func(d *block.Dir) bool { return d.Deletion != nil })
	if checks[IssueOverlap] {
		issues = append(issues, overlaps(live)...)
	}
	if checks[IssueDuplicate] {
		issues = append(issues, duplicates(live)...)
	}
	if checks[IssueIndex] {
		found, err := indexIssues(ctx, bkt, live, o, logger)
		if err != nil {
			return nil, err
		}
		issues = append(issues, found...)
	}
	for _, i := range issues {
		if _, err := fmt.Fprintln(w, i); err != nil {
			return nil, fmt.Errorf("write verify output: %w", err)
		}
	}
	names := slices.Sorted(maps.Keys(checks))
	plural := "s"
	if len(issues) == 1 {
		plural = ""
	}
	_, err = fmt.Fprintf(w, "verified %d blocks (%s; %d marked for deletion and %d partial uploads skipped): %d issue%s\n",
		len(live), strings.Join(names, ", "), len(s.Blocks())-len(live), len(s.Partial()), len(issues), plural)
	return issues, err
}

// byGroup splits blocks into compaction groups, each sorted by minTime, in a stable
// order (the group's labels, then resolution).
func byGroup(blocks []*block.Dir) [][]*block.Dir {
	m := map[string][]*block.Dir{}
	for _, d := range blocks {
		m[groupOf(d)] = append(m[groupOf(d)], d)
	}
	out := make([][]*block.Dir, 0, len(m))
	for _, g := range m {
		slices.SortFunc(g, func(a, b *block.Dir) int {
			if a.Meta.MinTime != b.Meta.MinTime {
				return cmp.Compare(a.Meta.MinTime, b.Meta.MinTime)
			}
			if a.Meta.MaxTime != b.Meta.MaxTime {
				return cmp.Compare(a.Meta.MaxTime, b.Meta.MaxTime)
			}
			return a.ID.Compare(b.ID)
		})
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b []*block.Dir) int {
		if c := strings.Compare(labelsString(a[0].Meta.Thanos.Labels), labelsString(b[0].Meta.Thanos.Labels)); c != 0 {
			return c
		}
		return cmp.Compare(a[0].Meta.Thanos.Downsample.Resolution, b[0].Meta.Thanos.Downsample.Resolution)
	})
	return out
}

// groupName describes a block's group: its labels and resolution.
func groupName(d *block.Dir) string {
	return labelsString(d.Meta.Thanos.Labels) + " " + resolutionName(d.Meta.Thanos.Downsample.Resolution)
}

// overlaps reports every run of overlapping blocks within a group, found with the
// compactor's planner rule.
func overlaps(blocks []*block.Dir) []Issue {
	var out []Issue
	for _, g := range byGroup(blocks) {
		for _, run := range block.OverlappingRuns(g, metaOf) {
			ms := make([]*block.Meta, len(run))
			ids := make([]ulid.ULID, len(run))
			for i, d := range run {
				ms[i], ids[i] = d.Meta, d.ID
			}
			out = append(out, Issue{Kind: IssueOverlap, Blocks: ids,
				Detail: fmt.Sprintf("group %s: %d blocks overlap in time: %s", groupName(run[0]), len(run), describeBlocks(ms))})
		}
	}
	return out
}

// duplicates reports blocks the compactor's duplicate filter would hide, with a block
// that holds all their sources.
func duplicates(blocks []*block.Dir) []Issue {
	kept, dups := block.FilterDuplicates(blocks, groupOf, metaOf)
	slices.SortFunc(dups, func(a, b *block.Dir) int { return a.ID.Compare(b.ID) })
	var out []Issue
	for _, d := range dups {
		i := Issue{Kind: IssueDuplicate, Blocks: []ulid.ULID{d.ID}}
		cover := slices.IndexFunc(kept, func(k *block.Dir) bool { return groupOf(k) == groupOf(d) && block.Covers(k.Meta, d.Meta) })
		i.Detail = fmt.Sprintf("group %s: block %s: all its %d sources are in", groupName(d), describeBlock(d.Meta), len(d.Meta.Compaction.Sources))
		if cover >= 0 {
			i.Blocks = append(i.Blocks, kept[cover].ID)
			i.Detail += " block " + describeBlock(kept[cover].Meta)
		} else {
			i.Detail += " other blocks"
		}
		out = append(out, i)
	}
	return out
}

// indexIssues downloads each block's index (one at a time) and checks it with the
// compactor's index verification.
func indexIssues(ctx context.Context, bkt objstore.BucketReader, blocks []*block.Dir, o VerifyOptions, logger *slog.Logger) ([]Issue, error) {
	tmp, err := os.MkdirTemp(o.TempDir, "vigil-bucket-verify-")
	if err != nil {
		return nil, fmt.Errorf("create directory for indexes: %w", err)
	}
	defer os.RemoveAll(tmp)
	var out []Issue
	for _, d := range blocks {
		if len(o.IDs) > 0 && !slices.Contains(o.IDs, d.ID) {
			continue
		}
		problem, err := checkIndex(ctx, bkt, d.Meta, tmp)
		if err != nil {
			return nil, err
		}
		if problem != "" {
			out = append(out, Issue{Kind: IssueIndex, Blocks: []ulid.ULID{d.ID}, Detail: fmt.Sprintf("block %s: %s", d.ID, problem)})
		}
		logger.Debug("verified index", "block", d.ID, "ok", problem == "")
	}
	return out, nil
}

// checkIndex returns what is wrong with the block's index, or "". Errors are about
// reading the bucket or the local disk.
func checkIndex(ctx context.Context, bkt objstore.BucketReader, m *block.Meta, tmp string) (string, error) {
	dir := filepath.Join(tmp, m.ULID.String())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	defer os.RemoveAll(dir)
	name := path.Join(m.ULID.String(), block.IndexFilename)
	rc, err := bkt.Get(ctx, name)
	if err != nil {
		if bkt.IsObjNotFoundErr(err) {
			return "index file is missing", nil
		}
		return "", fmt.Errorf("download %s: %w", name, err)
	}
	defer rc.Close()
	f, err := os.Create(filepath.Join(dir, block.IndexFilename))
	if err != nil {
		return "", fmt.Errorf("create local copy of %s: %w", name, err)
	}
	if _, err := io.Copy(f, rc); err != nil {
		_ = f.Close()
		return "", fmt.Errorf("download %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("write local copy of %s: %w", name, err)
	}
	if err := block.VerifyIndex(ctx, dir, m.MinTime, m.MaxTime); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		msg := strings.ReplaceAll(err.Error(), " of "+dir, "")
		return strings.ReplaceAll(msg, dir, m.ULID.String()), nil
	}
	return "", nil
}
