package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// DefaultSource is the org.opencontainers.image.source label unless
// -source says otherwise.
const DefaultSource = "https://github.com/switchyard-go/switchyard"

// What the image is made of; the package doc explains each.
const (
	// BinaryPath is where the bridge's binary lies in the image, and the
	// entrypoint.
	BinaryPath = "/usr/local/bin/webhook-bridge"
	// ConfigPath is the config file the default command reads.
	ConfigPath = "/etc/webhook-bridge/bridge.yaml"
	// User is the numeric user and group the bridge runs as.
	User = "65532:65532"
	// Port is the one port exposed.
	Port = "8080/tcp"
	// Title and Description are the image's title and description labels.
	Title       = "webhook-bridge"
	Description = "A sidecar that turns events into signed, retried HTTP deliveries (switchyard)."
)

// The OCI label keys the image sets.
const (
	LabelSource      = "org.opencontainers.image.source"
	LabelRevision    = "org.opencontainers.image.revision"
	LabelVersion     = "org.opencontainers.image.version"
	LabelTitle       = "org.opencontainers.image.title"
	LabelDescription = "org.opencontainers.image.description"
	LabelCreated     = "org.opencontainers.image.created"
	// refName names the index in the OCI layout's index.json.
	refName = "org.opencontainers.image.ref.name"
)

// passwd and group name root and the user the bridge runs as; no login
// is possible (there is no shell to log in to).
const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group  = "root:x:0:\nnonroot:x:65532:\n"
)

// Platform is one os/arch[/variant] the image is built for.
type Platform struct {
	OS, Arch, Variant string
}

// String is the platform as -platforms spells it.
func (p Platform) String() string {
	s := p.OS + "/" + p.Arch
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// slug is the platform in a file name: linux-arm64.
func (p Platform) slug() string { return strings.ReplaceAll(p.String(), "/", "-") }

// archVariants are the architectures a FROM-scratch Linux image of the
// bridge can be built for, with the variants each accepts ("" for none).
var archVariants = map[string][]string{
	"amd64":   {""},
	"arm64":   {"", "v8"},
	"arm":     {"v6", "v7"},
	"386":     {""},
	"ppc64le": {""},
	"s390x":   {""},
	"riscv64": {""},
}

// ParsePlatforms reads a comma-separated list such as
// "linux/amd64,linux/arm64" (arm needs its variant: linux/arm/v7). It
// refuses an empty list, a repeated platform, and any os but linux.
func ParsePlatforms(s string) ([]Platform, error) {
	var out []Platform
	seen := map[Platform]bool{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		parts := strings.Split(item, "/")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
			return nil, fmt.Errorf("-platforms: %q is not os/arch or os/arch/variant", item)
		}
		p := Platform{OS: parts[0], Arch: parts[1]}
		if len(parts) == 3 {
			p.Variant = parts[2]
		}
		if p.OS != "linux" {
			return nil, fmt.Errorf("-platforms: %q: the image is FROM scratch for Linux; os must be linux", item)
		}
		variants, ok := archVariants[p.Arch]
		if !ok {
			return nil, fmt.Errorf("-platforms: %q: unknown architecture %q (known: amd64, arm64, arm/v6, arm/v7, 386, ppc64le, s390x, riscv64)", item, p.Arch)
		}
		found := false
		for _, v := range variants {
			found = found || v == p.Variant
		}
		if !found {
			return nil, fmt.Errorf("-platforms: %q: variant %q is not one of %q for %s", item, p.Variant, variants, p.Arch)
		}
		if seen[p] {
			return nil, fmt.Errorf("-platforms: %s is listed twice", p)
		}
		seen[p] = true
		out = append(out, p)
	}
	return out, nil
}

// Options say what to build and where to put it.
type Options struct {
	// Out is the directory to write the OCI layout (Out/oci) and the
	// tarballs into; empty writes none.
	Out string
	// Push is a registry reference to push the index to; empty pushes
	// nothing.
	Push string
	// Version is linked into the binary and labelled. default: `git
	// describe --tags --always --dirty`.
	Version string
	// Tag is the name:tag the tarballs load as. default:
	// webhook-bridge:Version (a "+" in Version becomes "_").
	Tag string
	// Repo is the repository's root. default: the git work tree holding
	// the working directory.
	Repo string
	// Source is the source label. default: [DefaultSource].
	Source string
	// Platforms are built in this order, which is the index's order.
	// default: linux/amd64 and linux/arm64.
	Platforms []Platform
}

// PlatformImage is the image built for one platform.
type PlatformImage struct {
	Platform Platform
	Image    v1.Image
	// Tarball is the docker-load tarball written for it, if any.
	Tarball string
}

// Result is what [Build] made.
type Result struct {
	Index  v1.ImageIndex
	Images []PlatformImage
	// Version, Revision and Created are what the labels say.
	Version, Revision string
	Created           time.Time
	// Layout is the OCI layout directory written, if any; Pushed the
	// reference pushed to, with the index's digest, if any.
	Layout, Pushed string
	// Took is how long the build took, compiling included.
	Took time.Duration
}

// versionPattern is what a version may look like: it goes into a linker
// flag, a label and, "+" aside, a tag.
var versionPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)

// Build compiles the bridge for every platform, assembles the images and
// their index, and writes and pushes them as o says. Warnings (a work
// tree with changes not committed) go to warn.
func Build(ctx context.Context, o Options, warn io.Writer) (*Result, error) {
	start := time.Now()
	if len(o.Platforms) == 0 {
		o.Platforms = []Platform{{OS: "linux", Arch: "amd64"}, {OS: "linux", Arch: "arm64"}}
	}
	if o.Source == "" {
		o.Source = DefaultSource
	}
	root, err := repoRoot(ctx, o.Repo)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	if res.Revision, err = git(ctx, root, "rev-parse", "HEAD"); err != nil {
		return nil, err
	}
	ct, err := git(ctx, root, "log", "-1", "--format=%ct", "HEAD")
	if err != nil {
		return nil, err
	}
	secs, err := strconv.ParseInt(ct, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("the commit time %q from git log is not a number: %w", ct, err)
	}
	res.Created = time.Unix(secs, 0).UTC()
	if status, err := git(ctx, root, "status", "--porcelain", "--untracked-files=no"); err != nil {
		return nil, err
	} else if status != "" {
		fmt.Fprintf(warn, "image: warning: %s has changes not committed; the image holds them, but its revision label names %s\n", root, res.Revision)
	}
	res.Version = o.Version
	if res.Version == "" {
		if res.Version, err = git(ctx, root, "describe", "--tags", "--always", "--dirty"); err != nil {
			return nil, err
		}
	}
	if !versionPattern.MatchString(res.Version) {
		return nil, fmt.Errorf("-version %q: want letters, digits and . _ + - only, starting with a letter or digit, at most 128 characters", res.Version)
	}
	var tag name.Tag
	if o.Out != "" {
		t := o.Tag
		if t == "" {
			t = "webhook-bridge:" + strings.ReplaceAll(res.Version, "+", "_")
		}
		if tag, err = name.NewTag(t); err != nil {
			return nil, fmt.Errorf("-tag %q: %w", t, err)
		}
	}
	var pushRef name.Reference
	if o.Push != "" {
		if pushRef, err = name.ParseReference(o.Push); err != nil {
			return nil, fmt.Errorf("-push %q: %w", o.Push, err)
		}
	}

	bins, err := os.MkdirTemp("", "webhook-bridge-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(bins)
	labels := map[string]string{
		LabelSource:      o.Source,
		LabelRevision:    res.Revision,
		LabelVersion:     res.Version,
		LabelTitle:       Title,
		LabelDescription: Description,
		LabelCreated:     res.Created.Format(time.RFC3339),
	}
	var adds []mutate.IndexAddendum
	for _, p := range o.Platforms {
		bin := filepath.Join(bins, "webhook-bridge-"+p.slug())
		if err := compile(ctx, root, p, res.Version, bin); err != nil {
			return nil, err
		}
		img, err := platformImage(p, bin, res.Created, labels)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		res.Images = append(res.Images, PlatformImage{Platform: p, Image: img})
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: p.OS, Architecture: p.Arch, Variant: p.Variant},
		}})
	}
	res.Index = mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)

	if o.Out != "" {
		if err := res.write(o.Out, tag); err != nil {
			return nil, err
		}
	}
	if pushRef != nil {
		if err := remote.WriteIndex(pushRef, res.Index, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return nil, fmt.Errorf("pushing to %s: %w", pushRef, err)
		}
		d, err := res.Index.Digest()
		if err != nil {
			return nil, err
		}
		res.Pushed = pushRef.Context().Digest(d.String()).String()
	}
	res.Took = time.Since(start)
	return res, nil
}

// write puts the OCI layout and the tarballs under out. An oci directory
// already there is replaced if it is an OCI layout, refused otherwise.
func (res *Result) write(out string, tag name.Tag) error {
	ociDir := filepath.Join(out, "oci")
	if _, err := os.Stat(ociDir); err == nil {
		if _, err := os.Stat(filepath.Join(ociDir, "oci-layout")); err != nil {
			return fmt.Errorf("-out: %s exists and is not an OCI layout; not overwriting it", ociDir)
		}
		if err := os.RemoveAll(ociDir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("-out: %w", err)
	}
	lp, err := layout.Write(ociDir, empty.Index)
	if err != nil {
		return fmt.Errorf("writing the OCI layout: %w", err)
	}
	if err := lp.AppendIndex(res.Index, layout.WithAnnotations(map[string]string{refName: res.Version})); err != nil {
		return fmt.Errorf("writing the OCI layout: %w", err)
	}
	res.Layout = ociDir
	for i := range res.Images {
		pi := &res.Images[i]
		path := filepath.Join(out, "webhook-bridge-"+pi.Platform.slug()+".tar")
		if err := tarball.WriteToFile(path, tag, pi.Image); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		pi.Tarball = path
	}
	return nil
}

// report prints what was made: each platform's digest and compressed
// size, the index's digest, and the files.
func (res *Result) report(w io.Writer) error {
	for _, pi := range res.Images {
		d, err := pi.Image.Digest()
		if err != nil {
			return err
		}
		size, err := CompressedSize(pi.Image)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%-14s %s  %.1f MB compressed", pi.Platform, d, float64(size)/1e6)
		if pi.Tarball != "" {
			fmt.Fprintf(w, "  %s", pi.Tarball)
		}
		fmt.Fprintln(w)
	}
	d, err := res.Index.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%-14s %s", "index", d)
	if res.Layout != "" {
		fmt.Fprintf(w, "  %s (ref %s)", res.Layout, res.Version)
	}
	fmt.Fprintln(w)
	if res.Pushed != "" {
		fmt.Fprintf(w, "pushed         %s\n", res.Pushed)
	}
	fmt.Fprintf(w, "version %s, revision %s, created %s, built in %s\n",
		res.Version, res.Revision, res.Created.Format(time.RFC3339), res.Took.Round(100*time.Millisecond))
	return nil
}

// CompressedSize is what pulling img transfers: its layers, compressed,
// plus its config and manifest.
func CompressedSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return 0, err
	}
	n := m.Config.Size + int64(len(raw))
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}

// repoRoot is dir, or the work tree holding the working directory, once
// it is checked to hold the bridge.
func repoRoot(ctx context.Context, dir string) (string, error) {
	if dir == "" {
		top, err := git(ctx, ".", "rev-parse", "--show-toplevel")
		if err != nil {
			return "", fmt.Errorf("finding the repository (run from a clone, or give -repo): %w", err)
		}
		dir = top
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(abs, "cmd", "webhook-bridge", "main.go")); err != nil {
		return "", fmt.Errorf("-repo %s: not a switchyard repository (no cmd/webhook-bridge/main.go)", abs)
	}
	return abs, nil
}

// git runs git in dir and returns its output, trimmed.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s in %s: %v: %s", strings.Join(args, " "), dir, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// compile builds cmd/webhook-bridge of the repository at root for p into
// out: static, trimmed paths, symbols stripped, version linked in, the
// VCS information recorded (whatever GOFLAGS says), and the baseline
// instruction set of the architecture so that the image runs on every
// CPU of it and the same commit gives the same binary.
func compile(ctx context.Context, root string, p Platform, version, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build",
		"-trimpath", "-buildvcs=auto",
		"-ldflags", "-s -w -X main.version="+version,
		"-o", out, "./cmd/webhook-bridge")
	goarm := "7"
	if p.Arch == "arm" {
		goarm = strings.TrimPrefix(p.Variant, "v")
	}
	cmd.Dir = root
	cmd.Env = append(os.Environ(),
		"CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch, "GOWORK=off",
		"GOAMD64=v1", "GOARM64=v8.0", "GOARM="+goarm, "GO386=sse2", "GOPPC64=power8", "GORISCV64=rva20u64")
	if outb, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build for %s: %v\n%s", p, err, outb)
	}
	return nil
}

// platformImage is the FROM-scratch image of the binary at bin for p.
func platformImage(p Platform, bin string, created time.Time, labels map[string]string) (v1.Image, error) {
	binary, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	layerTar, err := rootFS(binary, created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.BestCompression), tarball.WithCompressedCaching)
	if err != nil {
		return nil, err
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: created},
			CreatedBy: "deploy/cmd/image: " + BinaryPath + ", /etc/passwd, /etc/group",
			Comment:   "FROM scratch",
		},
	})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Created = v1.Time{Time: created}
	cfg.OS, cfg.Architecture, cfg.Variant = p.OS, p.Arch, p.Variant
	cfg.Config = v1.Config{
		User:         User,
		Entrypoint:   []string{BinaryPath},
		Cmd:          []string{"--config", ConfigPath},
		ExposedPorts: map[string]struct{}{Port: {}},
		WorkingDir:   "/",
		Env:          []string{"PATH=" + filepath.Dir(BinaryPath)},
		Labels:       labels,
	}
	return mutate.ConfigFile(img, cfg)
}

// fileEntry is one entry of the image's only layer.
type fileEntry struct {
	name string // without a leading "/"; directories end in "/"
	mode int64
	data []byte
}

// rootFS is the layer: the entries sorted by name, owned by root, dated
// created.
func rootFS(binary []byte, created time.Time) ([]byte, error) {
	bin := strings.TrimPrefix(BinaryPath, "/")
	entries := []fileEntry{
		{name: "etc/", mode: 0o755},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: strings.TrimPrefix(filepath.Dir(ConfigPath), "/") + "/", mode: 0o755},
		{name: "usr/", mode: 0o755},
		{name: "usr/local/", mode: 0o755},
		{name: filepath.Dir(bin) + "/", mode: 0o755},
		{name: bin, mode: 0o755, data: binary},
	}
	for i := 1; i < len(entries); i++ {
		if entries[i-1].name >= entries[i].name {
			return nil, errors.New("the layer's entries are not sorted") // a mistake in the list above
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: created, Format: tar.FormatUSTAR}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
