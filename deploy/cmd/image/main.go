// Command image builds the container image of cmd/webhook-bridge: an OCI
// image index with one FROM-scratch image per platform, without a
// container engine and without pulling anything.
//
// From a clone of the repository:
//
//	go run -C deploy ./cmd/image -out ../dist/webhook-bridge
//
// writes, under dist/webhook-bridge (paths are relative to deploy/, the
// directory -C moves into):
//
//	oci/                             an OCI image layout holding the index (skopeo, crane, podman, containerd import)
//	webhook-bridge-linux-amd64.tar   one `docker load`-able tarball per platform
//	webhook-bridge-linux-arm64.tar
//
// and prints each image's digest and the index's. With -push REF it also
// pushes the index to a registry, with the credentials of the Docker
// config (~/.docker/config.json and its helpers); -push alone writes no
// files.
//
// # Why go-containerregistry
//
// An image FROM scratch is a tar layer, a JSON config and two manifests;
// github.com/google/go-containerregistry assembles and writes them in
// process. No daemon runs and no base image is pulled, so a machine with
// Go and git and nothing else — an air-gapped one too — builds the same
// bytes as CI does. The library is a dependency of the deploy module only.
//
// # What the image holds
//
// One layer, every entry owned by root, dated at the commit:
//
//	/usr/local/bin/webhook-bridge    the binary, static (CGO_ENABLED=0), -trimpath, symbols stripped
//	/etc/passwd, /etc/group          root and the user the bridge runs as, nonroot (65532:65532)
//	/etc/webhook-bridge/             where the config is expected: bridge.yaml, mounted
//
// Nothing else: no shell, no package manager, no CA bundle. The bridge
// verifies its receivers' certificates with Mozilla's roots compiled into
// the binary (golang.org/x/crypto/x509roots/fallback, pinned in the root
// module's go.mod), used only where the system has no trust store, as in
// this image. Compiling them in rather than copying the build host's
// /etc/ssl/certs/ca-certificates.crt keeps the image the same wherever it
// is built, and needs nothing from the host. A bundle mounted at
// /etc/ssl/certs/ca-certificates.crt, or named by SSL_CERT_FILE, replaces
// the compiled-in roots (a private CA, say).
//
// The config runs the binary as 65532:65532 with
// `--config /etc/webhook-bridge/bridge.yaml`, exposes 8080/tcp (the
// config must listen on it on every interface, `listen: ":8080"`; the
// bridge's default is loopback only), works in /, and sets only PATH in
// the environment. The bridge writes no file, so the root filesystem can
// be read-only and no volume is needed; it needs no temporary directory
// either.
//
// Labels: org.opencontainers.image.source, revision (git rev-parse HEAD),
// version, title, description, created (the commit's time). The
// repository has no licence file, so there is no licenses label. The
// version is -version, or `git describe --tags --always --dirty`; it is
// linked into the binary (-X main.version), so `webhook-bridge --version`
// in the image says the same as the label.
//
// # Reproducible
//
// The same commit, built with the same Go toolchain, gives the same
// digests: the binary is built with -trimpath and the default
// instruction-set levels (GOAMD64=v1, GOARM64=v8.0, whatever the
// environment says), the layer's entries are sorted and dated at the
// commit time, and so is the config's created. The go command records
// the commit in the binary when it builds in a clone, but not in a linked
// git worktree (`git worktree add`), whose binaries, and so digests,
// differ from a clone's for that reason alone.
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

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

// run parses args, builds the image and writes or pushes it, reporting on
// stdout (what was made) and stderr (warnings).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseArgs(args, stderr)
	if err != nil {
		return err
	}
	res, err := Build(ctx, opts, stderr)
	if err != nil {
		return err
	}
	return res.report(stdout)
}

// parseArgs turns the command line into Options, refusing what cannot be
// built.
func parseArgs(args []string, stderr io.Writer) (Options, error) {
	var o Options
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: go run -C deploy ./cmd/image -out ../dist/webhook-bridge [-push REF] [-version V] [-platforms LIST]\n"+
			"builds the webhook-bridge container image (an OCI index, FROM scratch) without a container engine.\n\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.Out, "out", "", "write the OCI layout (DIR/oci) and one docker-load tarball per platform to `DIR`")
	fs.StringVar(&o.Push, "push", "", "push the image index to registry reference `REF` (e.g. registry.example.com/webhook-bridge:v1.2.3)")
	fs.StringVar(&o.Version, "version", "", "the `VERSION` to label and link in (default: git describe --tags --always --dirty)")
	platforms := fs.String("platforms", "linux/amd64,linux/arm64", "comma-separated `LIST` of os/arch[/variant] to build")
	fs.StringVar(&o.Tag, "tag", "", "the `NAME:TAG` the tarballs load as (default: webhook-bridge:VERSION)")
	fs.StringVar(&o.Repo, "repo", "", "the repository's root `DIR` (default: the git work tree holding the working directory)")
	fs.StringVar(&o.Source, "source", DefaultSource, "the org.opencontainers.image.source `URL`")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (flags only; see -help)", fs.Arg(0))
	}
	p, err := ParsePlatforms(*platforms)
	if err != nil {
		return o, err
	}
	o.Platforms = p
	if o.Out == "" && o.Push == "" {
		return o, errors.New("nothing to do: give -out DIR, -push REF or both")
	}
	return o, nil
}
