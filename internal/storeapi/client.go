package storeapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/vigilhq/vigil/internal/grpcsnappy"
	"github.com/vigilhq/vigil/internal/storeapi/infopb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// DialOptions are the client settings Thanos servers expect: 10s keepalive pings, no
// receive size limit, and optionally the snappy compressor and TLS.
func DialOptions(tlsCfg *tls.Config, compression string) []grpc.DialOption {
	grpcsnappy.Register()
	creds := insecure.NewCredentials()
	if tlsCfg != nil {
		creds = credentials.NewTLS(tlsCfg)
	}
	call := []grpc.CallOption{
		grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32),
		grpc.ForceCodecV2(Codec()), // protobuf, with a fast path for Series frames
	}
	if compression == grpcsnappy.Name {
		call = append(call, grpc.UseCompressor(grpcsnappy.Name))
	}
	return []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(call...),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second}),
	}
}

// Client talks StoreAPI and Info to one endpoint: any Vigil component, or Thanos.
type Client struct {
	conn  *grpc.ClientConn
	store storepb.StoreClient
	info  infopb.InfoClient
}

// Dial creates a client for addr (host:port). The connection is established lazily.
func Dial(addr string, opts ...grpc.DialOption) (*Client, error) {
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("create gRPC client for %s: %w", addr, err)
	}
	return &Client{conn: conn, store: storepb.NewStoreClient(conn), info: infopb.NewInfoClient(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Info calls thanos.info.Info.
func (c *Client) Info(ctx context.Context) (*infopb.InfoResponse, error) {
	return c.info.Info(ctx, &infopb.InfoRequest{})
}

// LabelNames calls Store.LabelNames.
func (c *Client) LabelNames(ctx context.Context, req *storepb.LabelNamesRequest) (*storepb.LabelNamesResponse, error) {
	return c.store.LabelNames(ctx, req)
}

// LabelValues calls Store.LabelValues.
func (c *Client) LabelValues(ctx context.Context, req *storepb.LabelValuesRequest) (*storepb.LabelValuesResponse, error) {
	return c.store.LabelValues(ctx, req)
}

// Series starts a Series stream. The stream yields series one at a time, unpacking batch
// frames, and collects warnings.
func (c *Client) Series(ctx context.Context, req *storepb.SeriesRequest) (*SeriesStream, error) {
	ctx, cancel := context.WithCancel(ctx)
	st, err := c.store.Series(ctx, req)
	if err != nil {
		cancel()
		return nil, err
	}
	return &SeriesStream{stream: st, cancel: cancel}, nil
}

// SeriesStream iterates the series of one Series call.
type SeriesStream struct {
	stream   storepb.Store_SeriesClient
	cancel   context.CancelFunc
	batch    []*storepb.Series
	cur      *storepb.Series
	warnings []string
	err      error
	done     bool
}

// Next advances to the next series.
func (s *SeriesStream) Next() bool {
	for !s.done {
		if len(s.batch) > 0 {
			s.cur, s.batch = s.batch[0], s.batch[1:]
			return true
		}
		resp, err := s.stream.Recv()
		if err != nil {
			s.done = true
			s.cancel()
			if !errors.Is(err, io.EOF) {
				s.err = err
			}
			return false
		}
		switch r := resp.Result.(type) {
		case *storepb.SeriesResponse_Series:
			s.cur = r.Series
			return true
		case *storepb.SeriesResponse_Batch:
			s.batch = r.Batch.GetSeries()
		case *storepb.SeriesResponse_Warning:
			s.warnings = append(s.warnings, r.Warning)
		}
	}
	return false
}

// At returns the current series.
func (s *SeriesStream) At() *storepb.Series { return s.cur }

// Err returns the error that ended the stream, if any.
func (s *SeriesStream) Err() error { return s.err }

// Warnings returns the warnings received so far.
func (s *SeriesStream) Warnings() []string { return s.warnings }

// Close abandons the stream.
func (s *SeriesStream) Close() {
	s.done = true
	s.cancel()
}
