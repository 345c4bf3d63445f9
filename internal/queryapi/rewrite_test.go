package queryapi

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/internal/query"
)

// TestQueryTextRewritesOnlyForDownsampledReads: counting functions are rewritten only
// when the request may read downsampled data; raw reads run the text as sent.
func TestQueryTextRewritesOnlyForDownsampledReads(t *testing.T) {
	a := New(Config{})
	r := httptest.NewRequest("GET", "/api/v1/query?"+url.Values{"query": {"count_over_time(x[1h])"}}.Encode(), nil)
	if got := a.queryText(r, query.Options{}); got != "count_over_time(x[1h])" {
		t.Errorf("raw read: %s", got)
	}
	if got := a.queryText(r, query.Options{MaxSourceResolution: 300_000}); !strings.HasPrefix(got, "sum_over_time(") {
		t.Errorf("5m read: %s, want the rewrite", got)
	}
}
