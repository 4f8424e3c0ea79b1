package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "scaleplot:", err)
		}
		os.Exit(1)
	}
}

// run parses args, reads the CSV, writes the tables to stdout and the plot.
func run(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("scaleplot", flag.ContinueOnError)
	fl.SetOutput(stderr)
	csvPath := fl.String("csv", "", "the CSV of timed runs (fs,files,op,via,tool,seconds,rss_kib)")
	svgPath := fl.String("svg", "", "write the log-log plot of time against files to this SVG file")
	title := fl.String("title", defaultTitle, "the plot's title")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *csvPath == "" || fl.NArg() > 0 {
		return errors.New("usage: scaleplot -csv FILE [-svg OUT.svg] [-title TEXT]")
	}
	f, err := os.Open(*csvPath)
	if err != nil {
		return err
	}
	defer f.Close()
	res, err := parse(f)
	if err != nil {
		return fmt.Errorf("%s: %w", *csvPath, err)
	}
	if *svgPath != "" {
		if err := writeSVG(*svgPath, res, *title); err != nil {
			return err
		}
	}
	return writeTables(stdout, res)
}
