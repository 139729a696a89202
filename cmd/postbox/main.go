// Command postbox is the one binary of the service: it serves the portal,
// migrates the databases, issues Einmal-PINs and checks the audit chain.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `postbox — sicheres Postfach und Dokumenten-Upload für Krankenkassen

Usage:
  postbox serve [--demo] [settings]   run the portal (no settings: embedded default in ./data)
  postbox migrate [settings]          apply database migrations and exit
  postbox audit verify --kasse ID     recompute a Kasse's audit hash chain
  postbox audit query --kasse ID ...  stream a Kasse's audit events as CSV or JSON ("postbox audit" lists all)
  postbox audit retention             delete and redact expired audit events
  postbox pin issue --kasse ID --kvnr KVNR --type ANLIEGEN --text TEXT --out FILE [--print-pin]
                                      issue an Einmal-PIN and write its letter (PDF)
  postbox config                      print the settings table (Markdown)
  postbox bench [--quick]             measure against the running services, regenerate BENCHMARKS.md

Settings are flags or POSTBOX_* environment variables; "postbox serve -h" lists them.
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is main without os.Exit, so tests can drive the binary in process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "serve":
		err = cmdServe(ctx, args[1:], getenv, stdout, stderr)
	case "migrate":
		err = cmdMigrate(ctx, args[1:], getenv, stdout)
	case "audit":
		err = cmdAudit(ctx, args[1:], getenv, stdout)
	case "pin":
		err = cmdPin(ctx, args[1:], getenv, stdout)
	case "config":
		fmt.Fprint(stdout, configTable())
	case "bench":
		err = cmdBench(ctx, args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "postbox: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "postbox: %v\n", err)
		var ce *ConfigError
		if errors.As(err, &ce) {
			return 2
		}
		return 1
	}
	return 0
}
