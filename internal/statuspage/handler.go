package statuspage

import (
	"bytes"
	"context"
	"net/http"
)

// contentPolicy forbids scripts and every load: the page needs its inline
// style and nothing else.
const contentPolicy = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

// Handler serves the status page for GET and HEAD of any path it is
// mounted at: source makes the Page of each request (with the request's
// context). A source error is a 503 with its text; any other method is 405.
func Handler(source func(context.Context) (Page, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		p, err := source(r.Context())
		if err != nil {
			http.Error(w, "status page: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		var buf bytes.Buffer
		if err := Render(&buf, p); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", contentPolicy)
		_, _ = w.Write(buf.Bytes()) // HEAD: net/http sends the headers only
	})
}
