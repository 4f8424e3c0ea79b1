// Package cliapp builds the publish and mirror-sync command-line apps and is
// the one place where errors become exit codes. The binaries under cmd/ are
// thin mains around it; tests drive the same apps in-process (testscript).
package cliapp
