// Command publish turns a source tree into an immutable snapshot of an
// export root and serves it (docs/operating.md). Its highly available mode
// (--etcd) runs in publish-etcd, to which it hands such command lines.
package main

import "github.com/seqmirror/seqmirror/internal/cliapp"

func main() { cliapp.Main(cliapp.PublishApp) }
