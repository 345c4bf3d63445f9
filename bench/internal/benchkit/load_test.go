package benchkit

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestClosedLoop(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			http.Error(w, "nope", http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	res := ClosedLoop(context.Background(), LoadClient(2), 2, 200*time.Millisecond, func(_, i int) (string, string) {
		if i%2 == 1 {
			return srv.URL + "/bad", "bad"
		}
		return srv.URL + "/ok", "ok"
	})
	if res.OK == 0 || res.Errs == 0 || len(res.Lat) != res.OK || res.Wall < 200*time.Millisecond {
		t.Fatalf("tally %+v", res)
	}
	if !strings.HasPrefix(res.FirstErr, "bad: HTTP 500") {
		t.Errorf("first error %q, want it named", res.FirstErr)
	}
}
