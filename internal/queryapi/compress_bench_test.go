package queryapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkCompressedSmallResponse is the compression cost of a small query's answer (one
// series of 720 points, about 20 KB of JSON) as a dashboard panel asks for it, with gzip.
func BenchmarkCompressedSmallResponse(b *testing.B) {
	body := []byte(`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"job":"api"},"values":[`)
	for i := range 720 {
		if i > 0 {
			body = append(body, ',')
		}
		body = fmt.Appendf(body, `[%d.%03d,"%g"]`, 1700000000+i*120, i%1000, 1234.5678+float64(i)*0.37)
	}
	body = append(body, `]}]}}`...)
	req := httptest.NewRequest(http.MethodGet, "/api/v1/query_range", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	comp := newCompressors()
	for b.Loop() {
		w := httptest.NewRecorder()
		cw := comp.writer(w, req)
		if _, err := cw.Write(body); err != nil {
			b.Fatal(err)
		}
		cw.Close()
	}
}

// BenchmarkRespondSmallMatrix is the whole answer of a small query (one series of 720
// points) from the result to the gzip-compressed body: envelope, JSON and compression.
func BenchmarkRespondSmallMatrix(b *testing.B) {
	m := benchMatrix(1, 720)
	a := &API{comp: newCompressors()}
	req := httptest.NewRequest(http.MethodGet, "/api/v1/query_range", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	res := result{data: func(j *jsonWriter) { j.writeMatrix(m) }}
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		cw := a.comp.writer(w, req)
		a.respond(cw, req, res)
		cw.Close()
	}
}
