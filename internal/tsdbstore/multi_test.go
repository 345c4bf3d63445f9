package tsdbstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"google.golang.org/grpc/codes"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/infopb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

var tenants = []string{"c", "a", "b"} // not in order: Multi must not depend on it

// tenantValue is the value of up{instance=i} in a tenant, so that every sample names the
// TSDB it came from.
func tenantValue(tenant string, i int) float64 { return float64(int(tenant[0])*100 + i) }

// multiEnv serves a Multi over one TSDB per tenant, each holding up{instance="0".."4"}
// from a tenant-specific start time.
func multiEnv(t *testing.T, opts MultiOptions) (*storeapi.Client, []*Store) {
	var stores []*Store
	for k, tenant := range tenants {
		db := openDB(t, "", nil)
		for i := range 5 {
			appendSeries(t, db, labels.FromStrings("__name__", "up", "instance", fmt.Sprint(i)), floats(int64(k+1)*1000, 4, tenantValue(tenant, i)))
		}
		appendSeries(t, db, labels.FromStrings("__name__", "only_"+tenant), floats(int64(k+1)*1000, 1, 0))
		stores = append(stores, New(db, labels.FromStrings("replica", "r0", "tenant_id", tenant), Options{}))
	}
	m := NewMulti(func() []*Store { return stores }, storepb.StoreType_RECEIVE, opts)
	return serve(t, m.Register), stores
}

func TestMultiInfo(t *testing.T) {
	ready := errors.New("TSDBs still opening")
	c, _ := multiEnv(t, MultiOptions{Ready: func() error { return ready }})
	ctx := context.Background()
	_, err := c.Info(ctx)
	wantCode(t, err, codes.Unavailable)

	ready = nil
	in, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if in.GetComponentType() != "receive" {
		t.Errorf("component %q", in.GetComponentType())
	}
	var sets []string
	for _, ls := range in.GetLabelSets() {
		sets = append(sets, storeapi.LabelsFromProto(ls.GetLabels()).String())
	}
	want := []string{`{replica="r0", tenant_id="a"}`, `{replica="r0", tenant_id="b"}`, `{replica="r0", tenant_id="c"}`}
	if !slices.Equal(sets, want) {
		t.Errorf("label sets %q, want %q", sets, want)
	}
	st := in.GetStore()
	// Tenant "c" is first in the list and starts at 1000.
	if st.GetMinTime() != 1000 || st.GetMaxTime() != math.MaxInt64 || !st.GetSupportsSharding() || !st.GetSupportsWithoutReplicaLabels() {
		t.Errorf("StoreInfo %v", st)
	}
	if len(st.GetTsdbInfos()) != 3 || st.GetTsdbInfos()[0].GetMinTime() != 2000 {
		t.Errorf("TSDB infos %v", st.GetTsdbInfos())
	}
}

func TestMultiInfoWithoutStores(t *testing.T) {
	m := NewMulti(func() []*Store { return nil }, storepb.StoreType_RECEIVE, MultiOptions{})
	in, err := m.Info(context.Background(), &infopb.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st := in.GetStore(); st.GetMinTime() != math.MinInt64 || st.GetMaxTime() != math.MaxInt64 || len(in.GetLabelSets()) != 0 {
		t.Errorf("no stores: %v", in)
	}
}

func TestMultiSeriesMergesTenantsInOrder(t *testing.T) {
	c, _ := multiEnv(t, MultiOptions{})
	got := mustCollect(t, c, allTime(eq("__name__", "up")))
	var want []string
	for i := range 5 {
		for _, tenant := range []string{"a", "b", "c"} {
			want = append(want, fmt.Sprintf(`{__name__="up", instance="%d", replica="r0", tenant_id="%s"}`, i, tenant))
		}
	}
	if !slices.Equal(labelStrings(got), want) {
		t.Fatalf("series\n got %q\nwant %q", labelStrings(got), want)
	}
	for _, s := range got {
		ls := storeapi.LabelsFromProto(s.Labels)
		tenant, i := ls.Get("tenant_id"), int(ls.Get("instance")[0]-'0')
		k := slices.Index(tenants, tenant)
		if err := sameSamples(decode(t, s), floats(int64(k+1)*1000, 4, tenantValue(tenant, i))); err != nil {
			t.Errorf("%s: %v", ls, err)
		}
	}

	// Matchers on the tenant label prune the other tenants.
	got = mustCollect(t, c, allTime(eq("tenant_id", "b"), re("__name__", "up|only_.*")))
	if len(got) != 6 || slices.ContainsFunc(got, func(s *storepb.Series) bool { return storeapi.LabelsFromProto(s.Labels).Get("tenant_id") != "b" }) {
		t.Errorf("tenant b: %q", labelStrings(got))
	}
	_, _, err := collect(t, c, allTime(eq("tenant_id", "b")))
	wantCode(t, err, codes.InvalidArgument)
}

func TestMultiSeriesJoinsTenantsWithoutTheirLabel(t *testing.T) {
	c, _ := multiEnv(t, MultiOptions{})
	req := allTime(eq("__name__", "up"))
	req.WithoutReplicaLabels = []string{"tenant_id", "replica"}
	got := mustCollect(t, c, req)
	if len(got) != 5 {
		t.Fatalf("series %q, want one per instance", labelStrings(got))
	}
	for _, s := range got {
		if len(s.Chunks) != 3 || !slices.IsSortedFunc(s.Chunks, func(a, b *storepb.AggrChunk) int { return int(a.MinTime - b.MinTime) }) {
			t.Errorf("%s: %d chunks, want one per tenant sorted by time", storeapi.LabelsFromProto(s.Labels), len(s.Chunks))
		}
	}
}

func TestMultiLimitsCountTheWholeAnswer(t *testing.T) {
	c, _ := multiEnv(t, MultiOptions{Limits: storeapi.RequestLimits{Series: 10}})
	_, _, err := collect(t, c, allTime(eq("__name__", "up"))) // 5 per tenant, 15 in all
	wantCode(t, err, codes.ResourceExhausted)

	req := allTime(eq("__name__", "up"))
	req.Limit = 4
	if got := mustCollect(t, c, req); len(got) != 4 {
		t.Errorf("limit 4: %d series", len(got))
	}
}

func TestMultiLabels(t *testing.T) {
	c, _ := multiEnv(t, MultiOptions{})
	ctx := context.Background()
	names, err := c.LabelNames(ctx, &storepb.LabelNamesRequest{Matchers: []*storepb.LabelMatcher{re("__name__", "up")}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"__name__", "instance", "replica", "tenant_id"}; !slices.Equal(names.GetNames(), want) {
		t.Errorf("names %q, want %q", names.GetNames(), want)
	}
	for _, tc := range []struct {
		req  *storepb.LabelValuesRequest
		want []string
	}{
		{&storepb.LabelValuesRequest{Label: "tenant_id"}, []string{"a", "b", "c"}},
		{&storepb.LabelValuesRequest{Label: "tenant_id", Limit: 2}, []string{"a", "b"}},
		{&storepb.LabelValuesRequest{Label: "__name__"}, []string{"only_a", "only_b", "only_c", "up"}},
		{&storepb.LabelValuesRequest{Label: "__name__", Matchers: []*storepb.LabelMatcher{re("tenant_id", "a|c")}}, []string{"only_a", "only_c", "up"}},
		{&storepb.LabelValuesRequest{Label: "tenant_id", Matchers: []*storepb.LabelMatcher{eq("__name__", "only_b")}}, []string{"b"}},
		// Only tenant b's head reaches past 47000 (a ends there, c at 46000).
		{&storepb.LabelValuesRequest{Label: "__name__", Start: 47_500, End: math.MaxInt64}, []string{"only_b", "up"}},
	} {
		resp, err := c.LabelValues(ctx, tc.req)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(resp.GetValues(), tc.want) {
			t.Errorf("%v: values %q, want %q", tc.req, resp.GetValues(), tc.want)
		}
	}
	_, err = c.LabelValues(ctx, &storepb.LabelValuesRequest{})
	wantCode(t, err, codes.InvalidArgument)
}

// failingDB is a TSDB whose queriers cannot be opened.
type failingDB struct{}

func (failingDB) ChunkQuerier(int64, int64) (storage.ChunkQuerier, error) {
	return nil, errors.New("disk on fire")
}
func (failingDB) StartTime() (int64, error) { return 0, nil }

func TestMultiLeavesOutAFailingStoreWithAWarning(t *testing.T) {
	_, stores := multiEnv(t, MultiOptions{})
	stores = append(stores, New(failingDB{}, labels.FromStrings("tenant_id", "broken"), Options{}))
	m := NewMulti(func() []*Store { return stores }, storepb.StoreType_RECEIVE, MultiOptions{})
	c := serve(t, m.Register)

	got, warnings, err := collect(t, c, allTime(eq("__name__", "up")))
	if err != nil || len(got) != 15 {
		t.Fatalf("%d series, error %v", len(got), err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "broken") || !strings.Contains(warnings[0], "disk on fire") {
		t.Errorf("warnings %q", warnings)
	}
	resp, err := c.LabelValues(context.Background(), &storepb.LabelValuesRequest{Label: "tenant_id"})
	if err != nil || !slices.Equal(resp.GetValues(), []string{"a", "b", "c"}) || len(resp.GetWarnings()) != 1 {
		t.Errorf("label values %v, error %v", resp, err)
	}
	// A single Store fails the call instead.
	_, _, err = collect(t, serveStore(t, stores[3]), allTime(eq("__name__", "up")))
	wantCode(t, err, codes.Internal)
}
