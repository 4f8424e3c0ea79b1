// Command publish turns a source tree into an immutable numbered snapshot and
// serves it atomically. See `publish --help` and docs/operating.md.
package main

import (
	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/seqmirror/seqmirror/internal/cliapp/hacli"
)

func main() { cliapp.Main(hacli.PublishApp) }
