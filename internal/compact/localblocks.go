package compact

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/oklog/ulid/v2"
)

// localDirname is the work directory (under Config.DataDir) of localBlocks.
const localDirname = "local"

// localBlocks keeps the blocks this compactor uploaded during one iteration on local
// disk, up to a byte limit, so that the compaction of the next level and the
// downsampling of a block just made read it from disk instead of downloading it again.
// Compacting a group from 2h blocks to a 2d block and downsampling that block would
// otherwise download every sample three times. A kept block is exactly what was
// uploaded and was verified before the upload, so it is used without a second check.
//
// Blocks are immutable under their ULID, so a kept copy can never be stale; it only
// lives until the iteration ends (the directory is emptied at the start of each).
type localBlocks struct {
	dir   string
	limit int64 // bytes; 0 keeps nothing

	mu    sync.Mutex
	sizes map[ulid.ULID]int64
	total int64
}

func newLocalBlocks(dir string, limit int64) *localBlocks {
	return &localBlocks{dir: dir, limit: limit, sizes: map[ulid.ULID]int64{}}
}

// reset forgets and removes every kept block.
func (l *localBlocks) reset() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.sizes)
	l.total = 0
	if err := os.RemoveAll(l.dir); err != nil {
		return fmt.Errorf("clean local blocks: %w", err)
	}
	return nil
}

// keep moves the block directory dir (of block id, size bytes) into the keeper, if it
// fits under the limit. It reports whether it did; if not, dir is left where it was.
func (l *localBlocks) keep(id ulid.ULID, dir string, size int64) bool {
	if l.limit <= 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total+size > l.limit {
		return false
	}
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		return false
	}
	if err := os.Rename(dir, filepath.Join(l.dir, id.String())); err != nil {
		return false
	}
	l.sizes[id] = size
	l.total += size
	return true
}

// path returns the directory of kept block id, for reading in place.
func (l *localBlocks) path(id ulid.ULID) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.sizes[id]; !ok {
		return "", false
	}
	return filepath.Join(l.dir, id.String()), true
}

// take moves kept block id to dst, which must not exist, and forgets it: the caller
// owns it from then on. It reports false, leaving nothing at dst, when id is not kept
// or cannot be moved (the caller downloads it instead).
func (l *localBlocks) take(id ulid.ULID, dst string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	size, ok := l.sizes[id]
	if !ok {
		return false
	}
	delete(l.sizes, id)
	l.total -= size
	src := filepath.Join(l.dir, id.String())
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		_ = os.RemoveAll(src)
		return false
	}
	if err := os.Rename(src, dst); err != nil {
		_ = os.RemoveAll(src)
		return false
	}
	return true
}

// drop removes kept block id, if any.
func (l *localBlocks) drop(id ulid.ULID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	size, ok := l.sizes[id]
	if !ok {
		return
	}
	delete(l.sizes, id)
	l.total -= size
	_ = os.RemoveAll(filepath.Join(l.dir, id.String()))
}
