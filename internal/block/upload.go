package block

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"
)

// UploadOption configures Upload.
type UploadOption func(*uploadConfig)

type uploadConfig struct {
	hashFunc HashFunc
}

// WithHashFunc records each file's hash in meta.json's files list (only HashSHA256 is
// known; empty means none).
func WithHashFunc(h HashFunc) UploadOption {
	return func(c *uploadConfig) { c.hashFunc = h }
}

// GatherFiles lists the files of the block in dir that are uploaded: chunks/*, index and
// meta.json (without size), sorted by relative path. With hf set, chunk and index files
// carry their hash. The tombstones file is never included.
func GatherFiles(dir string, hf HashFunc) ([]File, error) {
	if hf != "" && hf != HashSHA256 {
		return nil, fmt.Errorf("unknown hash function %q (want %q or none)", hf, HashSHA256)
	}
	entries, err := os.ReadDir(filepath.Join(dir, ChunksDirname))
	if err != nil {
		return nil, fmt.Errorf("list chunks of block %s: %w", dir, err)
	}
	var rels []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			rels = append(rels, path.Join(ChunksDirname, e.Name()))
		}
	}
	rels = append(rels, IndexFilename)
	files := make([]File, 0, len(rels)+1)
	for _, rel := range rels {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("stat block file: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("block file %s is not a regular file", p)
		}
		f := File{RelPath: rel, SizeBytes: fi.Size()}
		if hf == HashSHA256 {
			sum, err := hashFile(p)
			if err != nil {
				return nil, err
			}
			f.Hash = &ObjectHash{Func: HashSHA256, Value: sum}
		}
		files = append(files, f)
	}
	files = append(files, File{RelPath: MetaFilename})
	sort.Slice(files, func(i, j int) bool { return files[i].RelPath < files[j].RelPath })
	return files, nil
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("hash block file: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash block file %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Upload uploads the block in dir (named by its ULID) to bkt: chunks/* first, then index,
// then meta.json last, so readers never see a block before all its data is in place. The
// meta.json uploaded is the local one with thanos.files filled in and thanos.upload_time
// set just before the upload; the local file is not changed. thanos.labels must not be
// empty. The tombstones file is never uploaded. A failed upload leaves at most a partial
// block (no meta.json), which a later Upload overwrites.
func Upload(ctx context.Context, logger *slog.Logger, bkt objstore.Bucket, dir string, opts ...UploadOption) error {
	var cfg uploadConfig
	for _, o := range opts {
		o(&cfg)
	}
	dir = filepath.Clean(dir)
	id, ok := IsBlockDir(filepath.Base(dir))
	if !ok {
		return fmt.Errorf("upload block %s: directory name is not a ULID", dir)
	}
	meta, err := ReadMeta(dir)
	if err != nil {
		return fmt.Errorf("upload block %s: %w", id, err)
	}
	if meta.ULID != id {
		return fmt.Errorf("upload block %s: meta.json is for block %s", id, meta.ULID)
	}
	if len(meta.Thanos.Labels) == 0 {
		return fmt.Errorf("upload block %s: thanos.labels (external labels) must not be empty", id)
	}
	files, err := GatherFiles(dir, cfg.hashFunc)
	if err != nil {
		return fmt.Errorf("upload block %s: %w", id, err)
	}
	meta.Thanos.Files = files

	start := time.Now()
	var bytesUp int64
	for _, f := range files { // Sorted: chunks/... < index < meta.json.
		if f.RelPath == MetaFilename {
			continue
		}
		if err := uploadFile(ctx, bkt, filepath.Join(dir, filepath.FromSlash(f.RelPath)), path.Join(id.String(), f.RelPath)); err != nil {
			return fmt.Errorf("upload block %s: %w", id, err)
		}
		bytesUp += f.SizeBytes
	}

	meta.Thanos.UploadTime = time.Now().UTC()
	b, err := meta.Encode()
	if err != nil {
		return fmt.Errorf("upload block %s: %w", id, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("upload block %s: %w", id, err)
	}
	metaName := path.Join(id.String(), MetaFilename)
	if err := bkt.Upload(ctx, metaName, bytes.NewReader(b)); err != nil {
		// The upload may have landed, fully or (on non-atomic providers) partly; remove it
		// so the block stays a partial upload that the next attempt replaces.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if derr := bkt.Delete(cctx, metaName); derr != nil && !bkt.IsObjNotFoundErr(derr) {
			logger.Warn("cannot remove meta.json after its upload failed", "block", id, "err", derr)
		}
		return fmt.Errorf("upload block %s: upload %s: %w", id, metaName, err)
	}
	logger.Debug("uploaded block", "block", id, "files", len(files), "bytes", bytesUp, "duration", time.Since(start))
	return nil
}

func uploadFile(ctx context.Context, bkt objstore.Bucket, src, dst string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("upload %s: %w", dst, err)
	}
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("upload %s: %w", dst, err)
	}
	defer f.Close()
	// Pass the *os.File itself: providers use its size (and ReaderAt) for multipart uploads.
	if err := bkt.Upload(ctx, dst, f); err != nil {
		return fmt.Errorf("upload %s: %w", dst, err)
	}
	return nil
}

// Delete removes block id from bkt in the order that keeps readers consistent: meta.json
// first (the block turns into a partial upload at once), then every other object except
// deletion-mark.json, then deletion-mark.json (so a crash midway leaves a marked block the
// cleaner retries), and finally, best effort, the directory marker objects some providers
// keep. Deleting a block that has no objects is not an error.
func Delete(ctx context.Context, bkt objstore.Bucket, id ulid.ULID) error {
	dir := id.String() + "/"
	metaName := dir + MetaFilename
	markName := dir + DeletionMarkFilename

	if err := deleteIfExists(ctx, bkt, metaName); err != nil {
		return fmt.Errorf("delete block %s: %w", id, err)
	}
	var names []string
	if err := listRecursive(ctx, bkt, dir, &names); err != nil {
		return fmt.Errorf("delete block %s: %w", id, err)
	}
	for _, name := range names {
		if name == markName || name == metaName {
			continue
		}
		if err := bkt.Delete(ctx, name); err != nil && !bkt.IsObjNotFoundErr(err) {
			return fmt.Errorf("delete block %s: delete %s: %w", id, name, err)
		}
	}
	if err := deleteIfExists(ctx, bkt, markName); err != nil {
		return fmt.Errorf("delete block %s: %w", id, err)
	}
	// Directory markers exist only on some providers; errors mean there was none.
	for _, name := range []string{dir + ChunksDirname + "/", dir} {
		_ = bkt.Delete(ctx, name)
	}
	return nil
}

func deleteIfExists(ctx context.Context, bkt objstore.Bucket, name string) error {
	ok, err := bkt.Exists(ctx, name)
	if err != nil {
		return fmt.Errorf("check whether %s exists: %w", name, err)
	}
	if !ok {
		return nil
	}
	if err := bkt.Delete(ctx, name); err != nil && !bkt.IsObjNotFoundErr(err) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// listRecursive appends every object under dir to names, descending into "directories"
// itself so it works with providers that lack recursive listing.
func listRecursive(ctx context.Context, bkt objstore.BucketReader, dir string, names *[]string) error {
	var subdirs []string
	err := bkt.Iter(ctx, dir, func(name string) error {
		if strings.HasSuffix(name, "/") {
			subdirs = append(subdirs, name)
		} else {
			*names = append(*names, name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	for _, sub := range subdirs {
		if sub == dir {
			return errors.New("bucket listing returned the directory itself: " + dir)
		}
		if err := listRecursive(ctx, bkt, sub, names); err != nil {
			return err
		}
	}
	return nil
}
