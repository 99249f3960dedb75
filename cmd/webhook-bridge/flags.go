package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// bridgeFlags are the flags of `webhook-bridge` itself.
type bridgeFlags struct {
	config  string
	version bool
}

func newBridgeFlags() (*flag.FlagSet, *bridgeFlags) {
	f := &bridgeFlags{}
	fs := newFlagSet("webhook-bridge")
	fs.StringVar(&f.config, "config", "", "path of the YAML `FILE` (required)")
	fs.BoolVar(&f.version, "version", false, "print the version and exit")
	return fs, f
}

// dlqFlags are the flags of `webhook-bridge dlq list|replay`.
type dlqFlags struct {
	config, subscription, event string
}

func newDLQFlags(verb string) (*flag.FlagSet, *dlqFlags) {
	f := &dlqFlags{}
	fs := newFlagSet("webhook-bridge dlq " + verb)
	fs.StringVar(&f.config, "config", "", "path of the bridge's YAML `FILE` (required)")
	fs.StringVar(&f.subscription, "subscription", "", "only the dead letters of subscription `ID`, which must exist (in the config or made through the admin API)")
	fs.StringVar(&f.event, "event", "", "only the dead letters of event `ID`")
	return fs, f
}

// newFlagSet returns a flag set that prints nothing itself: --help is
// answered on standard output by [printUsage], and a bad flag is one
// error line.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args into fs. It returns errHelp after printing the
// usage to stdout for -h and --help, and an error pointing at --help for
// anything it does not understand.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		printUsage(stdout)
		return errHelp
	default:
		return fmt.Errorf("%v (see webhook-bridge --help)", err)
	}
}

// errHelp means the usage was asked for and printed: the command ends
// there, successfully.
var errHelp = errors.New("help printed")

// isHelp reports whether arg asks for the usage.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// printUsage writes the commands and every flag.
func printUsage(w io.Writer) {
	var b strings.Builder
	b.WriteString(`webhook-bridge turns events into signed, retried HTTP deliveries.
Reference: docs/webhook-bridge.md.

Usage:
  webhook-bridge --config FILE
        run the bridge until SIGTERM or SIGINT; a second signal during the
        graceful shutdown stops it at once
  webhook-bridge dlq list --config FILE [--subscription ID] [--event ID]
        print dead letters, one JSON object per line
  webhook-bridge dlq replay --config FILE [--subscription ID] [--event ID]
        deliver dead letters again, with a fresh set of attempts
  webhook-bridge log --config FILE [--event ID] [--subscription ID] [--since 1h] ...
        print delivery attempts from the delivery log, newest first
  webhook-bridge recover --config FILE --subscription ID --since 24h [--until T]
        deliver again what the subscription was offered in the window and never
        got (dead-lettered, or skipped while disabled), each once, in order
  webhook-bridge config check FILE
        load and validate FILE as the bridge would at start (environment
        included), connecting to nothing, and print what it would run,
        secrets left out; exit status 1 with the key at fault otherwise
  webhook-bridge --version
        print the version and exit
  webhook-bridge --help
        print this help and exit

Flags of the bridge:
`)
	fs, _ := newBridgeFlags()
	writeFlags(&b, fs)
	b.WriteString("  -h, --help\n        print this help and exit\n\nFlags of dlq list|replay:\n")
	fs, _ = newDLQFlags("list")
	writeFlags(&b, fs)
	b.WriteString("\nFlags of recover:\n")
	fs, _ = newRecoverFlags()
	writeFlags(&b, fs)
	b.WriteString("\nFlags of log:\n")
	fs, _ = newLogFlags()
	writeFlags(&b, fs)
	_, _ = io.WriteString(w, b.String())
}

func writeFlags(b *strings.Builder, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		if arg == "value" {
			arg = "" // a bool
		}
		fmt.Fprintf(b, "  --%s", f.Name)
		if arg != "" {
			fmt.Fprintf(b, " %s", arg)
		}
		fmt.Fprintf(b, "\n        %s\n", usage)
	})
}

// version is the release this binary was built as, set at link time with
// -ldflags "-X main.version=v1.2.3" (the container image's builder,
// deploy/cmd/image, does). Empty means: take the main module's version
// from the build information, which `go install …@v1.2.3` records.
var version string

// versionLine describes the binary: its version (see [version]), and the
// VCS revision and commit time when the build recorded them.
func versionLine() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if version != "" {
			return version + " (no build information)"
		}
		return "(no build information)"
	}
	return describeBuild(bi, version)
}

// describeBuild is versionLine's text for bi: stamped first when it is not
// empty, else the main module's version, "(devel)" when there is none;
// then, in parentheses, the revision, the commit time and the Go version.
func describeBuild(bi *debug.BuildInfo, stamped string) string {
	v := stamped
	if v == "" {
		v = bi.Main.Version
	}
	if v == "" {
		v = "(devel)"
	}
	var rev, at string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	var details []string
	if rev != "" {
		r := "revision " + rev
		if modified {
			r += " (modified)"
		}
		details = append(details, r)
	}
	if at != "" {
		details = append(details, "committed "+at)
	}
	details = append(details, bi.GoVersion)
	return v + " (" + strings.Join(details, ", ") + ")"
}

// printVersion writes the version line of `webhook-bridge --version`.
func printVersion(w io.Writer) {
	_, _ = fmt.Fprintln(w, "webhook-bridge", versionLine())
}
