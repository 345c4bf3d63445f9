package compact

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/thanos-io/objstore"
	"golang.org/x/sync/errgroup"

	"github.com/vigilhq/vigil/internal/block"
)

// downloadBlock downloads the block's index and chunk files into dst (which must not
// exist yet) and writes its meta.json there, returning the bytes downloaded. The files
// are those listed in meta.json, or, for blocks written without a files list, index
// plus whatever chunks/ holds. Markers and tombstones are never downloaded.
func downloadBlock(ctx context.Context, bkt objstore.BucketReader, m *block.Meta, dst string, concurrency int) (int64, error) {
	id := m.ULID.String()
	var rels []string
	for _, f := range m.Thanos.Files {
		if f.RelPath != block.MetaFilename {
			rels = append(rels, f.RelPath)
		}
	}
	if len(rels) == 0 {
		err := bkt.Iter(ctx, id+"/"+block.ChunksDirname+"/", func(name string) error {
			if !strings.HasSuffix(name, "/") {
				rels = append(rels, path.Join(block.ChunksDirname, path.Base(name)))
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("download block %s: list chunks: %w", id, err)
		}
		rels = append(rels, block.IndexFilename)
	}
	if err := os.MkdirAll(filepath.Join(dst, block.ChunksDirname), 0o755); err != nil {
		return 0, fmt.Errorf("download block %s: %w", id, err)
	}
	sizes := make([]int64, len(rels))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, concurrency))
	for i, rel := range rels {
		if strings.Contains(rel, "..") || path.IsAbs(rel) {
			return 0, fmt.Errorf("download block %s: bad file name %q in meta.json", id, rel)
		}
		g.Go(func() error {
			n, err := downloadFile(gctx, bkt, path.Join(id, rel), filepath.Join(dst, filepath.FromSlash(rel)))
			sizes[i] = n
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return 0, fmt.Errorf("download block %s: %w", id, err)
	}
	if err := block.WriteMeta(dst, m); err != nil {
		return 0, fmt.Errorf("download block %s: %w", id, err)
	}
	var total int64
	for _, n := range sizes {
		total += n
	}
	return total, nil
}

// downloadFile copies one object to a local file.
func downloadFile(ctx context.Context, bkt objstore.BucketReader, name, dst string) (n int64, err error) {
	rc, err := bkt.Get(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("get %s: %w", name, err)
	}
	defer rc.Close()
	f, err := os.Create(dst)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", dst, err)
	}
	if n, err = io.Copy(f, rc); err != nil {
		_ = f.Close()
		return n, fmt.Errorf("download %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return n, fmt.Errorf("close %s: %w", dst, err)
	}
	return n, nil
}

// uploadedBytes is the size of the block files in dir that block.Upload sends.
func uploadedBytes(dir string) int64 {
	files, err := block.GatherFiles(dir, "")
	if err != nil {
		return 0
	}
	var n int64
	for _, f := range files {
		n += f.SizeBytes
	}
	return n
}
