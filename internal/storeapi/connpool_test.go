package storeapi

import (
	"testing"
	"time"
)

func TestConnPoolReusesAndClosesIdle(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	p := NewConnPool(time.Minute, DialOptions(nil, "")...)
	p.now = func() time.Time { return now }
	defer p.Close()

	a1, err := p.Get("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := p.Get("127.0.0.1:1")
	if a1 != a2 {
		t.Fatal("second Get of the same address dialled a new connection")
	}
	if _, err := p.Get("127.0.0.1:2"); err != nil {
		t.Fatal(err)
	}
	if p.Len() != 2 {
		t.Fatalf("%d connections, want 2", p.Len())
	}

	// :1 keeps being used, :2 is not: only :2 is closed once idle too long.
	now = now.Add(40 * time.Second)
	p.Get("127.0.0.1:1")
	now = now.Add(40 * time.Second)
	p.CloseIdle()
	if p.Len() != 1 {
		t.Fatalf("%d connections after the idle timeout, want 1", p.Len())
	}
	if _, ok := p.conns["127.0.0.1:1"]; !ok {
		t.Fatal("the connection in use was closed")
	}

	// Get sweeps too: a pool only ever asked for new addresses does not grow forever.
	now = now.Add(2 * time.Minute)
	if _, err := p.Get("127.0.0.1:3"); err != nil {
		t.Fatal(err)
	}
	if p.Len() != 1 {
		t.Fatalf("%d connections, want only the new one", p.Len())
	}
	if err := p.Close(); err != nil || p.Len() != 0 {
		t.Fatalf("close: %v, %d left", err, p.Len())
	}
}

func TestConnPoolBadAddress(t *testing.T) {
	p := NewConnPool(time.Minute, DialOptions(nil, "")...)
	defer p.Close()
	if _, err := p.Get("dns:///%zz"); err == nil {
		t.Fatal("want an error for an address gRPC cannot parse")
	}
	if p.Len() != 0 {
		t.Fatal("a failed dial was kept")
	}
}
