package cliapp

import (
	"fmt"
	"io"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/sign"
)

// judgeSigned applies docs/protocol.md section 10 to what check read: the
// served snapshot's signature file sig and the timestamp ts (nil: none).
// With --trust-key both statements are verified (check holds no manifest:
// the statements and their signatures, not the manifest's bytes, which
// sync, verify and the client check) and a refusal is CRITICAL. The
// timestamp (verified, or as ADDR holds it without --trust-key) that has
// expired makes ADDR frozen: CRITICAL.
func (r *checkReport) judgeSigned(sig, ts []byte) {
	if r.trust != nil {
		st, err := r.trust.Verify(sig, sign.KindSnapshot, nil)
		if err == nil && st.Snapshot != r.snapshot {
			err = fmt.Errorf("%w: the signature is of snapshot %d, not %d", sign.ErrMismatch, st.Snapshot, r.snapshot)
		}
		if sig == nil {
			err = fmt.Errorf("%w: no signature of snapshot %d", sign.ErrMalformed, r.snapshot)
		}
		if err != nil {
			r.raise(PluginCritical, "untrusted: %v", err)
			return
		}
		r.signature = export.SignVerified
	}
	if ts == nil {
		if r.trust != nil {
			r.frozen("no timestamp")
		}
		return
	}
	var st sign.Statement
	var err error
	if r.trust != nil {
		st, err = r.trust.VerifyTimestamp(ts, r.snapshot, nil)
	} else {
		st, err = sign.PeekStatement(ts)
	}
	if err != nil {
		r.raise(PluginCritical, "untrusted timestamp: %v", err)
		return
	}
	r.expires = &st.Expires
	if st.Expired(r.now) {
		r.frozen(fmt.Sprintf("the newest timestamp (snapshot %d) expired at %s", st.Snapshot, st.Expires.Format(time.RFC3339)))
	}
}

// frozen marks ADDR frozen (CRITICAL): nothing vouches that it serves
// the master's newest snapshot.
func (r *checkReport) frozen(why string) {
	if r.state == export.StateFresh || r.state == export.StateUpdating {
		r.state, r.problem = export.StateFrozen, why
	}
	r.raise(PluginCritical, "frozen: %s", why)
}

// printSignature is the long output's last line, when ADDR's signature
// mode is known: "signature: unsigned", "signature: verified, timestamp
// expires 2026-12-05T13:00:00Z".
func (r *checkReport) printSignature(w io.Writer) {
	if r.signature == "" {
		return
	}
	fmt.Fprintf(w, "signature: %s", r.signature)
	if r.expires != nil {
		fmt.Fprintf(w, ", timestamp expires %s", r.expires.Format(time.RFC3339))
	}
	fmt.Fprintln(w)
}
