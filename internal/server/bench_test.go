package server_test

import (
	"net/http/httptest"
	"testing"
)

// BenchmarkHandlerFile is the handler's own cost of one small snapshot
// file (no network): `go test -bench HandlerFile ./internal/server/`.
func BenchmarkHandlerFile(b *testing.B) {
	fx := newFixture(b)
	req := httptest.NewRequest("GET", "/snapshots/1/dir/x.txt", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		fx.h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}
