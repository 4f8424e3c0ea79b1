package cliapp

import (
	"fmt"
	"net"
	"path/filepath"

	"github.com/seqmirror/seqmirror/internal/server"
	"github.com/urfave/cli/v2"
)

// serveCommand is `publish serve` and `mirror-sync serve`: one definition
// for both tools (a master and a mirror serve their roots alike).
func serveCommand() *cli.Command {
	return &cli.Command{
		Name:      "serve",
		Usage:     "serve ROOT read-only over HTTP(S): seq files, the snapshot pointer, status.json, manifests, snapshots, /current/ redirects, /metrics",
		UsageText: "serve --root ROOT [--listen ADDR] [--tls-cert FILE --tls-key FILE] [--max-conns N]\n   serve nginx-config --root ROOT [--location PREFIX]",
		Description: "Serves the export root over HTTP for mirror-sync --upstream http://..., the Go client,\n" +
			"browsers and monitors: never .work/, .lock, temp files or a symlink out of a snapshot.\n" +
			"Snapshot files carry strong ETags from the manifest and are cacheable forever; seq files,\n" +
			"seq/current and status.json are no-cache. /current/PATH redirects to /snapshots/N/PATH.\n" +
			"/metrics is for Prometheus. SIGTERM or SIGINT stops it gracefully (exit 0).\n" +
			"See docs/operating.md (\"Serving over HTTP\").",
		Flags: []cli.Flag{rootFlag,
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8080", Usage: "listen on `ADDR` (host:port; :80 for every address)"},
			&cli.StringFlag{Name: "tls-cert", Usage: "serve HTTPS (and HTTP/2) with the PEM certificate chain `FILE`"},
			&cli.StringFlag{Name: "tls-key", Usage: "the PEM private key `FILE` of --tls-cert"},
			&cli.IntFlag{Name: "max-conns", Value: server.DefaultMaxConns, Usage: "serve at most `N` connections at once (more wait to be accepted)"},
			quietFlag, verboseFlag},
		Action:      serveAction,
		Subcommands: []*cli.Command{nginxConfigCommand()},
	}
}

func serveAction(c *cli.Context) error {
	e, r, err := openRoot(c)
	if err != nil {
		return err
	}
	cert, key := c.String("tls-cert"), c.String("tls-key")
	if (cert == "") != (key == "") {
		return Usage("--tls-cert and --tls-key go together")
	}
	if c.Int("max-conns") < 1 {
		return Usage("--max-conns must be at least 1, got %d", c.Int("max-conns"))
	}
	log := newLogger(c)
	h, err := server.NewHandler(server.Options{Root: r.Dir, Log: log, Now: e.now})
	if err != nil {
		return err
	}
	defer h.Close()
	ln, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.String("listen"), err)
	}
	if !c.Bool("quiet") {
		scheme := "http"
		if cert != "" {
			scheme = "https"
		}
		fmt.Fprintf(c.App.ErrWriter, "%s serve: serving %s on %s://%s\n", c.App.Name, r.Dir, scheme, ln.Addr())
	}
	err = server.Serve(c.Context, ln, h, server.ServerOptions{TLSCert: cert, TLSKey: key, MaxConns: c.Int("max-conns"), Files: h})
	if err == nil && !c.Bool("quiet") {
		fmt.Fprintf(c.App.ErrWriter, "%s serve: %s; stopped\n", c.App.Name, interruptedBy(c.Context))
	}
	return err
}

// nginxConfigCommand is `serve nginx-config`.
func nginxConfigCommand() *cli.Command {
	return &cli.Command{
		Name:  "nginx-config",
		Usage: "print an nginx location block that serves ROOT as serve does (paste it into a server block)",
		Description: "Prints a location block for nginx: the same paths as serve (never .work/, .lock,\n" +
			"temp files), the same Cache-Control headers, no symlink below ROOT followed, listings\n" +
			"only inside snapshots. docs/operating.md says how to do the same with Apache.",
		Flags: []cli.Flag{rootFlag,
			&cli.StringFlag{Name: "location", Value: "/", Usage: "serve ROOT at URL `PREFIX` (/ or /a/b/)"},
		},
		Action: nginxConfigAction,
	}
}

func nginxConfigAction(c *cli.Context) error {
	e, r, err := openRoot(c)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(r.Dir)
	if err != nil {
		return err
	}
	conf, err := server.NginxConfig(abs, c.String("location"))
	if err != nil {
		return Usage("%v", err)
	}
	_, err = fmt.Fprint(e.out, conf)
	return err
}
