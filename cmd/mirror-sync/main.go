// Command mirror-sync brings a mirror level with its upstream without ever
// serving a torn tree. See `mirror-sync --help` and docs/operating.md.
package main

import "github.com/seqmirror/seqmirror/internal/cliapp"

func main() { cliapp.Main(cliapp.MirrorApp) }
