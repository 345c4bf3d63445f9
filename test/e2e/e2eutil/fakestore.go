package e2eutil

import (
	"context"
	"math"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"

	"github.com/vigilhq/vigil/internal/storeapi/infopb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// HangingStore is an in-process gRPC StoreAPI endpoint that passes the querier's Info
// probe (a healthy store with one external label set covering all time) but whose data
// calls (Series, LabelNames, LabelValues) never answer: they block until the caller
// gives up or the test ends. It stands for an endpoint whose backend hangs.
type HangingStore struct {
	Addr string // 127.0.0.1:port

	// InfoCalls counts Info probes; Calls counts the data calls.
	InfoCalls atomic.Int64

	mu    sync.Mutex
	calls map[string]int // method name -> calls received

	stop chan struct{}
}

// Calls returns how many calls of method (Series, LabelNames, LabelValues) arrived.
func (h *HangingStore) Calls(method string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[method]
}

func (h *HangingStore) hang(ctx context.Context, method string) error {
	h.mu.Lock()
	h.calls[method]++
	h.mu.Unlock()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-h.stop:
		return context.Canceled
	}
}

// StartHangingStore starts a HangingStore on a free 127.0.0.1 port whose Info reports
// extLabels; the test's cleanup stops it.
func StartHangingStore(t testing.TB, extLabels map[string]string) *HangingStore {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("hanging store: listen: %v", err)
	}
	h := &HangingStore{Addr: ln.Addr().String(), calls: map[string]int{}, stop: make(chan struct{})}
	srv := grpc.NewServer()
	infopb.RegisterInfoServer(srv, hangingInfo{h: h, labels: extLabels})
	storepb.RegisterStoreServer(srv, hangingData{h: h})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		close(h.stop)
		srv.Stop()
	})
	return h
}

type hangingInfo struct {
	infopb.UnimplementedInfoServer
	h      *HangingStore
	labels map[string]string
}

func (i hangingInfo) Info(context.Context, *infopb.InfoRequest) (*infopb.InfoResponse, error) {
	i.h.InfoCalls.Add(1)
	names := make([]string, 0, len(i.labels))
	for n := range i.labels {
		names = append(names, n)
	}
	sort.Strings(names)
	var ls []*storepb.Label
	for _, n := range names {
		ls = append(ls, &storepb.Label{Name: n, Value: i.labels[n]})
	}
	return &infopb.InfoResponse{
		ComponentType: "store",
		LabelSets:     []*storepb.LabelSet{{Labels: ls}},
		Store: &infopb.StoreInfo{MinTime: math.MinInt64, MaxTime: math.MaxInt64,
			SupportsWithoutReplicaLabels: true},
	}, nil
}

type hangingData struct {
	storepb.UnimplementedStoreServer
	h *HangingStore
}

func (d hangingData) Series(_ *storepb.SeriesRequest, srv grpc.ServerStreamingServer[storepb.SeriesResponse]) error {
	return d.h.hang(srv.Context(), "Series")
}

func (d hangingData) LabelNames(ctx context.Context, _ *storepb.LabelNamesRequest) (*storepb.LabelNamesResponse, error) {
	return nil, d.h.hang(ctx, "LabelNames")
}

func (d hangingData) LabelValues(ctx context.Context, _ *storepb.LabelValuesRequest) (*storepb.LabelValuesResponse, error) {
	return nil, d.h.hang(ctx, "LabelValues")
}

// StartBlackhole listens on a free 127.0.0.1 port, accepts every connection and never
// reads or writes: a peer that takes the TCP connection and then says nothing (not even
// the HTTP/2 preface). It returns the address and how many connections it accepted so
// far; the test's cleanup closes the listener and the held connections.
func StartBlackhole(t testing.TB) (addr string, accepted func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("blackhole: listen: %v", err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String(), func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(conns)
	}
}

// Ensure the fakes keep satisfying the generated interfaces.
var (
	_ infopb.InfoServer   = hangingInfo{}
	_ storepb.StoreServer = hangingData{}
)
