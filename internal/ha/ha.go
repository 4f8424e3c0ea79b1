package ha

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/ha/haerr"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// The sentinel errors of package ha (package haerr, which the CLI maps to
// exit codes without linking etcd's client).
var (
	ErrNotLeader   = haerr.ErrNotLeader
	ErrNumberTaken = haerr.ErrNumberTaken
	ErrBehind      = haerr.ErrBehind
	ErrConfig      = haerr.ErrConfig
)

// DefaultPrefix is where the group's keys live unless Config.Prefix says.
const DefaultPrefix = haerr.DefaultPrefix

// Config is how a master joins its group.
type Config struct {
	Endpoints []string      // etcd client URLs (http://host:2379)
	Prefix    string        // key prefix of the group ("": DefaultPrefix)
	TTL       time.Duration // lease TTL: whole seconds, at least 1s
	// Name is the master's name in the group (unique per master); Address
	// is where the other masters and the mirrors reach its root.
	Name, Address string
	DialTimeout   time.Duration // per etcd request and to connect (0: 5s)
	FS            fsys.FS       // reads manifests (nil: the real filesystem)
	Log           *slog.Logger  // nil: discard
}

func (c *Config) check() error {
	switch {
	case len(c.Endpoints) == 0:
		return fmt.Errorf("%w: no etcd endpoint", ErrConfig)
	case c.TTL < time.Second || c.TTL%time.Second != 0:
		return fmt.Errorf("%w: lease TTL %s is not a whole number of seconds of at least 1s", ErrConfig, c.TTL)
	case c.Name == "" || strings.ContainsAny(c.Name, "/\n"):
		return fmt.Errorf("%w: master name %q is empty or holds a slash or line break", ErrConfig, c.Name)
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.FS == nil {
		c.FS = fsys.OS()
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Master is a master's record (Prefix/masters/NAME, held by its lease) and
// the value of its election key: where it is and what it serves.
type Master struct {
	Name     string `json:"name"`
	Address  string `json:"address,omitempty"`
	Snapshot uint64 `json:"snapshot,omitempty"`
	Manifest string `json:"manifest,omitempty"`
}

// Record is the group's record of one snapshot number
// (Prefix/snapshots/N, and Prefix/head for the highest).
type Record struct {
	Snapshot uint64    `json:"snapshot"`
	Manifest string    `json:"manifest"` // Digest of its manifest file
	Master   string    `json:"master"`   // who claimed it
	Time     time.Time `json:"time"`
}

// keys of a group.
type keys string

func (k keys) election() string          { return string(k) + "election/" }
func (k keys) master(name string) string { return string(k) + "masters/" + name }
func (k keys) masters() string           { return string(k) + "masters/" }
func (k keys) snapshots() string         { return string(k) + "snapshots/" }
func (k keys) head() string              { return string(k) + "head" }

// snapshot is the key of number n: zero-padded, so keys sort as numbers.
func (k keys) snapshot(n uint64) string { return fmt.Sprintf("%s%020d", k.snapshots(), n) }

// Digest is the identity the group records for a manifest: "sha256:" and
// the hex SHA-256 of the manifest file's bytes.
func Digest(f fsys.FS, path string) (string, error) {
	h, err := f.Open(path)
	if err != nil {
		return "", fmt.Errorf("digest manifest: %w", err)
	}
	defer h.Close()
	sum := sha256.New()
	if _, err := io.Copy(sum, h); err != nil {
		return "", fmt.Errorf("digest manifest %s: %w", path, err)
	}
	return "sha256:" + hex.EncodeToString(sum.Sum(nil)), nil
}

// dial connects to etcd and checks that it answers.
func dial(ctx context.Context, cfg *Config) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: cfg.Endpoints, DialTimeout: cfg.DialTimeout, Logger: zap.NewNop(),
		DialKeepAliveTime: time.Second, DialKeepAliveTimeout: cfg.DialTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	tctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if _, err := cli.Get(tctx, keys(cfg.Prefix).head()); err != nil {
		cli.Close()
		return nil, fmt.Errorf("connect to etcd %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	return cli, nil
}

// getJSON reads key into v; ok is false if there is no such key.
func getJSON(ctx context.Context, kv clientv3.KV, key string, v any) (rev int64, ok bool, err error) {
	resp, err := kv.Get(ctx, key)
	if err != nil {
		return 0, false, fmt.Errorf("read %s from etcd: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, false, nil
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, v); err != nil {
		return 0, false, fmt.Errorf("etcd key %s: %w", key, err)
	}
	return resp.Kvs[0].ModRevision, true, nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs of strings and numbers
	}
	return string(b)
}

// newSession grants a lease of ttl (bounded by timeout: etcd may be away)
// and keeps it alive until ctx ends or the lease is lost.
func newSession(ctx context.Context, cli *clientv3.Client, ttl, timeout time.Duration) (*concurrency.Session, error) {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	lease, err := cli.Grant(tctx, int64(ttl/time.Second))
	if err != nil {
		return nil, fmt.Errorf("grant an etcd lease: %w", err)
	}
	return concurrency.NewSession(cli, concurrency.WithLease(lease.ID), concurrency.WithContext(ctx),
		concurrency.WithTTL(int(ttl/time.Second)))
}
