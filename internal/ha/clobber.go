package ha

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Admin is a connection for an admin's look at a group (no lease, no
// election): Records, Lookup, Clobber.
type Admin struct {
	cli *clientv3.Client
	k   keys
	log func(msg string, args ...any)
}

// Connect opens an admin connection to the group cfg names (only
// Endpoints, Prefix, DialTimeout and Log count).
func Connect(ctx context.Context, cfg Config) (*Admin, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("%w: no etcd endpoint", ErrConfig)
	}
	cfg.Name, cfg.TTL = "admin", time.Second // what check asks of a master
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cli, err := dial(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	return &Admin{cli: cli, k: keys(cfg.Prefix), log: cfg.Log.Info}, nil
}

// Close disconnects.
func (a *Admin) Close() error { return a.cli.Close() }

// Records returns the group's records of snapshots, lowest number first.
func (a *Admin) Records(ctx context.Context) ([]Record, error) {
	rs, _, err := records(ctx, a.cli, a.k)
	return rs, err
}

func records(ctx context.Context, kv clientv3.KV, k keys) ([]Record, []string, error) {
	resp, err := kv.Get(ctx, k.snapshots(), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, nil, fmt.Errorf("read the group's records from etcd: %w", err)
	}
	rs := make([]Record, 0, len(resp.Kvs))
	ks := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var r Record
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, nil, fmt.Errorf("etcd key %s: %w", kv.Key, err)
		}
		rs, ks = append(rs, r), append(ks, string(kv.Key))
	}
	return rs, ks, nil
}

// Lookup returns the record of the live master name (ok false: it is not
// running, or not in this group).
func (a *Admin) Lookup(ctx context.Context, name string) (m Master, ok bool, err error) {
	_, ok, err = getJSON(ctx, a.cli, a.k.master(name), &m)
	return m, ok, err
}

// Masters returns the records of the live masters.
func (a *Admin) Masters(ctx context.Context) ([]Master, error) { return masters(ctx, a.cli, a.k) }

// Clobber forces the group's record to master to's state after a
// disaster: the snapshot it serves (to.Snapshot, to.Manifest) becomes the
// head, every record above it is deleted, and its own number's record is
// set to its manifest. It returns the records it discards (those above
// to.Snapshot, and that of to.Snapshot if it named another manifest); with
// dryRun it only returns them. The change is one transaction, made only
// if the head did not move since the records were read.
func (a *Admin) Clobber(ctx context.Context, to Master, dryRun bool) ([]Record, error) {
	var head Record
	headRev, _, err := getJSON(ctx, a.cli, a.k.head(), &head)
	if err != nil {
		return nil, err
	}
	rs, ks, err := records(ctx, a.cli, a.k)
	if err != nil {
		return nil, err
	}
	var discard []Record
	var ops []clientv3.Op
	for i, r := range rs {
		if r.Snapshot > to.Snapshot || (r.Snapshot == to.Snapshot && r.Manifest != to.Manifest) {
			discard = append(discard, r)
			ops = append(ops, clientv3.OpDelete(ks[i]))
		}
	}
	if dryRun {
		return discard, nil
	}
	if to.Snapshot == 0 {
		ops = append(ops, clientv3.OpDelete(a.k.head()))
	} else {
		rec := mustJSON(Record{Snapshot: to.Snapshot, Manifest: to.Manifest, Master: to.Name, Time: time.Now().UTC()})
		ops = append(ops, clientv3.OpPut(a.k.snapshot(to.Snapshot), rec), clientv3.OpPut(a.k.head(), rec))
	}
	resp, err := a.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(a.k.head()), "=", headRev)).Then(ops...).Commit()
	if err != nil {
		return nil, fmt.Errorf("clobber the group's record: %w", err)
	}
	if !resp.Succeeded {
		return nil, fmt.Errorf("%w: the group's head moved while clobbering; nothing was changed (stop the masters first)", ErrNumberTaken)
	}
	a.log("forced the group's record to a master", "master", to.Name, "snapshot", to.Snapshot, "discarded", describe(discard))
	return discard, nil
}

// describe lists records as "N (manifest, master)".
func describe(rs []Record) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d (%s, %s)", r.Snapshot, r.Manifest, r.Master)
	}
	return b.String()
}
