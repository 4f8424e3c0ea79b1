package testutil

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// NginxExportRoot is the body of an nginx server (for StartNginx) that
// serves the export root at dir as static files, as an admin would: the
// writers' private .work/ and .lock are never served.
func NginxExportRoot(dir string) string {
	return "root " + dir + ";\n" +
		"location ~ (^|/)\\.work(/|$) { return 404; }\n" +
		"location ~ (^|/)\\.lock$ { return 404; }\n"
}

// StartFileServer serves dir as static files with Go's http.FileServer on
// 127.0.0.1 until the test ends, as a plain web server does: symlinks are
// followed, and (like nginx) anything that is neither a regular file nor
// a directory is 404 (a fifo would block http.Dir). It returns the base URL.
func StartFileServer(tb testing.TB, dir string) string {
	tb.Helper()
	s := httptest.NewServer(FileHandler(dir))
	tb.Cleanup(s.Close)
	return s.URL
}

// FileHandler is StartFileServer's handler, for a test server that
// misbehaves on some requests and passes the others on.
func FileHandler(dir string) http.Handler { return http.FileServer(regularDir(dir)) }

// regularDir is http.Dir serving only regular files and directories.
type regularDir string

func (d regularDir) Open(name string) (http.File, error) {
	if strings.Contains(name, "\x00") {
		return nil, fs.ErrNotExist
	}
	p := filepath.Join(string(d), filepath.FromSlash(path.Clean("/"+name)))
	if fi, err := os.Stat(p); err == nil && !fi.IsDir() && !fi.Mode().IsRegular() {
		return nil, fs.ErrNotExist
	}
	return http.Dir(d).Open(name)
}
