// Command publish turns a source tree into an immutable numbered snapshot and
// serves it atomically. See `publish --help` and docs/operating.md.
package main

import "github.com/seqmirror/seqmirror/internal/cliapp"

func main() { cliapp.Main(cliapp.PublishApp) }
