package e2eutil

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Proc is a process as /proc shows it. Start (clock ticks after boot) tells it apart
// from a later process that got the same pid.
type Proc struct {
	Pid     int
	PPid    int
	Start   uint64
	State   byte // R, S, D, Z, ...
	Cmdline []string
}

// String returns the pid and command line.
func (p Proc) String() string { return fmt.Sprintf("%d %q", p.Pid, strings.Join(p.Cmdline, " ")) }

// ReadProc reads /proc/<pid>. It fails when there is no such process.
func ReadProc(pid int) (Proc, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Proc{}, err
	}
	// pid (comm) state ppid ... field 22 is starttime; comm may hold spaces and ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return Proc{}, fmt.Errorf("/proc/%d/stat: no ')' in %q", pid, stat)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 20 {
		return Proc{}, fmt.Errorf("/proc/%d/stat: %d fields after comm", pid, len(f))
	}
	p := Proc{Pid: pid, State: f[0][0]}
	if p.PPid, err = strconv.Atoi(f[1]); err != nil {
		return Proc{}, fmt.Errorf("/proc/%d/stat: ppid: %w", pid, err)
	}
	if p.Start, err = strconv.ParseUint(f[19], 10, 64); err != nil {
		return Proc{}, fmt.Errorf("/proc/%d/stat: starttime: %w", pid, err)
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	p.Cmdline = strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
	return p, nil
}

// Running reports whether p still runs: the same pid with the same start time, and not
// a zombie.
func (p Proc) Running() bool {
	now, err := ReadProc(p.Pid)
	return err == nil && now.Start == p.Start && now.State != 'Z'
}

// Descendants returns every process below pid (children, their children, ...), read
// from the parent pids in /proc.
func Descendants(pid int) ([]Proc, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	children := map[int][]Proc{}
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, err := ReadProc(n)
		if err != nil {
			continue // exited meanwhile
		}
		children[p.PPid] = append(children[p.PPid], p)
	}
	var out []Proc
	queue := []int{pid}
	for len(queue) > 0 {
		for _, c := range children[queue[0]] {
			out = append(out, c)
			queue = append(queue, c.Pid)
		}
		queue = queue[1:]
	}
	return out, nil
}

// ListenAddrs returns the local addresses of the TCP sockets pid listens on, such as
// "127.0.0.1:9090" or "[::]:9094".
func ListenAddrs(pid int) ([]string, error) {
	inodes := map[string]bool{}
	fds, err := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	if err != nil {
		return nil, err
	}
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []string
	for _, file := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, file))
		if err != nil {
			continue // no IPv6
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] { // 0A: LISTEN
				continue
			}
			addr, err := parseProcAddr(f[1])
			if err != nil {
				return nil, fmt.Errorf("/proc/%d/net/%s: %w", pid, file, err)
			}
			out = append(out, addr)
		}
	}
	return out, nil
}

// parseProcAddr decodes an address of /proc/net/tcp{,6}: the IP in hex as 32-bit words
// in host (little-endian) order, a colon, the port in hex.
func parseProcAddr(s string) (string, error) {
	ipHex, portHex, ok := strings.Cut(s, ":")
	if !ok {
		return "", fmt.Errorf("address %q", s)
	}
	raw, err := hex.DecodeString(ipHex)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return "", fmt.Errorf("address %q", s)
	}
	ip := make(net.IP, len(raw))
	for w := 0; w < len(raw); w += 4 {
		for j := range 4 {
			ip[w+j] = raw[w+3-j]
		}
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return "", fmt.Errorf("port of %q: %w", s, err)
	}
	return net.JoinHostPort(ip.String(), strconv.FormatUint(port, 10)), nil
}
