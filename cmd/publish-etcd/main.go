// Command publish-etcd is publish with its highly available mode linked
// in (--etcd, --follow, publish clobber; docs/operating.md section 19).
// publish hands such runs to it, unchanged, so that publish itself does
// not pay the start-up of etcd's client (gRPC and protobuf registrations,
// ~5 ms of every run). It takes every command line publish takes.
package main

import (
	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/seqmirror/seqmirror/internal/cliapp/hacli"
)

func main() { cliapp.Main(hacli.PublishApp) }
