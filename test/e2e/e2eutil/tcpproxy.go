package e2eutil

import (
	"bytes"
	"net"
	"sync"
	"testing"
)

// TCPProxy forwards TCP connections from a loopback port to a target address, and can
// partition the path: while it is blackholed, bytes in either direction vanish and new
// connections are accepted but go nowhere, so clients hang until their own timeouts, as
// behind a broken network. The test's cleanup closes it.
type TCPProxy struct {
	Addr string // 127.0.0.1:port to connect to instead of the target

	target string
	ln     net.Listener
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{} // both ends of every open connection
	taps   []*Tap
	wg     sync.WaitGroup
}

// StartTCPProxy starts a proxy to target (host:port).
func StartTCPProxy(t testing.TB, target string) *TCPProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("tcp proxy: %v", err)
	}
	p := &TCPProxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Blackhole stops forwarding: from now on every byte is dropped, on open and new
// connections alike.
func (p *TCPProxy) Blackhole() {
	p.mu.Lock()
	p.cut = true
	p.mu.Unlock()
}

// Restore forwards again. Connections open now have lost bytes, so they are closed:
// clients notice and reconnect.
func (p *TCPProxy) Restore() {
	p.mu.Lock()
	p.cut = false
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
}

// Close stops the proxy and closes every connection.
func (p *TCPProxy) Close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *TCPProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		upstream, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		p.mu.Lock()
		p.conns[client], p.conns[upstream] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(client, upstream, true)
		go p.pipe(upstream, client, false)
	}
}

// pipe copies src to dst, dropping what arrives while the proxy is blackholed, and
// closes both ends when either fails. fromClient says src is the client's side, whose
// bytes taps watch.
func (p *TCPProxy) pipe(src, dst net.Conn, fromClient bool) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.isCut() {
			var tap *Tap
			if fromClient {
				tap = p.matchTap(buf[:n])
			}
			tap.fire(false)
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
			tap.fire(true)
		}
		if err != nil { // EOF, a reset, or closed by Restore or Close
			p.mu.Lock()
			delete(p.conns, src)
			delete(p.conns, dst)
			p.mu.Unlock()
			_ = src.Close()
			_ = dst.Close()
			return
		}
	}
}

// Tap is a hook that runs once, at the first client bytes that contain its trigger: a
// fault injected at an exact point of a protocol exchange, such as one object's upload.
type Tap struct {
	trigger []byte
	after   bool // run the hook after forwarding the triggering bytes, not before
	hook    func()
	// Fired is closed once the hook has run.
	Fired chan struct{}
	// Trigger is what the hook waits for.
	Trigger string
	// Line is the first line of the bytes that fired it (an HTTP request line); read it
	// after Fired is closed.
	Line string
}

// On arms a hook for the first client bytes that contain trigger, run before they are
// forwarded, or after when after is true.
func (p *TCPProxy) On(trigger string, after bool, hook func()) *Tap {
	t := &Tap{trigger: []byte(trigger), Trigger: trigger, after: after, hook: hook, Fired: make(chan struct{})}
	p.mu.Lock()
	p.taps = append(p.taps, t)
	p.mu.Unlock()
	return t
}

// matchTap returns the first unfired tap whose trigger b contains, marked as fired.
func (p *TCPProxy) matchTap(b []byte) *Tap {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.taps {
		if t.Line == "" && bytes.Contains(b, t.trigger) {
			line, _, _ := bytes.Cut(b, []byte("\r\n"))
			t.Line = string(line)
			return t
		}
	}
	return nil
}

func (t *Tap) fire(after bool) {
	if t == nil || t.after != after {
		return
	}
	t.hook()
	close(t.Fired)
}

func (p *TCPProxy) isCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}
