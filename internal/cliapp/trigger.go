package cliapp

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/seqmirror/seqmirror/internal/trigger"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/urfave/cli/v2"
)

// Flags of the triggers: mirror-sync trigger and publish --notify.
var (
	secretFileFlag = &cli.StringFlag{Name: "secret-file", Usage: "the shared secret that signs triggers is in `FILE` (mode 0600 or 0640; make one with: head -c 32 /dev/urandom | base64 > FILE)"}
	notifyFlag     = &cli.StringSliceFlag{Name: "notify", Usage: "after publishing a new snapshot, send a trigger to the mirror daemon at `URL` (repeatable; http(s)://host:port; needs --secret-file); a failed trigger is a warning, not a failure"}
	notifyTimeout  = &cli.DurationFlag{Name: "notify-timeout", Value: 10 * time.Second, Usage: "give the --notify triggers together at most `D`"}
)

// sshCommandEnv is where sshd puts the command an ssh client asked for
// when authorized_keys forces another (command="...").
const sshCommandEnv = "SSH_ORIGINAL_COMMAND"

// errSSHCommand is an ssh client's command that forced-command mode does
// not run (exit 2, one line).
var errSSHCommand = errors.New("refused ssh command")

// triggerCommand is mirror-sync trigger.
func triggerCommand() *cli.Command {
	return &cli.Command{
		Name:      "trigger",
		Usage:     "tell a mirror's daemon that a snapshot is available, at once (a signed HTTP request; docs/operating.md, Triggers)",
		ArgsUsage: "URL",
		UsageText: "mirror-sync trigger URL (--snapshot N | --root ROOT) --secret-file F [--name NAME]\n" +
			"   in authorized_keys: command=\"mirror-sync trigger --root ROOT --daemon-url URL --secret-file F\"",
		Description: "Sends one trigger, \"snapshot N (or newer) is available\", to the daemon at URL (a URL\n" +
			"without a path gets /trigger), signed with the secret in F, and exits 0 once the daemon\n" +
			"accepted it (it syncs in the background). Without --snapshot it announces ROOT's served snapshot.\n" +
			"Exit 9: the daemon refused it (another secret, clocks apart); exit 10: no daemon answered.\n\n" +
			"As an ssh forced command (SSH_ORIGINAL_COMMAND is set) it takes no URL: the pusher's\n" +
			"command must be \"sync\", \"sync N\" or \"sync:all\", and the trigger goes to this host's daemon\n" +
			"at --daemon-url; any other command is refused (exit 2) and never run.",
		Flags: []cli.Flag{
			&cli.Uint64Flag{Name: "snapshot", DefaultText: "the one --root serves", Usage: "announce snapshot `N`"},
			secretFileFlag,
			&cli.StringFlag{Name: "root", Usage: "export root `DIR`: its served snapshot is announced; in forced-command mode, the root of the local daemon"},
			&cli.StringFlag{Name: "daemon-url", Usage: "forced-command mode: the local daemon's trigger `URL` (http://host:port, or its --listen address host:port)"},
			nameFlag,
			&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "give up after `D` (then exit 10)"},
			jsonFlag, quietFlag},
		Action: triggerAction,
	}
}

// triggerSend is one trigger the command sends.
type triggerSend struct {
	url    string
	secret []byte
	msg    trigger.Message
}

func triggerAction(c *cli.Context) error {
	if cmd, ok := optionsOf(c).lookupEnv(sshCommandEnv); ok {
		return forcedTrigger(c, cmd)
	}
	e := envFor(c)
	if c.NArg() != 1 {
		return Usage("trigger takes one URL, the daemon's address (http://host:port), got %d arguments", c.NArg())
	}
	if c.IsSet("daemon-url") {
		return Usage("--daemon-url is for the ssh forced-command mode; give the daemon's URL as the argument")
	}
	url, err := trigger.URL(c.Args().First())
	if err != nil {
		return Usage("%w", err)
	}
	n, err := announced(e)
	if err != nil {
		return err
	}
	secret, err := readSecret(e)
	if err != nil {
		return err
	}
	origin := c.String("name")
	if origin == "" {
		origin = c.String("root")
	}
	return deliver(e, triggerSend{url, secret, trigger.Message{Snapshot: n, Origin: origin}}, "")
}

// announced is the snapshot a trigger names: --snapshot, else the one
// --root serves.
func announced(e *env) (uint64, error) {
	if e.c.IsSet("snapshot") {
		if e.c.Uint64("snapshot") == 0 {
			return 0, Usage("--snapshot must be at least 1")
		}
		return e.c.Uint64("snapshot"), nil
	}
	if e.c.String("root") == "" {
		return 0, Usage("give --snapshot N, or --root ROOT to announce the snapshot ROOT serves")
	}
	r, err := e.existingRoot()
	if err != nil {
		return 0, err
	}
	n, err := r.Current()
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, fmt.Errorf("%s serves no snapshot yet: nothing to announce", r.Dir)
	}
	return n, nil
}

// readSecret reads --secret-file.
func readSecret(e *env) ([]byte, error) {
	path := e.c.String("secret-file")
	if path == "" {
		return nil, Usage("--secret-file is required: the file with the secret the daemon shares")
	}
	return trigger.ReadSecret(e.fs, path)
}

// deliver sends t within --timeout and prints the outcome; forRoot, if
// set, is the root whose daemon should have answered.
func deliver(e *env, t triggerSend, forRoot string) error {
	timeout := e.c.Duration("timeout")
	if timeout <= 0 {
		return Usage("--timeout must be positive, got %s", timeout)
	}
	ctx, cancel := context.WithTimeoutCause(e.c.Context, timeout, fmt.Errorf("%w: no answer within %s", trigger.ErrUnreachable, timeout))
	defer cancel()
	err := trigger.Send(ctx, nil, t.url, t.secret, t.msg)
	if err != nil && e.c.Context.Err() == nil && ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	if err != nil {
		if forRoot != "" && errors.Is(err, trigger.ErrUnreachable) {
			return fmt.Errorf("no daemon of %s answers at %s: %w", forRoot, t.url, err)
		}
		return fmt.Errorf("trigger for snapshot %d to %s: %w", t.msg.Snapshot, t.url, err)
	}
	switch {
	case e.c.Bool("json"):
		return e.printJSON(map[string]any{"url": t.url, "snapshot": t.msg.Snapshot, "accepted": true})
	case e.c.Bool("quiet"):
		return nil
	}
	_, err = fmt.Fprintf(e.out, "%s: trigger accepted by %s\n", snapshotText(t.msg.Snapshot), t.url)
	return err
}

// snapshotText names a trigger's snapshot.
func snapshotText(n uint64) string {
	if n == 0 {
		return "any new snapshot"
	}
	return "snapshot " + strconv.FormatUint(n, 10)
}

// forcedTrigger is the ssh forced-command mode: cmd is what the ssh
// client asked to run, which only selects the snapshot; the trigger goes
// to the local daemon at --daemon-url, never anywhere the client names.
func forcedTrigger(c *cli.Context, cmd string) error {
	n, err := parseSSHCommand(cmd)
	if err != nil {
		return err
	}
	e := envFor(c)
	if c.NArg() > 0 {
		return Usage("in ssh forced-command mode (%s is set) the daemon's URL comes from --daemon-url, not from an argument", sshCommandEnv)
	}
	daemon := c.String("daemon-url")
	if daemon == "" {
		return Usage("ssh forced-command mode (%s is set) needs --daemon-url URL in authorized_keys: the local daemon's trigger address", sshCommandEnv)
	}
	if !strings.Contains(daemon, "://") { // the daemon's --listen host:port
		daemon = "http://" + daemon
	}
	url, err := trigger.URL(daemon)
	if err != nil {
		return Usage("--daemon-url: %w", err)
	}
	secret, err := readSecret(e)
	if err != nil {
		return err
	}
	forRoot := c.String("root")
	if forRoot == "" {
		forRoot = "this host"
	} else if done, err := alreadyServes(e, n); err != nil || done {
		return err
	}
	origin := c.String("name")
	if origin == "" {
		origin = sshClient(optionsOf(c).lookupEnv)
	}
	return deliver(e, triggerSend{url, secret, trigger.Message{Snapshot: n, Origin: origin}}, forRoot)
}

// parseSSHCommand reads the command an ssh client sent to forced-command
// mode: "sync" or "sync:all" (Debian's runmirrors) for any new snapshot
// (0), "sync N" for snapshot N. Anything else is errSSHCommand.
func parseSSHCommand(cmd string) (uint64, error) {
	f := strings.Fields(cmd)
	switch {
	case len(f) == 1 && (f[0] == "sync" || f[0] == "sync:all"):
		return 0, nil
	case len(f) == 2 && f[0] == "sync":
		if n, err := strconv.ParseUint(f[1], 10, 64); err == nil && n > 0 && strconv.FormatUint(n, 10) == f[1] {
			return n, nil
		}
	}
	shown := cmd
	if len(shown) > 60 {
		shown = shown[:60] + "..."
	}
	return 0, fmt.Errorf("%w %q: this key may only run \"sync\", \"sync N\" or \"sync:all\"", errSSHCommand, shown)
}

// alreadyServes reports (and says) whether --root already serves snapshot
// n or newer, when the trigger would be for nothing.
func alreadyServes(e *env, n uint64) (bool, error) {
	if n == 0 {
		return false, nil
	}
	r, err := e.root()
	if err != nil {
		return false, err
	}
	cur, err := r.Current()
	if err != nil || cur < n || r.Exists() != nil {
		return false, nil // the daemon finds out and says why
	}
	switch {
	case e.c.Bool("json"):
		return true, e.printJSON(map[string]any{"snapshot": n, "served": cur, "accepted": false})
	case !e.c.Bool("quiet"):
		fmt.Fprintf(e.out, "%s already serves snapshot %d: nothing to do\n", r.Dir, cur)
	}
	return true, nil
}

// sshClient names the ssh client for a trigger's origin: "ssh ADDR" from
// SSH_CONNECTION ("client-addr client-port server-addr server-port").
func sshClient(lookupEnv func(string) (string, bool)) string {
	conn, _ := lookupEnv("SSH_CONNECTION")
	if f := strings.Fields(conn); len(f) > 0 {
		return "ssh " + f[0]
	}
	return "ssh"
}

// notifyPlan is what publish --notify sends: nil without --notify.
type notifyPlan struct {
	urls    []string
	secret  []byte
	origin  string
	timeout time.Duration
	sent    chan []trigger.Delivery // set by start
}

// publishNotify reads and checks the --notify flags before publish runs,
// so that a bad URL or secret fails it before anything is published.
func publishNotify(e *env) (*notifyPlan, error) {
	urls := e.c.StringSlice("notify")
	if len(urls) == 0 {
		return nil, nil
	}
	for i, u := range urls {
		t, err := trigger.URL(u)
		if err != nil {
			return nil, Usage("--notify: %w", err)
		}
		urls[i] = t
	}
	if d := e.c.Duration("notify-timeout"); d <= 0 {
		return nil, Usage("--notify-timeout must be positive, got %s", d)
	}
	secret, err := readSecret(e)
	if err != nil {
		return nil, err
	}
	origin := e.c.String("name")
	if origin == "" {
		origin = e.c.String("root")
	}
	return &notifyPlan{urls: urls, secret: secret, origin: origin, timeout: e.c.Duration("notify-timeout")}, nil
}

// fresh is p for one more publish: nothing sent yet (nil stays nil).
func (p *notifyPlan) fresh() *notifyPlan {
	if p == nil {
		return nil
	}
	q := *p
	q.sent = nil
	return &q
}

// start sends the triggers for snapshot n on a goroutine of their own: the
// publish's Served hook, so that they go out before the prune; wait
// collects them.
func (p *notifyPlan) start(e *env, n uint64) {
	if p == nil || p.sent != nil {
		return
	}
	p.sent = make(chan []trigger.Delivery, 1)
	go func() { p.sent <- p.send(e, n) }()
}

// wait returns what the triggers start sent, or sends them now (snapshot n)
// if start did not run.
func (p *notifyPlan) wait(e *env, n uint64) []trigger.Delivery {
	if p == nil {
		return nil
	}
	if p.sent == nil {
		return p.send(e, n)
	}
	return <-p.sent
}

// send triggers every URL with snapshot n, in parallel, within the
// plan's timeout; failures are warnings (the mirrors' polls catch up).
func (p *notifyPlan) send(e *env, n uint64) []trigger.Delivery {
	ctx, cancel := context.WithTimeoutCause(e.c.Context, p.timeout, fmt.Errorf("%w: no answer within %s", trigger.ErrUnreachable, p.timeout))
	defer cancel()
	out := trigger.Broadcast(ctx, nil, p.urls, p.secret, trigger.Message{Snapshot: n, Origin: p.origin})
	for _, d := range out {
		if d.Err != nil && !e.c.Bool("quiet") {
			fmt.Fprintf(e.c.App.ErrWriter, "%s: warning: snapshot %d is published, but the trigger to %s failed: %v\n", e.c.App.Name, n, d.URL, d.Err)
		}
	}
	return out
}

// publishOutput is publish's --json result with the triggers it sent.
type publishOutput struct {
	snapshot.PublishResult
	Notified []trigger.Delivery `json:"notified,omitempty"`
}

// triggerHint is hint for the errors of triggers.
func triggerHint(err error) string {
	switch {
	case errors.Is(err, trigger.ErrSecret):
		return "give --secret-file a file of at least 16 bytes that only its owner (and group) can read, the same on both sides: head -c 32 /dev/urandom | base64 > FILE; chmod 600 FILE"
	case errors.Is(err, trigger.ErrBadURL):
		return "give the daemon's address as http(s)://host:port, where it listens (its --listen); a URL without a path gets /trigger"
	case errors.Is(err, trigger.ErrRejected):
		return "the daemon refused the trigger (its reason is above): both sides' --secret-file must hold the same secret, their clocks must agree within 5 minutes (NTP), and the URL must be the daemon's; the mirror's next poll syncs anyway"
	case errors.Is(err, trigger.ErrUnreachable):
		return "no daemon took the trigger: check the URL and that mirror-sync daemon runs there (--listen); the mirror's next poll syncs anyway"
	}
	return ""
}
