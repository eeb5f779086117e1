// Command msspbot is a ChatOps bot for MSSPs that run Microsoft Defender
// for many customer tenants: it posts their alerts to chat and lets
// analysts act on them there.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage:
  msspbot demo  [--db PATH] [--tenants N] [--interval DURATION] [--verbose]
                                 simulated tenants and a chat on this terminal; no credentials
  msspbot serve --config FILE    production (or MSSPBOT_CONFIG=FILE)
  msspbot version                version and build information
`

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

// run is main without the process: it returns the exit code, so that tests
// can drive every subcommand.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "msspbot: missing command\n"+usage)
		return 2
	}
	// Docker stops containers with SIGTERM; both end the program cleanly.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "demo":
		return runDemo(ctx, args[1:], stdin, stdout, stderr)
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "version":
		return runVersion(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "msspbot: unknown command %q\n%s", args[0], usage)
	return 2
}
