package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/oklog/ulid/v2"
	thanosobj "github.com/thanos-io/objstore"
	"golang.org/x/sync/errgroup"

	"github.com/vigilhq/vigil/bench/internal/benchkit"
	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/objstore"
)

const (
	minioUser     = "minio"
	minioPassword = "minio123"
)

// minioServer is a started MinIO on loopback.
type minioServer struct {
	proc     *benchkit.Proc
	endpoint string // host:port of the S3 API
}

// defaultMinio is $(go env GOPATH)/bin/minio, where scripts/install-test-deps.sh puts it.
func defaultMinio() string {
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		if gp := strings.TrimSpace(strings.Split(string(out), string(os.PathListSeparator))[0]); gp != "" {
			return filepath.Join(gp, "bin", "minio")
		}
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, "go", "bin", "minio")
}

// startMinio starts MinIO serving dir on free loopback ports and waits until it is ready.
func startMinio(ctx context.Context, work, bin, dir string) (*minioServer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	api, err1 := benchkit.FreeAddr()
	console, err2 := benchkit.FreeAddr()
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("free port: %v %v", err1, err2)
	}
	p, err := benchkit.StartProcEnv(work, "minio", []string{"MINIO_ROOT_USER=" + minioUser,
		"MINIO_ROOT_PASSWORD=" + minioPassword, "MINIO_BROWSER=off"},
		bin, "server", "--quiet", "--address", api, "--console-address", console, dir)
	if err != nil {
		return nil, err
	}
	m := &minioServer{proc: p, endpoint: api}
	if err := benchkit.WaitFor(ctx, "minio ready", time.Minute, p, func() error {
		return benchkit.HTTPOK(ctx, "http://"+api+"/minio/health/ready")
	}); err != nil {
		p.Stop(5 * time.Second)
		return nil, err
	}
	return m, nil
}

// objstoreYAML is the --objstore.config of bucket name.
func (m *minioServer) objstoreYAML(name string) []byte {
	return fmt.Appendf(nil, "type: S3\nconfig:\n  bucket: %s\n  endpoint: %s\n  access_key: %s\n  secret_key: %s\n  insecure: true\n",
		name, m.endpoint, minioUser, minioPassword)
}

// ensureBucket creates bucket name unless it exists.
func (m *minioServer) ensureBucket(ctx context.Context, name string) error {
	c, err := minio.New(m.endpoint, &minio.Options{Creds: credentials.NewStaticV4(minioUser, minioPassword, "")})
	if err != nil {
		return err
	}
	ok, err := c.BucketExists(ctx, name)
	if err != nil || ok {
		return err
	}
	return c.MakeBucket(ctx, name, minio.MakeBucketOptions{})
}

// openBucket creates bucket name if needed and opens it through Vigil's objstore config.
func (m *minioServer) openBucket(ctx context.Context, name string) (thanosobj.Bucket, error) {
	if err := m.ensureBucket(ctx, name); err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", name, err)
	}
	return objstore.NewBucket(ctx, m.objstoreYAML(name), slog.New(slog.DiscardHandler), nil, "storebench")
}

// localBlock is one block of the generated data set.
type localBlock struct {
	dir     string
	replica string
	meta    *block.Meta
}

// localBlocks lists the blocks of every replica of the data set in data, oldest first.
func localBlocks(data string, replicas []string) ([]localBlock, error) {
	var out []localBlock
	for _, r := range replicas {
		ents, err := os.ReadDir(filepath.Join(data, r))
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if _, ok := block.IsBlockDir(e.Name()); !ok || !e.IsDir() {
				continue
			}
			dir := filepath.Join(data, r, e.Name())
			m, err := block.ReadMeta(dir)
			if err != nil {
				return nil, err
			}
			out = append(out, localBlock{dir: dir, replica: r, meta: m})
		}
	}
	slices.SortFunc(out, func(a, b localBlock) int {
		return cmp.Or(cmp.Compare(a.meta.MinTime, b.meta.MinTime), strings.Compare(a.replica, b.replica))
	})
	return out, nil
}

// syncBucket makes the bucket hold exactly blocks: it deletes other blocks (from an earlier
// data set) and uploads the missing ones, each staged with the "thanos" meta.json section a
// sidecar would write (external labels cluster=bench, replica=<r>). It returns how many
// blocks it uploaded and their bytes.
func syncBucket(ctx context.Context, bkt thanosobj.Bucket, stage string, blocks []localBlock) (int, int64, error) {
	present, err := block.ListBlockIDs(ctx, bkt)
	if err != nil {
		return 0, 0, err
	}
	want := map[ulid.ULID]bool{}
	for _, b := range blocks {
		want[b.meta.ULID] = true
	}
	for _, id := range present {
		if !want[id] {
			if err := block.Delete(ctx, bkt, id); err != nil {
				return 0, 0, err
			}
		}
	}
	var n, bytes atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, b := range blocks {
		g.Go(func() error {
			if ok, err := block.MetaExists(gctx, bkt, b.meta.ULID); err != nil || ok {
				return err
			}
			sz, err := uploadBlock(gctx, bkt, stage, b)
			if err != nil {
				return err
			}
			n.Add(1)
			bytes.Add(sz)
			return nil
		})
	}
	err = g.Wait()
	return int(n.Load()), bytes.Load(), err
}

// uploadBlock stages b (hard links plus a meta.json with the thanos section) and uploads it
// with block.Upload, which puts meta.json last.
func uploadBlock(ctx context.Context, bkt thanosobj.Bucket, stage string, b localBlock) (int64, error) {
	dst := filepath.Join(stage, b.meta.ULID.String())
	if err := os.MkdirAll(filepath.Join(dst, block.ChunksDirname), 0o755); err != nil {
		return 0, err
	}
	defer os.RemoveAll(dst)
	ents, err := os.ReadDir(filepath.Join(b.dir, block.ChunksDirname))
	if err != nil {
		return 0, err
	}
	var segments []string
	var size int64
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		segments = append(segments, e.Name())
		rel := filepath.Join(block.ChunksDirname, e.Name())
		sz, err := linkOrCopy(filepath.Join(b.dir, rel), filepath.Join(dst, rel))
		if err != nil {
			return 0, err
		}
		size += sz
	}
	sz, err := linkOrCopy(filepath.Join(b.dir, block.IndexFilename), filepath.Join(dst, block.IndexFilename))
	if err != nil {
		return 0, err
	}
	m := *b.meta
	m.Thanos = block.ThanosMeta{Version: block.ThanosVersion1, Source: block.SourceSidecar,
		Labels: map[string]string{"cluster": "bench", "replica": b.replica}, SegmentFiles: segments}
	if err := block.WriteMeta(dst, &m); err != nil {
		return 0, err
	}
	if err := block.Upload(ctx, slog.New(slog.DiscardHandler), bkt, dst); err != nil {
		return 0, err
	}
	return size + sz, nil
}

// linkOrCopy hard-links src to dst, copying when that fails, and returns the size.
func linkOrCopy(src, dst string) (int64, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return 0, err
	}
	if os.Link(src, dst) == nil {
		return fi.Size(), nil
	}
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return 0, err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return 0, err
	}
	return fi.Size(), out.Close()
}
