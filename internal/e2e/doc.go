// Package e2e holds the end-to-end walk-through of docs/operating.md and
// docs/classic.md, run as an admin would run them: the tools installed by
// `make install` into a temporary prefix, the documented crontab lines run
// by sh with cron's environment, real rsync daemons configured by
// `publish rsyncd-conf`, real git repositories checked with git fsck; the systemd units of
// docs/systemd, verified by systemd-analyze against freshly built tools; and a
// daemon's status page on a 3-tier network of daemon processes, looked at in
// headless Chromium; and two highly available masters (publish --etcd
// --follow processes on a real etcd, one or three members) whose leader is
// killed or cut off from etcd while a mirror follows both.
// It has only tests.
package e2e
