package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	thanosobjstore "github.com/thanos-io/objstore"
	"golang.org/x/sync/errgroup"

	"github.com/vigilhq/vigil/internal/buckettool"
	"github.com/vigilhq/vigil/internal/objstore"
	"github.com/vigilhq/vigil/internal/server"
)

// bucketFlags are the flags of `vigil bucket`, shared by its subcommands.
type bucketFlags struct {
	objstore *objstore.Flags
	timeout  *time.Duration
}

func registerBucket(app *kingpin.Application, cmds map[string]runFunc) {
	cmd := app.Command("bucket", "Bucket tools: list, inspect, verify, mark and clean up the blocks of a Thanos-format bucket, or serve a web view of them.")
	f := &bucketFlags{objstore: objstore.RegisterFlags(cmd)}
	f.timeout = durationFlag(cmd, "timeout", "Give up after this long (ls, inspect, verify, mark, cleanup); for web, the limit of one refresh.", "5m")
	registerBucketLs(cmd, f, cmds)
	registerBucketInspect(cmd, f, cmds)
	registerBucketVerify(cmd, f, cmds)
	registerBucketMark(cmd, f, cmds)
	registerBucketCleanup(cmd, f, cmds)
	registerBucketWeb(cmd, f, cmds)
}

// open opens the configured bucket.
func (f *bucketFlags) open(ctx context.Context, logger *slog.Logger, reg prometheus.Registerer) (thanosobjstore.InstrumentedBucket, error) {
	content, err := f.objstore.Content()
	if err != nil {
		return nil, err
	}
	if content == nil {
		return nil, errors.New("vigil bucket needs object storage: set --objstore.config-file or --objstore.config")
	}
	return objstore.NewBucket(ctx, content, logger, reg, "bucket")
}

// run opens the bucket and runs fn on it within --timeout.
func (f *bucketFlags) run(ctx context.Context, logger *slog.Logger, reg prometheus.Registerer,
	fn func(context.Context, thanosobjstore.Bucket) error,
) error {
	bkt, err := f.open(ctx, logger, reg)
	if err != nil {
		return err
	}
	defer bkt.Close()
	tctx, cancel := context.WithTimeout(ctx, *f.timeout)
	defer cancel()
	err = fn(tctx, bkt)
	if err != nil && ctx.Err() == nil && errors.Is(tctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("gave up after --timeout=%s (is the bucket reachable?): %w", *f.timeout, err)
	}
	return err
}

func registerBucketLs(parent *kingpin.CmdClause, f *bucketFlags, cmds map[string]runFunc) {
	cmd := parent.Command("ls", "List the blocks of the bucket: one ULID per line, or with -o wide or -o json.")
	var o buckettool.ListOptions
	cmd.Flag("output", "Format: empty for one ULID per line, wide (time range, level, resolution, source) or json (every meta.json).").
		Short('o').Default("").StringVar(&o.Format)
	cmd.Flag("exclude-delete", "Leave out blocks marked for deletion.").Default("false").BoolVar(&o.ExcludeDeleted)
	cmds[cmd.FullCommand()] = func(ctx context.Context, logger *slog.Logger, reg *prometheus.Registry) error {
		return f.run(ctx, logger, reg, func(ctx context.Context, bkt thanosobjstore.Bucket) error {
			return buckettool.List(ctx, os.Stdout, bkt, o, logger)
		})
	}
}

func registerBucketInspect(parent *kingpin.CmdClause, f *bucketFlags, cmds map[string]runFunc) {
	cmd := parent.Command("inspect", "Show the blocks of the bucket as a table: time range, series, samples, chunks, compaction level, resolution, source, markers, labels.")
	selector := cmd.Flag("selector", `Only blocks whose external labels match, e.g. --selector='cluster="eu1"' (matchers =, !=, =~, !~; repeatable, all must match).`).
		Short('l').PlaceHolder(`<name>="<value>"`).Strings()
	sortBy := cmd.Flag("sort-by", "Sort by these columns, in order: "+strings.Join(buckettool.ColumnNames(), ", ")+" (repeatable).").
		Default("FROM", "UNTIL").Strings()
	var o buckettool.InspectOptions
	cmd.Flag("output", "Format: table, json, csv or tsv.").Short('o').Default(buckettool.OutputTable).
		EnumVar(&o.Output, buckettool.OutputTable, buckettool.OutputJSON, buckettool.OutputCSV, buckettool.OutputTSV)
	cmds[cmd.FullCommand()] = func(ctx context.Context, logger *slog.Logger, reg *prometheus.Registry) error {
		var err error
		if o.Selector, err = buckettool.ParseSelector(*selector); err != nil {
			return err
		}
		o.SortBy = *sortBy
		return f.run(ctx, logger, reg, func(ctx context.Context, bkt thanosobjstore.Bucket) error {
			return buckettool.Inspect(ctx, os.Stdout, bkt, o, logger)
		})
	}
}

func registerBucketVerify(parent *kingpin.CmdClause, f *bucketFlags, cmds map[string]runFunc) {
	cmd := parent.Command("verify", "Check the blocks of the bucket for overlaps within a compaction group, broken indexes "+
		"(downloaded one at a time) and duplicated compactions; exit 1 if any is found. Blocks marked for deletion are skipped.")
	issues := cmd.Flag("issues", "Checks to run (repeatable): "+strings.Join(buckettool.IssueNames, ", ")+".").
		Short('i').Default(buckettool.IssueNames...).Enums(buckettool.IssueNames...)
	ids := cmd.Flag("id", "Check the index of this block only (repeatable; default every block).").Strings()
	cmds[cmd.FullCommand()] = func(ctx context.Context, logger *slog.Logger, reg *prometheus.Registry) error {
		o := buckettool.VerifyOptions{Issues: *issues}
		var err error
		if o.IDs, err = parseULIDs(*ids); err != nil {
			return err
		}
		return f.run(ctx, logger, reg, func(ctx context.Context, bkt thanosobjstore.Bucket) error {
			found, err := buckettool.Verify(ctx, os.Stdout, bkt, o, logger)
			if err != nil {
				return err
			}
			if len(found) > 0 {
				return fmt.Errorf("verify found %d issues in the bucket", len(found))
			}
			return nil
		})
	}
}

func registerBucketMark(parent *kingpin.CmdClause, f *bucketFlags, cmds map[string]runFunc) {
	cmd := parent.Command("mark", "Write a marker (Thanos format) on blocks: deletion-mark.json (the compactor deletes the block "+
		"after its --delete-delay), no-compact-mark.json or no-downsample-mark.json.")
	ids := cmd.Flag("id", "ULID of a block to mark (repeatable). Every block must exist, or nothing is marked.").Required().Strings()
	var o buckettool.MarkOptions
	cmd.Flag("marker", "Marker to write: "+strings.Join(buckettool.MarkerNames, ", ")+".").Required().
		EnumVar(&o.Marker, buckettool.MarkerNames...)
	cmd.Flag("details", "Why the blocks are marked; written into the marker (required unless --remove).").Default("").StringVar(&o.Details)
	cmd.Flag("remove", "Remove the marker instead of writing it.").Default("false").BoolVar(&o.Remove)
	cmds[cmd.FullCommand()] = func(ctx context.Context, logger *slog.Logger, reg *prometheus.Registry) error {
		var err error
		if o.IDs, err = parseULIDs(*ids); err != nil {
			return err
		}
		return f.run(ctx, logger, reg, func(ctx context.Context, bkt thanosobjstore.Bucket) error {
			return buckettool.Mark(ctx, bkt, o, logger)
		})
	}
}

func registerBucketCleanup(parent *kingpin.CmdClause, f *bucketFlags, cmds map[string]runFunc) {
	cmd := parent.Command("cleanup", "Delete blocks marked for deletion more than --delete-delay ago, and partial uploads "+
		"older than 48h, as the compactor's cleaner does (meta.json first).")
	deleteDelay := durationFlag(cmd, "delete-delay", "Delete a marked block once its deletion mark is this old (0 = at once).", "48h")
	cmds[cmd.FullCommand()] = func(ctx context.Context, logger *slog.Logger, reg *prometheus.Registry) error {
		return f.run(ctx, logger, reg, func(ctx context.Context, bkt thanosobjstore.Bucket) error {
			return buckettool.Cleanup(ctx, bkt, *deleteDelay, logger)
		})
	}
}

func registerBucketWeb(parent *kingpin.CmdClause, f *bucketFlags, cmds map[string]runFunc) {
	cmd := parent.Command("web", "Serve a web page that draws the blocks of the bucket as a timeline per label set and resolution, "+
		"with each block's meta.json and /api/v1/blocks.")
	var httpCfg server.HTTPConfig
	cmd.Flag("http-address", "Listen host:port for the web page, /api/v1/blocks, /metrics and the probes.").Default("0.0.0.0:10902").StringVar(&httpCfg.Address)
	cmd.Flag("http.config", "Path to an exporter-toolkit web config file (TLS, basic auth) for the HTTP server.").Default("").StringVar(&httpCfg.TLSConfig)
	grace := durationFlag(cmd, "http-grace-period", "Time to wait after an interrupt for HTTP requests to finish.", "2m")
	refresh := durationFlag(cmd, "refresh", "Read the bucket this often (the page also reads it when reloaded).", "30m")
	cmds[cmd.FullCommand()] = func(ctx context.Context, logger *slog.Logger, reg *prometheus.Registry) error {
		if *refresh <= 0 {
			return fmt.Errorf("--refresh must be positive, got %s", *refresh)
		}
		bkt, err := f.open(ctx, logger, reg)
		if err != nil {
			return err
		}
		defer bkt.Close()
		httpCfg.GracePeriod = *grace
		probe := server.NewProbe()
		h, err := server.NewHTTP(logger, reg, probe, httpCfg)
		if err != nil {
			return err
		}
		web := buckettool.NewWeb(bkt, logger, buckettool.WebOptions{Refresh: *refresh, Timeout: *f.timeout, OnReady: probe.Ready})
		web.Register(h.Mux())
		probe.Healthy()
		probe.NotReady("reading the bucket")
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { return h.Run(gctx) })
		g.Go(func() error { return web.Run(gctx) })
		err = g.Wait()
		probe.Shutdown()
		return err
	}
}

// parseULIDs parses --id values.
func parseULIDs(in []string) ([]ulid.ULID, error) {
	out := make([]ulid.ULID, 0, len(in))
	for _, s := range in {
		id, err := ulid.ParseStrict(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("--id %q is not a block ID (ULID): %w", s, err)
		}
		out = append(out, id)
	}
	return out, nil
}
