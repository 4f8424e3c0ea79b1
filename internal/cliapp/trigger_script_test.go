package cliapp_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"sync"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/trigger"
)

// receiver is the scripts' trigger receiver, a real HTTP server on
// 127.0.0.1 for the rest of the script:
//
//	receiver NAME SECRETFILE  verifies triggers with the secret in
//	                          SECRETFILE (trigger.Verifier's Handler) and
//	                          appends each accepted message to NAME.jsonl
//	receiver NAME -closed     a URL where nothing listens
//
// Either way $NAME is its URL (http://127.0.0.1:PORT, no path).
func receiver(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: receiver NAME SECRETFILE|-closed")
	}
	name := args[0]
	if args[1] == "-closed" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		ts.Check(err)
		ts.Setenv(name, "http://"+l.Addr().String())
		ts.Check(l.Close())
		return
	}
	secret, err := trigger.ReadSecret(fsys.OS(), ts.MkAbs(args[1]))
	ts.Check(err)
	log := ts.MkAbs(name + ".jsonl")
	var mu sync.Mutex
	h := trigger.NewVerifier(secret, nil).Handler(func(_ context.Context, m trigger.Message) error {
		mu.Lock()
		defer mu.Unlock()
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		f, err := os.OpenFile(log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.Write(append(b, '\n'))
		return err
	}, nil)
	srv := httptest.NewServer(h)
	ts.Defer(srv.Close)
	ts.Setenv(name, srv.URL)
	ts.Setenv(name+"_HOSTPORT", strings.TrimPrefix(srv.URL, "http://"))
}
