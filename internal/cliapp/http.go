package cliapp

import (
	"errors"

	"github.com/seqmirror/seqmirror/internal/transport/web"
	"github.com/urfave/cli/v2"
)

// caFileFlag is the HTTPS upstreams' extra trust (transport.HTTPOptions).
var caFileFlag = &cli.StringFlag{Name: "ca-file", Usage: "https upstreams: also trust the CA certificates (PEM) in `FILE`, beside the system's"}

// webHint is hint for the errors of HTTP(S) upstreams, asked first: they
// wrap the content and refusal errors whose hints would mislead.
func webHint(err error) string {
	switch {
	case errors.Is(err, web.ErrNoPointer):
		return "the upstream's root has no seq/current, which HTTP mirrors read (its seqmirror is older): ask its admin to run publish (or mirror-sync) there once with a current seqmirror (a no-op run writes it); meanwhile mirror it over rsync or a path"
	case errors.Is(err, web.ErrNotRoot):
		return "give --upstream the URL of the export root, the directory that holds seq/ and snapshots/ (e.g. https://host/pub/)"
	case errors.Is(err, web.ErrCertificate):
		return "the server's certificate is not signed by a CA this system trusts: give that CA's certificate (PEM) with --ca-file, or install it in the system's store"
	case errors.Is(err, web.ErrRedirect):
		return "the web server redirects elsewhere: give --upstream the address it redirects to (the served snapshot is unchanged)"
	case errors.Is(err, web.ErrEncoding):
		return "the web server compresses what it serves: turn compression off where it serves the export root (nginx: gzip off, no gzip_static; Apache: no mod_deflate there); the served snapshot is unchanged"
	}
	return ""
}
