package cliapp

import (
	"errors"
	"fmt"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/sign"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/urfave/cli/v2"
)

// Flags of signed snapshots (docs/protocol.md section 10, docs/operating.md
// section 16).
var (
	signKeyFlag      = &cli.StringFlag{Name: "sign-key", Usage: "sign each snapshot and a timestamp with the minisign secret key in `FILE` (made by `publish keygen`, or `minisign -G`)"}
	passwordFileFlag = &cli.StringFlag{Name: "password-file", Usage: "the secret key is encrypted with the password in `FILE` (its bytes less one trailing newline); nothing ever prompts"}
	validityFlag     = &cli.DurationFlag{Name: "timestamp-validity", Value: sign.DefaultValidity,
		Usage: "a timestamp signed now is valid for `D`; mirrors and clients that see only expired ones report frozen (run `publish resign` from cron well within it)"}
	trustKeyFlag = &cli.StringSliceFlag{Name: "trust-key", Usage: "verify the master's signatures with the minisign public key in `FILE`, before anything is served; repeat it to trust several keys (a rotation); without it nothing is verified and status says unsigned"}
)

// minValidity is the shortest --timestamp-validity: statements carry
// whole seconds.
const minValidity = time.Second

// signer reads --sign-key and --password-file (nil, nil without
// --sign-key).
func signer(c *cli.Context) (*sign.Signer, error) {
	key := c.String("sign-key")
	if key == "" {
		if c.String("password-file") != "" {
			return nil, Usage("--password-file is the password of --sign-key's key: give --sign-key")
		}
		return nil, nil
	}
	var pw []byte
	if p := c.String("password-file"); p != "" {
		var err error
		if pw, err = sign.ReadPassword(p); err != nil {
			return nil, err
		}
	}
	return sign.LoadSigner(key, pw)
}

// validity reads --timestamp-validity.
func validity(c *cli.Context) (time.Duration, error) {
	v := c.Duration("timestamp-validity")
	if v < minValidity {
		return 0, Usage("--timestamp-validity must be at least %s, got %s", minValidity, v)
	}
	return v, nil
}

// publishSigning reads publish's signing flags into opt.
func publishSigning(c *cli.Context, opt *snapshot.PublishOptions) error {
	var err error
	if opt.Signer, err = signer(c); err != nil {
		return err
	}
	opt.Validity, err = validity(c)
	return err
}

// refreshUnchanged is a signing publish that found nothing changed: it
// signs a new timestamp if the one held is past half its validity (so a
// publish from cron keeps the timestamp fresh on its own).
func refreshUnchanged(e *env, r *export.Root, res snapshot.PublishResult, opt snapshot.PublishOptions) error {
	if res.Published || opt.Signer == nil {
		return nil
	}
	ro := snapshot.ResignOptions{Signer: opt.Signer, Validity: opt.Validity, LockWait: opt.LockWait, Now: e.now, IfStale: true}
	_, err := snapshot.Resign(e.c.Context, r, ro)
	return err
}

// trust reads --trust-key (nil, nil without it).
func trust(c *cli.Context) (*sign.Trust, error) {
	keys := c.StringSlice("trust-key")
	if len(keys) == 0 {
		return nil, nil
	}
	return sign.LoadTrust(keys)
}

// verifySignatures is verify's --trust-key: each snapshot's signature
// must verify over its full manifest's bytes, and a partial snapshot's
// manifest must be a subset of that (export.Root.VerifySignature), before
// its tree is checked against the manifest.
func verifySignatures(c *cli.Context, r *export.Root, nums []uint64) error {
	t, err := trust(c)
	if err != nil || t == nil {
		return err
	}
	for _, n := range nums {
		if _, err := r.VerifySignature(t, n); err != nil {
			return fmt.Errorf("snapshot %d of %s: %w", n, r.Dir, err)
		}
	}
	return nil
}

// keygenCommand is `publish keygen PREFIX`.
func keygenCommand() *cli.Command {
	return &cli.Command{
		Name:      "keygen",
		Usage:     "make a minisign key pair: PREFIX.key (secret, mode 0600; unencrypted unless --password-file) and PREFIX.pub",
		ArgsUsage: "PREFIX",
		Flags:     []cli.Flag{passwordFileFlag, jsonFlag, quietFlag},
		Action:    keygenAction,
	}
}

func keygenAction(c *cli.Context) error {
	if c.NArg() != 1 || c.Args().First() == "" {
		return Usage("keygen takes one argument, the PREFIX of PREFIX.key and PREFIX.pub")
	}
	prefix := c.Args().First()
	var pw []byte
	if p := c.String("password-file"); p != "" {
		var err error
		if pw, err = sign.ReadPassword(p); err != nil {
			return err
		}
	}
	pub, err := sign.WriteKeyPair(prefix, pw, sign.DefaultKDF)
	if err != nil {
		return err
	}
	e := envFor(c)
	out := map[string]any{"key_id": sign.KeyID(pub.ID()), "secret_key": prefix + ".key", "public_key": prefix + ".pub", "encrypted": len(pw) > 0}
	switch {
	case c.Bool("json"):
		return e.printJSON(out)
	case c.Bool("quiet"):
		return nil
	}
	_, err = fmt.Fprintf(e.out, "%s\n", sign.KeyID(pub.ID()))
	return err
}

// resignCommand is `publish resign`.
func resignCommand() *cli.Command {
	return &cli.Command{
		Name:   "resign",
		Usage:  "sign a new timestamp for the snapshot ROOT serves (from cron, well within --timestamp-validity); prints its expiry",
		Flags:  []cli.Flag{rootFlag, signKeyFlag, passwordFileFlag, validityFlag, waitFlag, jsonFlag, quietFlag, verboseFlag},
		Action: resignAction,
	}
}

func resignAction(c *cli.Context) error {
	e, err := newEnv(c)
	if err != nil {
		return err
	}
	r, err := e.existingRoot()
	if err != nil {
		return err
	}
	s, err := signer(c)
	if err != nil {
		return err
	}
	if s == nil {
		return Usage("--sign-key is required: the master's minisign secret key")
	}
	v, err := validity(c)
	if err != nil {
		return err
	}
	wait, err := lockWait(c)
	if err != nil {
		return err
	}
	res, err := snapshot.Resign(c.Context, r, snapshot.ResignOptions{Signer: s, Validity: v, LockWait: wait, Now: e.now})
	if err != nil {
		return quietOutcome(c, r, err)
	}
	switch {
	case c.Bool("json"):
		return e.printJSON(res)
	case c.Bool("quiet"):
		return nil
	}
	_, err = fmt.Fprintf(e.out, "%d %s\n", res.Snapshot, res.Expires.Format(time.RFC3339))
	return err
}

// signHint says what to do about a refused signature.
func signHint(err error) string {
	switch {
	case errors.Is(err, sign.ErrKeyEncrypted):
		return "the secret key is encrypted: give its password with --password-file FILE (nothing prompts), or make an unencrypted key (publish keygen PREFIX, kept mode 0600)"
	case errors.Is(err, mirror.ErrSignedRollback):
		return "nothing was changed; the upstream serves a signed snapshot older than one already seen (a replay, or a master restored from backup): if it went back on purpose, pass --allow-rollback"
	case errors.Is(err, sign.ErrUntrusted):
		return "nothing was changed; the signature is not by a --trust-key key: if the master rotated its key, add its new public key with another --trust-key; otherwise the upstream (or a tier above it) forged or altered the snapshot: tell its admin, or pick another upstream"
	case errors.Is(err, sign.ErrMismatch):
		return "nothing was changed; the signature is valid but vouches for another snapshot or manifest: a tier above rewrote the snapshot, or mixed two: tell the upstream's admin, or pick another upstream"
	case errors.Is(err, sign.ErrMalformed):
		return "nothing was changed; a signature file is missing, truncated or garbled upstream (a copy cut short, or not a minisign file): check it with `minisign -V -p KEY.pub -m snapshots/N.manifest` there; a master that does not sign needs mirrors without --trust-key"
	}
	return ""
}
