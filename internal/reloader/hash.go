package reloader

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// hashDirs returns one digest over every file under dirs, walked recursively in
// lexical order with symlinks followed. Each file contributes its path relative to its
// root and its content, so renaming, adding or removing a file changes the digest as
// well as editing one. Files are only read, never copied: Prometheus reads the rule
// files where they are.
func hashDirs(dirs []string) ([sha256.Size]byte, error) {
	h := sha256.New()
	for i, dir := range dirs {
		fmt.Fprintf(h, "dir %d\n", i)
		w := treeWalker{h: h, seen: map[string]bool{}}
		if err := w.dir(dir, "."); err != nil {
			return [sha256.Size]byte{}, fmt.Errorf("hash rule dir %s: %w", dir, err)
		}
	}
	return [sha256.Size]byte(h.Sum(nil)), nil
}

// treeWalker hashes one directory tree.
type treeWalker struct {
	h hash.Hash
	// seen holds the real paths of the directories walked, so that a symlink loop, or
	// the "..data" link Kubernetes puts next to the directory it points to, is walked
	// once.
	seen map[string]bool
}

// dir hashes the files under path; rel is path relative to the root, which is what
// the digest records so that the same tree at another place hashes the same.
func (w *treeWalker) dir(path, rel string) error {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	if w.seen[real] {
		return nil
	}
	w.seen[real] = true
	entries, err := os.ReadDir(path)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p, r := filepath.Join(path, e.Name()), filepath.Join(rel, e.Name())
		fi, err := os.Stat(p) // follows symlinks, unlike the entry's own type
		if errors.Is(err, fs.ErrNotExist) {
			// A dangling link, or a file removed while we walk (a Kubernetes update
			// swapping its directories): skip it; the next poll sees the final tree.
			continue
		}
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			err = w.dir(p, r)
		case fi.Mode().IsRegular():
			err = w.file(p, r)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (w *treeWalker) file(path, rel string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // removed since it was listed; see dir
	}
	if err != nil {
		return err
	}
	defer f.Close()
	// The content is hashed on its own and only its digest goes into the tree's, so
	// that no content can pass for a file boundary.
	fh := sha256.New()
	if _, err := io.Copy(fh, f); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	fmt.Fprintf(w.h, "%q %x\n", rel, fh.Sum(nil))
	return nil
}
