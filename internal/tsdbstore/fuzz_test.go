package tsdbstore

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// FuzzSeriesRequest sends arbitrary Series requests (matchers of every type with any
// name and pattern, time ranges, aggregates, hints, replica labels, skip_chunks, limits)
// over gRPC to a store with real data: every answer is either sorted series within the
// request or a clear error code, never a panic or a hang.
func FuzzSeriesRequest(f *testing.F) {
	seed := func(r *storepb.SeriesRequest) {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(allTime(eq("__name__", "up")))
	seed(&storepb.SeriesRequest{MinTime: 0, MaxTime: 60_000, Matchers: []*storepb.LabelMatcher{re("job", "a|b.*"), {Type: storepb.LabelMatcher_NRE, Name: "x", Value: "("}},
		SkipChunks: true, Aggregates: []storepb.Aggr{storepb.Aggr_COUNT, storepb.Aggr_SUM}, WithoutReplicaLabels: []string{"replica"}, Limit: 1})
	seed(&storepb.SeriesRequest{MinTime: math.MaxInt64, MaxTime: math.MinInt64, Matchers: []*storepb.LabelMatcher{{Type: 9, Name: "", Value: ""}}})
	db := openDB(f, f.TempDir(), nil)
	for i := range 20 {
		appendSeries(f, db, labels.FromStrings("__name__", "up", "job", string(rune('a'+i%3)), "instance", string(rune('a'+i))), floats(0, 50, float64(i)))
	}
	c := serveStore(f, New(db, labels.FromStrings("replica", "r0", "cluster", "c"), Options{}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var req storepb.SeriesRequest
		if proto.Unmarshal(b, &req) != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ss, _, err := collect(t, c, &req)
		if ctx.Err() != nil {
			t.Fatalf("request %v hung", &req)
		}
		if err != nil {
			switch status.Code(err) {
			case codes.InvalidArgument, codes.ResourceExhausted, codes.Unimplemented:
				return
			}
			t.Fatalf("request %v: unexpected error %v", &req, err)
		}
		for i := 1; i < len(ss); i++ {
			if storeapi.CompareLabels(ss[i-1].Labels, ss[i].Labels) >= 0 {
				t.Fatalf("request %v: series out of order at %d", &req, i)
			}
		}
	})
}
