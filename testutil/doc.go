// Package testutil holds helpers shared by seqmirror's tests: trees to
// publish, the real peers (rsync, git) they need, and fault injection.
// Helpers take testing.TB and fail the test on error.
package testutil
