package reloader

import (
	"os"
	"path/filepath"
	"testing"
)

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustHash(t *testing.T, dirs ...string) [32]byte {
	t.Helper()
	sum, err := hashDirs(dirs)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func TestHashDirsSeesNestedChanges(t *testing.T) {
	root := t.TempDir()
	mustWrite(t, filepath.Join(root, "a.yml"), "a")
	mustWrite(t, filepath.Join(root, "team", "deep", "b.yml"), "b")
	sum := mustHash(t, root)
	if mustHash(t, root) != sum {
		t.Fatal("digest of an unchanged tree changed")
	}
	steps := []struct {
		name string
		do   func()
	}{
		{"edit nested file", func() { mustWrite(t, filepath.Join(root, "team", "deep", "b.yml"), "b2") }},
		{"add file", func() { mustWrite(t, filepath.Join(root, "team", "c.yml"), "c") }},
		{"rename file", func() {
			if err := os.Rename(filepath.Join(root, "team", "c.yml"), filepath.Join(root, "team", "d.yml")); err != nil {
				t.Fatal(err)
			}
		}},
		{"remove file", func() {
			if err := os.Remove(filepath.Join(root, "a.yml")); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, s := range steps {
		s.do()
		next := mustHash(t, root)
		if next == sum {
			t.Errorf("%s: digest unchanged", s.name)
		}
		sum = next
	}
}

// Rule dirs are often Kubernetes ConfigMap mounts: files are symlinks into "..data",
// itself a symlink to a timestamped directory that an update replaces.
func TestHashDirsFollowsSymlinks(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	mustWrite(t, filepath.Join(root, "..2024_01", "rules.yml"), "v1")
	for _, l := range [][2]string{
		{"..2024_01", filepath.Join(root, "..data")},
		{filepath.Join("..data", "rules.yml"), filepath.Join(root, "rules.yml")},
		{outside, filepath.Join(root, "linked")}, // a symlinked directory elsewhere
		{root, filepath.Join(root, "loop")},      // a loop must not hang the walk
		{"missing", filepath.Join(root, "dangling")},
	} {
		if err := os.Symlink(l[0], l[1]); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite(t, filepath.Join(outside, "x.yml"), "x")
	sum := mustHash(t, root)

	mustWrite(t, filepath.Join(outside, "x.yml"), "x2")
	if next := mustHash(t, root); next == sum {
		t.Error("change in a symlinked directory not seen")
	} else {
		sum = next
	}
	// The Kubernetes update: a new timestamped directory, then ..data swapped to it.
	mustWrite(t, filepath.Join(root, "..2024_02", "rules.yml"), "v2")
	if err := os.Symlink("..2024_02", filepath.Join(root, "..data.tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "..data.tmp"), filepath.Join(root, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(root, "..2024_01")); err != nil {
		t.Fatal(err)
	}
	if next := mustHash(t, root); next == sum {
		t.Error("ConfigMap-style swap not seen")
	}
}

func TestHashDirsMissingDirIsAnError(t *testing.T) {
	if _, err := hashDirs([]string{filepath.Join(t.TempDir(), "nope")}); err == nil {
		t.Error("no error for a missing rule dir")
	}
}

func TestHashDirsPlaceIndependent(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	mustWrite(t, filepath.Join(a, "r", "x.yml"), "same")
	mustWrite(t, filepath.Join(b, "r", "x.yml"), "same")
	if mustHash(t, a) != mustHash(t, b) {
		t.Error("identical trees in different places hash differently")
	}
}
