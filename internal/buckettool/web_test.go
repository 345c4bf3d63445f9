package buckettool

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
)

func startWeb(t *testing.T, bkt objstore.Bucket) (*Web, *httptest.Server, *bool) {
	t.Helper()
	ready := new(bool)
	w := NewWeb(bkt, discard(), WebOptions{Refresh: time.Hour, Timeout: time.Minute, OnReady: func() { *ready = true }})
	w.pageMinAge = 0
	mux := http.NewServeMux()
	w.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return w, srv, ready
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestWebPage(t *testing.T) {
	bkt, a, b, c, del := listBucket(t)
	overlap := upload(t, bkt, spec{mint: base + hour, maxt: base + 3*hour, labels: eu1})
	_, srv, ready := startWeb(t, bkt)
	if code, _ := httpGet(t, srv.URL+"/api/v1/blocks"); code != http.StatusServiceUnavailable {
		t.Errorf("/api/v1/blocks before the first refresh: %d", code)
	}
	code, page := httpGet(t, srv.URL+"/")
	if code != http.StatusOK || !*ready {
		t.Fatalf("GET /: %d, ready %v", code, *ready)
	}
	for _, m := range []*block.Meta{a, b, c, del, overlap} {
		if !strings.Contains(page, `<a href="meta/`+m.ULID.String()+`">`) {
			t.Errorf("page has no link to block %s", m.ULID)
		}
	}
	for _, frag := range []string{"<svg", `class="l3"`, `class="l1 del"`, `class="l1 ovl"`, "1 overlap", "Unreadable meta.json",
		"Partial uploads", `{cluster=&#34;us1&#34;, replica=&#34;a&#34;}`, "5m", `http-equiv="refresh" content="3600"`} {
		if !strings.Contains(page, frag) {
			t.Errorf("page lacks %q", frag)
		}
	}
	if strings.Contains(page, "<script") {
		t.Error("page uses JavaScript")
	}

	// /meta/<id> serves meta.json as stored.
	code, body := httpGet(t, srv.URL+"/meta/"+a.ULID.String())
	if code != http.StatusOK || body != string(get(t, bkt, a.ULID.String()+"/meta.json")) {
		t.Errorf("/meta/<a>: %d %q", code, body)
	}
	if code, _ := httpGet(t, srv.URL+"/meta/"+ulid.Make().String()); code != http.StatusNotFound {
		t.Errorf("/meta/<unknown>: %d", code)
	}
	if code, _ := httpGet(t, srv.URL+"/meta/..%2fx"); code != http.StatusBadRequest {
		t.Errorf("/meta/<not a ULID>: %d", code)
	}
	if code, _ := httpGet(t, srv.URL+"/nope"); code != http.StatusNotFound {
		t.Errorf("/nope: %d", code)
	}

	// A reload reads the bucket again.
	later := upload(t, bkt, spec{mint: base + 8*hour, maxt: base + 10*hour, labels: us1})
	if _, page := httpGet(t, srv.URL+"/"); !strings.Contains(page, later.ULID.String()) {
		t.Error("reload did not show a new block")
	}

	code, body = httpGet(t, srv.URL+"/api/v1/blocks")
	var raw struct {
		Status string `json:"status"`
		Data   struct {
			Blocks []struct {
				ULID    string                     `json:"ulid"`
				Meta    *block.Meta                `json:"meta"`
				Marked  map[string]json.RawMessage `json:"marked"`
				Partial bool                       `json:"partial"`
				Error   string                     `json:"error"`
			} `json:"blocks"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &raw); err != nil || code != 200 || raw.Status != "success" {
		t.Fatalf("/api/v1/blocks: %d %v %s", code, err, body)
	}
	var metas, partial, corrupt, marked int
	for _, bl := range raw.Data.Blocks {
		if bl.Meta != nil && bl.Meta.ULID.String() == bl.ULID {
			metas++
		}
		if bl.Partial {
			partial++
		}
		if bl.Error != "" {
			corrupt++
		}
		if _, ok := bl.Marked[block.DeletionMarkFilename]; ok && bl.ULID == del.ULID.String() {
			marked++
		}
	}
	if metas != 6 || partial != 1 || corrupt != 1 || marked != 1 {
		t.Errorf("/api/v1/blocks: %d metas, %d partial, %d corrupt, %d marked:\n%s", metas, partial, corrupt, marked, body)
	}
}

func TestWebUnreachable(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	upload(t, bkt, spec{mint: base, maxt: base + 2*hour, labels: eu1})
	failing := &failingBucket{Bucket: bkt}
	w, srv, ready := startWeb(t, failing)
	if err := w.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	failing.fail = true
	code, page := httpGet(t, srv.URL+"/")
	if code != http.StatusOK || !*ready || !strings.Contains(page, "Cannot read the bucket") || !strings.Contains(page, "Showing the state read at") {
		t.Errorf("page with an unreachable bucket: %d\n%s", code, page)
	}
	code, body := httpGet(t, srv.URL+"/api/v1/blocks")
	if code != http.StatusOK || !strings.Contains(body, `"lastError":"read bucket: list blocks in bucket: bucket unreachable"`) {
		t.Errorf("/api/v1/blocks: %d %s", code, body)
	}
}

type failingBucket struct {
	objstore.Bucket
	fail bool
}

func (b *failingBucket) Iter(ctx context.Context, dir string, f func(string) error, opts ...objstore.IterOption) error {
	if b.fail {
		return errUnreachable
	}
	return b.Bucket.Iter(ctx, dir, f, opts...)
}

var errUnreachable = &unreachableError{}

type unreachableError struct{}

func (*unreachableError) Error() string { return "bucket unreachable" }
