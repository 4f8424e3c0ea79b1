package client

import (
	"context"

	"github.com/seqmirror/seqmirror/internal/transport"
)

// OpenUpstream is Open over an upstream the test made (a wrapped one), with
// scratch, an existing directory that Close removes.
func OpenUpstream(ctx context.Context, addr string, up transport.Upstream, scratch string) (*Snapshot, error) {
	return open(ctx, addr, up, scratch, signing{})
}
