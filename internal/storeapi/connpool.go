package storeapi

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
)

// ConnPool keeps one gRPC connection per address, dialled on first use and closed once
// it has not been used for its idle timeout. Components whose peers come and go (the
// querier's endpoints, a receiver's hashring) share connections through one: a
// connection to an address nobody calls any more would otherwise stay open, and keep
// reconnecting to a peer that is gone, for the life of the process.
type ConnPool struct {
	opts []grpc.DialOption
	idle time.Duration
	now  func() time.Time

	mu        sync.Mutex
	conns     map[string]*pooledConn
	lastSweep time.Time
}

type pooledConn struct {
	conn     *grpc.ClientConn
	lastUsed time.Time
}

// NewConnPool returns a pool dialling with opts (see DialOptions) that closes a
// connection unused for idle.
func NewConnPool(idle time.Duration, opts ...grpc.DialOption) *ConnPool {
	return &ConnPool{opts: opts, idle: idle, now: time.Now, conns: map[string]*pooledConn{}}
}

// Get returns the connection to addr, dialling it on first use (gRPC connects lazily,
// so an unreachable addr fails the call made on it, not Get). Every so often it also
// closes the connections that have been idle too long.
func (p *ConnPool) Get(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if now.Sub(p.lastSweep) > p.idle/4 {
		p.closeIdleLocked(now)
		p.lastSweep = now
	}
	if c, ok := p.conns[addr]; ok {
		c.lastUsed = now
		return c.conn, nil
	}
	conn, err := grpc.NewClient(addr, p.opts...)
	if err != nil {
		return nil, fmt.Errorf("create gRPC client for %s: %w", addr, err)
	}
	p.conns[addr] = &pooledConn{conn: conn, lastUsed: now}
	return conn, nil
}

// CloseIdle closes the connections not used for the idle timeout.
func (p *ConnPool) CloseIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeIdleLocked(p.now())
}

func (p *ConnPool) closeIdleLocked(now time.Time) {
	for addr, c := range p.conns {
		if now.Sub(c.lastUsed) > p.idle {
			_ = c.conn.Close()
			delete(p.conns, addr)
		}
	}
}

// Len is the number of open connections.
func (p *ConnPool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close closes every connection; the pool dials anew if used again.
func (p *ConnPool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for addr, c := range p.conns {
		errs = append(errs, c.conn.Close())
		delete(p.conns, addr)
	}
	return errors.Join(errs...)
}
