package memlimit

import (
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

// fakeRoot writes files (path relative to the root → content) under a new root.
func fakeRoot(t *testing.T, files map[string]string) System {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return System{Root: root}
}

const meminfo = "MemTotal:       16384000 kB\nMemFree:         1000 kB\n"

func TestLimit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		files  map[string]string
		want   int64
		source string
	}{
		{"cgroup v2, own limit", map[string]string{
			"proc/self/cgroup": "0::/kubepods/pod1/c1\n", "proc/meminfo": meminfo,
			"sys/fs/cgroup/kubepods/pod1/c1/memory.max": "1073741824\n",
			"sys/fs/cgroup/kubepods/pod1/memory.max":    "2147483648\n",
		}, 1 << 30, "cgroup"},
		{"cgroup v2, the pod's limit is smaller", map[string]string{
			"proc/self/cgroup": "0::/kubepods/pod1/c1\n", "proc/meminfo": meminfo,
			"sys/fs/cgroup/kubepods/pod1/c1/memory.max": "max\n",
			"sys/fs/cgroup/kubepods/pod1/memory.max":    "536870912\n",
		}, 512 << 20, "cgroup"},
		{"cgroup v2 namespace: own cgroup at the mount root", map[string]string{
			"proc/self/cgroup": "0::/\n", "proc/meminfo": meminfo,
			"sys/fs/cgroup/memory.max": "268435456\n",
		}, 256 << 20, "cgroup"},
		{"cgroup v1", map[string]string{
			"proc/self/cgroup": "9:cpu,cpuacct:/x\n4:memory:/docker/abc\n", "proc/meminfo": meminfo,
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "805306368\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes":            "9223372036854771712\n",
		}, 768 << 20, "cgroup"},
		{"no limit anywhere: the machine's memory", map[string]string{
			"proc/self/cgroup": "4:memory:/docker/abc\n", "proc/meminfo": meminfo,
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "9223372036854771712\n",
		}, 16384000 << 10, "system"},
		{"no cgroup file", map[string]string{"proc/meminfo": meminfo}, 16384000 << 10, "system"},
	} {
		got, source, err := fakeRoot(t, tc.files).Limit()
		if err != nil || got != tc.want || source != tc.source {
			t.Errorf("%s: %d from %s (%v), want %d from %s", tc.name, got, source, err, tc.want, tc.source)
		}
	}
	if _, _, err := fakeRoot(t, map[string]string{"proc/meminfo": "nothing\n"}).Limit(); err == nil {
		t.Error("want an error when no limit and no MemTotal")
	}
}

func TestApply(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	logger := slog.New(slog.DiscardHandler)
	for _, bad := range []float64{0, -0.5, 1.5} {
		if _, err := Apply(logger, bad); err == nil {
			t.Errorf("ratio %v accepted", bad)
		}
	}
	t.Setenv("GOMEMLIMIT", "1GiB")
	if l, err := Apply(logger, 0.9); l != 0 || err != nil {
		t.Errorf("with GOMEMLIMIT set: limit %d, %v; want it left alone", l, err)
	}
	os.Unsetenv("GOMEMLIMIT")
	l, err := Apply(logger, 0.5)
	if err != nil || l <= 0 || debug.SetMemoryLimit(-1) != l {
		t.Errorf("limit %d, %v: want half of this machine's or cgroup's memory set", l, err)
	}
}
