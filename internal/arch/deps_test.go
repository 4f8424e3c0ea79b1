package arch

import (
	"os/exec"
	"strings"
	"testing"
)

// heavyDeps are modules whose package initialisation costs milliseconds
// of every run (etcd's client: gRPC and its protobuf registrations, ~5 ms):
// only publish-etcd, to which publish hands its --etcd runs, links them.
var heavyDeps = []string{"go.etcd.io/", "google.golang.org/grpc"}

// publish and mirror-sync, which cron starts every minute on every
// mirror, link none of heavyDeps.
func TestLeanBinaries(t *testing.T) {
	for _, cmd := range []string{"./cmd/publish", "./cmd/mirror-sync"} {
		out, err := exec.Command("go", "list", "-deps", "-tags", "urfave_cli_no_docs", "../../"+cmd[2:]).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", cmd, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, h := range heavyDeps {
				if strings.HasPrefix(dep, h) {
					t.Errorf("%s links %s (keep it in cmd/publish-etcd)", cmd, dep)
				}
			}
		}
	}
	out, err := exec.Command("go", "list", "-deps", "../../cmd/publish-etcd").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "go.etcd.io/etcd/client/v3\n") {
		t.Errorf("publish-etcd does not link etcd's client: %v\n%.300s", err, out)
	}
}
