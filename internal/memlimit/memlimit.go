// Package memlimit sets the Go runtime's soft memory limit (GOMEMLIMIT) from the memory
// the process may use: its cgroup's limit (v2 or v1, the smallest on the way up to the
// root), else the machine's memory. With the limit a little under what the container is
// allowed, the garbage collector works harder as the heap nears it instead of the kernel
// killing the process.
package memlimit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// unlimited is where cgroup v1 reports "no limit" (a page-rounded max int64); anything
// from here up means none.
const unlimited = 1 << 62

// System is where the limits are read from: the root of the file system (/ normally).
type System struct {
	Root string
}

// Apply sets the Go memory limit to ratio times the memory the process may use and
// returns the limit set, or 0 when GOMEMLIMIT is set in the environment (it wins) or no
// limit could be found.
func Apply(logger *slog.Logger, ratio float64) (int64, error) {
	if ratio <= 0 || ratio > 1 {
		return 0, fmt.Errorf("--auto-gomemlimit.ratio must be in (0, 1], got %v", ratio)
	}
	if v, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		logger.Info("GOMEMLIMIT is set in the environment; --enable-auto-gomemlimit leaves it", "GOMEMLIMIT", v)
		return 0, nil
	}
	total, source, err := System{Root: "/"}.Limit()
	if err != nil {
		return 0, fmt.Errorf("find the memory limit: %w", err)
	}
	limit := int64(float64(total) * ratio)
	debug.SetMemoryLimit(limit)
	logger.Info("Go memory limit set", "limit_bytes", limit, "from", source, "available_bytes", total, "ratio", ratio)
	return limit, nil
}

// Limit returns the memory the process may use, in bytes, and where it was found: the
// cgroup limit if there is one, else the machine's total memory.
func (s System) Limit() (int64, string, error) {
	self, err := os.ReadFile(s.path("proc/self/cgroup"))
	if err == nil {
		if l, ok := s.cgroupLimit(self); ok {
			return l, "cgroup", nil
		}
	}
	mem, err := s.memTotal()
	if err != nil {
		return 0, "", err
	}
	return mem, "system", nil
}

func (s System) path(p string) string { return filepath.Join(s.Root, p) }

// cgroupLimit finds the smallest memory limit on the way from the process's cgroup up
// to the root of its hierarchy, v2 (memory.max) or v1 (memory.limit_in_bytes).
func (s System) cgroupLimit(self []byte) (int64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(self))
	for sc.Scan() {
		// hierarchy-ID:controllers:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			if l, ok := s.smallest("sys/fs/cgroup", parts[2], "memory.max"); ok {
				return l, true
			}
		case hasController(parts[1], "memory"):
			if l, ok := s.smallest("sys/fs/cgroup/memory", parts[2], "memory.limit_in_bytes"); ok {
				return l, true
			}
		}
	}
	return 0, false
}

func hasController(list, name string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// smallest reads file in the cgroup directory of path under mount and in each parent
// up to mount itself. Inside a cgroup namespace the process's path may not exist under
// the mount, whose root is then its own cgroup.
func (s System) smallest(mount, path, file string) (int64, bool) {
	best, found := int64(0), false
	dir := filepath.Join(s.path(mount), filepath.Clean("/"+path))
	for {
		if l, ok := readLimit(filepath.Join(dir, file)); ok && (!found || l < best) {
			best, found = l, true
		}
		if dir == s.path(mount) {
			return best, found
		}
		dir = filepath.Dir(dir)
	}
}

// readLimit reads a cgroup memory limit file: a byte count, or "max" (v2) or a huge
// number (v1) for none.
func readLimit(file string) (int64, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	v := strings.TrimSpace(string(b))
	if v == "max" {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || n >= unlimited {
		return 0, false
	}
	return n, true
}

// memTotal is MemTotal of /proc/meminfo in bytes.
func (s System) memTotal() (int64, error) {
	b, err := os.ReadFile(s.path("proc/meminfo"))
	if err != nil {
		return 0, fmt.Errorf("read the machine's memory: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil && kb > 0 {
					return kb << 10, nil
				}
			}
		}
	}
	return 0, errors.New("no MemTotal in /proc/meminfo")
}
