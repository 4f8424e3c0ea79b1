// Package arch holds no code. Its tests state and enforce the layering of
// the repository, read from the source with go/parser:
//
//   - only the CLI (internal/cliapp, cmd/, internal/tools, internal/e2e)
//     imports github.com/urfave/cli (and this package's test, which reads
//     the CLI's flags);
//   - testutil and testutil/faultfs are imported from _test.go files only
//     (and from testutil itself);
//   - the public packages (outside internal/ and cmd/, testutil aside) do
//     not depend, even indirectly, on testutil, the CLI or urfave/cli;
//   - internal/tree depends on none of export, snapshot, mirror, transport;
//     internal/transport on neither snapshot nor mirror;
//   - library errors (all but cmd/, internal/cliapp, internal/tools) name
//     none of the CLI's flags and no command line (hints live in
//     internal/cliapp's hint table).
package arch
