// Command genman writes the man pages of publish and mirror-sync, generated
// from their CLI definitions, into the directory given as its argument
// (make install puts them in share/man/man1).
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/urfave/cli/v2"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: genman DIR")
		os.Exit(2)
	}
	for _, app := range []*cli.App{cliapp.PublishApp(io.Discard, io.Discard), cliapp.MirrorApp(io.Discard, io.Discard)} {
		if err := write(os.Args[1], app); err != nil {
			fmt.Fprintln(os.Stderr, "genman:", err)
			os.Exit(1)
		}
	}
}

func write(dir string, app *cli.App) error {
	man, err := app.ToManWithSection(1)
	if err != nil {
		return fmt.Errorf("%s: %w", app.Name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, app.Name+".1"), []byte(man), 0o644)
}
