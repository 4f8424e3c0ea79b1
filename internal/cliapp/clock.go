package cliapp

import (
	"io"
	"os"
	"time"

	"github.com/urfave/cli/v2"
)

// appOptions is what an app is built with besides its writers. The mains
// take the defaults (PublishApp, MirrorApp); a test builds its app with
// newApp to set them. No package variable stands in for any of them.
type appOptions struct {
	// now is the clock: snapshots' ages for pruning, how long a failure
	// streak has lasted, a mirror's lag. Default time.Now.
	now func() time.Time
	// lookupEnv reads the environment (SSH_ORIGINAL_COMMAND). Default
	// os.LookupEnv.
	lookupEnv func(string) (string, bool)
}

// appOptionsKey is where an app keeps its appOptions (cli.App.Metadata,
// which every action reaches through its cli.Context).
const appOptionsKey = "seqmirror/cliapp.appOptions"

// newApp builds an app as build does and gives it o.
func newApp(build func(stdout, stderr io.Writer) *cli.App, stdout, stderr io.Writer, o appOptions) *cli.App {
	app := build(stdout, stderr)
	if app.Metadata == nil {
		app.Metadata = map[string]any{}
	}
	app.Metadata[appOptionsKey] = o
	return app
}

// optionsOf returns the options of c's app, defaults filled in.
func optionsOf(c *cli.Context) appOptions {
	o, _ := c.App.Metadata[appOptionsKey].(appOptions)
	if o.now == nil {
		o.now = time.Now
	}
	if o.lookupEnv == nil {
		o.lookupEnv = os.LookupEnv
	}
	return o
}
