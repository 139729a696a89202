package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"

	"postbox/bench"
)

// cmdBench runs "postbox bench": every benchmark against the running
// services in one go, then regenerates the section of BENCHMARKS.md and
// the upload plot.
func cmdBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "serve" {
		return cmdBenchServe(ctx, args[1:], getenv, stdout, stderr)
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "tiny sizes: check that every step works (seconds, not a measurement)")
	runs := fs.Int("runs", 3, "repetitions of each measurement (min/median/max)")
	only := fs.String("steps", "", "comma-separated subset of: "+strings.Join(bench.StepNames, ", "))
	md := fs.String("markdown", "BENCHMARKS.md", "Markdown file whose generated section is replaced (empty: none)")
	svg := fs.String("svg", "bench/upload.svg", "SVG plot of the upload throughput (empty: none)")
	binary := fs.String("binary", "", "postbox binary to start as server (default: this one)")
	profile := fs.String("profile", "", "directory for CPU profiles of every postbox server the run starts (go tool pprof)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	}
	if *runs < 1 {
		return fmt.Errorf("bench: --runs must be at least 1")
	}
	svcs, err := bench.ServicesFromEnv(getenv)
	if err != nil {
		return err
	}
	// Migrations of the step databases log at info; only problems matter here.
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	opts := bench.Options{Services: svcs, Binary: *binary, ProfileDir: *profile, Quick: *quick, Runs: *runs, Log: stderr}
	if *only != "" {
		opts.Steps = strings.Split(*only, ",")
	}
	rep, runErr := bench.Run(ctx, opts)
	if rep == nil {
		return runErr
	}
	svgRel := ""
	if *svg != "" {
		if err := rep.WriteSVG(*svg); err != nil {
			return err
		}
		svgRel = *svg
		if *md != "" {
			if rel, err := filepath.Rel(filepath.Dir(*md), *svg); err == nil {
				svgRel = filepath.ToSlash(rel)
			}
		}
	}
	fmt.Fprint(stdout, rep.Markdown(svgRel))
	if *md != "" {
		if err := rep.WriteMarkdown(*md, svgRel); err != nil {
			return err
		}
	}
	return runErr
}

// cmdBenchServe is "postbox bench serve --cpuprofile FILE [serve settings]":
// the server with a CPU profile of its whole life, written when it stops.
// "postbox bench --profile DIR" starts its servers this way.
func cmdBenchServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 || args[0] != "--cpuprofile" {
		return fmt.Errorf("usage: postbox bench serve --cpuprofile FILE [serve settings]")
	}
	f, err := os.Create(args[1])
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	defer pprof.StopCPUProfile()
	return cmdServe(ctx, args[2:], getenv, stdout, stderr)
}
