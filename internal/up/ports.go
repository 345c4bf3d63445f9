package up

import (
	"fmt"
	"net"
)

// wellKnownPorts are never handed out, so that the parts do not take the ports of a
// Prometheus, Alertmanager, node exporter or Vigil component the user runs (or starts
// later) with its default port.
var wellKnownPorts = []int{9090, 9091, 9093, 9094, 9100, 10901, 10902}

// freePorts returns n distinct TCP ports on 127.0.0.1 that are free at the time of the
// call, none of them in exclude or wellKnownPorts. It holds every port until it has all
// of them, so the kernel cannot hand out one twice.
func freePorts(n int, exclude ...int) ([]int, error) {
	skip := map[int]bool{}
	for _, p := range append(exclude, wellKnownPorts...) {
		skip[p] = true
	}
	var held []net.Listener
	defer func() {
		for _, ln := range held {
			ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for len(ports) < n {
		if len(held) > n+100 {
			return nil, fmt.Errorf("finding %d free ports on 127.0.0.1: too many excluded ports handed out", n)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding free ports on 127.0.0.1: %w", err)
		}
		held = append(held, ln)
		if p := ln.Addr().(*net.TCPAddr).Port; !skip[p] {
			ports = append(ports, p)
		}
	}
	return ports, nil
}
