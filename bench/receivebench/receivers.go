package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil/bench/internal/benchkit"
)

// receiver is one started `vigil receive`.
type receiver struct {
	name      string // also its replica label value
	grpc      string // StoreAPI and hashring endpoint
	http      string // /-/ready, /metrics
	rw        string // remote-write listener
	tsdb      string
	proc      *benchkit.Proc
	idle      benchkit.Mem // once ready, before the load
	cpuBefore time.Duration
}

// writeURL is the receiver's remote-write endpoint.
func (r *receiver) writeURL() string { return "http://" + r.rw + "/api/v1/receive" }

// newReceivers picks free loopback ports and TSDB directories for n receivers.
func newReceivers(work string, n int) ([]*receiver, error) {
	rs := make([]*receiver, n)
	for i := range rs {
		var addrs [3]string
		for j := range addrs {
			a, err := benchkit.FreeAddr()
			if err != nil {
				return nil, fmt.Errorf("free port: %w", err)
			}
			addrs[j] = a
		}
		name := "r" + strconv.Itoa(i)
		rs[i] = &receiver{name: name, grpc: addrs[0], http: addrs[1], rw: addrs[2],
			tsdb: filepath.Join(work, "tsdb-"+name)}
	}
	return rs, nil
}

// writeHashring writes the hashrings file listing every receiver's gRPC endpoint.
func writeHashring(path string, rs []*receiver) error {
	eps := make([]string, len(rs))
	for i, r := range rs {
		eps[i] = r.grpc
	}
	b, err := json.Marshal([]map[string][]string{{"endpoints": eps}})
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write hashrings file: %w", err)
	}
	return nil
}

// receiverArgs returns the flags of r. With a hashring (ring3), every receiver is in it
// and replicates every series to all of them.
func receiverArgs(r *receiver, hashring string, replication int, extra []string) []string {
	args := []string{"receive",
		"--grpc-address=" + r.grpc, "--http-address=" + r.http, "--remote-write.address=" + r.rw,
		"--tsdb.path=" + r.tsdb, fmt.Sprintf("--label=replica=%q", r.name),
		"--receive.local-endpoint=" + r.grpc,
		// Shut down quickly at the end; nothing is in flight by then.
		"--http-grace-period=1s", "--grpc-grace-period=1s"}
	if hashring != "" {
		args = append(args, "--receive.hashrings-file="+hashring,
			"--receive.replication-factor="+strconv.Itoa(replication))
	}
	return append(args, extra...)
}

// startReceivers starts the receivers and waits until all of them are ready. In ring3
// mode they are started together, since each may wait for its peers.
func startReceivers(ctx context.Context, o options, work string, rs []*receiver) error {
	hashring := ""
	if o.mode == "ring3" {
		hashring = filepath.Join(work, "hashrings.json")
		if err := writeHashring(hashring, rs); err != nil {
			return err
		}
	}
	for _, r := range rs {
		if err := os.MkdirAll(r.tsdb, 0o755); err != nil {
			return fmt.Errorf("tsdb dir: %w", err)
		}
		p, err := benchkit.StartProc(work, "receive-"+r.name, o.vigil,
			receiverArgs(r, hashring, len(rs), o.receiveArgs)...)
		if err != nil {
			return err
		}
		r.proc = p
	}
	for _, r := range rs {
		if err := benchkit.WaitFor(ctx, r.name+" ready", 2*time.Minute, r.proc, func() error {
			return benchkit.HTTPOK(ctx, "http://"+r.http+"/-/ready")
		}); err != nil {
			return err
		}
	}
	for _, r := range rs {
		r.idle = r.proc.Mem()
		r.cpuBefore = cpuTime(r.proc.Cmd.Process.Pid)
	}
	return nil
}

// checkReceiveCommand fails early, with a clear message, if the binary has no receive
// command.
func checkReceiveCommand(ctx context.Context, vigil string) error {
	out, err := runCmd(ctx, vigil, "receive", "--help")
	if err != nil {
		return fmt.Errorf("%s receive --help: %w\n%s", vigil, err, strings.TrimSpace(out))
	}
	for _, f := range []string{"--remote-write.address", "--receive.hashrings-file", "--tsdb.path"} {
		if !strings.Contains(out, f) {
			return fmt.Errorf("%s receive has no %s flag", vigil, f)
		}
	}
	return nil
}
