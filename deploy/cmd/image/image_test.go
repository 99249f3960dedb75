package main

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/switchyard-go/switchyard/internal/bridgetest"
	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/webhook"
)

// testVersion is what the tests ask for; its "+" is not allowed in a tag,
// so the tarballs' default tag has "_" instead.
const (
	testVersion = "v9.8.7-test+image"
	testTag     = "webhook-bridge:v9.8.7-test_image"
)

// maxImageSize bounds what pulling one platform's image transfers.
const maxImageSize = 60 << 20

// What TestMain sets up once: both platforms built by the command itself
// into out, and what it printed.
var (
	out       string
	buildOut  string
	buildTook time.Duration
)

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "webhook-bridge-image-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		out = filepath.Join(dir, "dist")
		var stdout, stderr bytes.Buffer
		start := time.Now()
		if err := run(context.Background(), []string{"-out", out, "-version", testVersion}, &stdout, &stderr); err != nil {
			fmt.Fprintf(os.Stderr, "building the image: %v\n%s", err, stderr.String())
			return 1
		}
		buildTook = time.Since(start)
		buildOut = stdout.String()
		return m.Run()
	}()
	os.Exit(code)
}

// gitOut runs git at the repository's root (three levels up).
func gitOut(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = "../../.."
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return strings.TrimSpace(string(b))
}

// builtIndex reads the index back from the OCI layout written, checking
// that index.json names it by the version.
func builtIndex(t *testing.T, dir string) v1.ImageIndex {
	t.Helper()
	lp, err := layout.FromPath(filepath.Join(dir, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(tm.Manifests) != 1 || tm.Manifests[0].MediaType != types.OCIImageIndex || tm.Manifests[0].Annotations[refName] != testVersion {
		t.Fatalf("index.json = %+v; want one OCI image index named %s", tm.Manifests, testVersion)
	}
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// platformImages are the index's images by platform, in the index's order.
func platformImages(t *testing.T, idx v1.ImageIndex) ([]string, map[string]v1.Image) {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	imgs := map[string]v1.Image{}
	for _, d := range im.Manifests {
		if d.Platform == nil {
			t.Fatalf("index entry %s has no platform", d.Digest)
		}
		if d.MediaType != types.OCIManifestSchema1 {
			t.Errorf("%s: media type %s, want %s", d.Platform, d.MediaType, types.OCIManifestSchema1)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		p := d.Platform.String()
		order = append(order, p)
		imgs[p] = img
	}
	return order, imgs
}

func TestIndexHasBothPlatforms(t *testing.T) {
	t.Logf("command output (built in %s, compiling included):\n%s", buildTook.Round(time.Second), buildOut)
	idx := builtIndex(t, out)
	if mt, _ := idx.MediaType(); mt != types.OCIImageIndex {
		t.Errorf("index media type %s, want %s", mt, types.OCIImageIndex)
	}
	order, _ := platformImages(t, idx)
	if got := strings.Join(order, ","); got != "linux/amd64,linux/arm64" {
		t.Errorf("index platforms %s, want linux/amd64,linux/arm64", got)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buildOut, "index          "+d.String()) {
		t.Errorf("the command did not print the index's digest %s:\n%s", d, buildOut)
	}
}

func TestImageConfig(t *testing.T) {
	revision := gitOut(t, "rev-parse", "HEAD")
	secs, err := strconv.ParseInt(gitOut(t, "log", "-1", "--format=%ct", "HEAD"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Unix(secs, 0).UTC()
	want := map[string]string{
		"org.opencontainers.image.source":      "https://github.com/switchyard-go/switchyard",
		"org.opencontainers.image.revision":    revision,
		"org.opencontainers.image.version":     testVersion,
		"org.opencontainers.image.title":       "webhook-bridge",
		"org.opencontainers.image.description": Description,
		"org.opencontainers.image.created":     created.Format(time.RFC3339),
	}
	// A licenses label only with a licence to name.
	for _, f := range []string{"LICENSE", "LICENSE.md", "LICENSE.txt", "COPYING"} {
		if _, err := os.Stat(filepath.Join("../../..", f)); err == nil {
			t.Errorf("the repository now has %s: the image should carry an org.opencontainers.image.licenses label", f)
		}
	}
	_, imgs := platformImages(t, builtIndex(t, out))
	for p, img := range imgs {
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		c := cf.Config
		if got := cf.OS + "/" + cf.Architecture; got != p {
			t.Errorf("%s: config says %s", p, got)
		}
		if c.User != "65532:65532" {
			t.Errorf("%s: user %q, want 65532:65532", p, c.User)
		}
		if got := strings.Join(c.Entrypoint, " "); got != "/usr/local/bin/webhook-bridge" {
			t.Errorf("%s: entrypoint %q", p, got)
		}
		if got := strings.Join(c.Cmd, " "); got != "--config /etc/webhook-bridge/bridge.yaml" {
			t.Errorf("%s: cmd %q", p, got)
		}
		if _, ok := c.ExposedPorts["8080/tcp"]; !ok || len(c.ExposedPorts) != 1 {
			t.Errorf("%s: exposed ports %v, want 8080/tcp only", p, c.ExposedPorts)
		}
		if c.WorkingDir != "/" {
			t.Errorf("%s: working dir %q", p, c.WorkingDir)
		}
		if got := strings.Join(c.Env, " "); got != "PATH=/usr/local/bin" {
			t.Errorf("%s: env %q, want PATH=/usr/local/bin alone", p, got)
		}
		if len(c.Labels) != len(want) {
			t.Errorf("%s: labels %v, want %v", p, c.Labels, want)
		}
		for k, v := range want {
			if c.Labels[k] != v {
				t.Errorf("%s: label %s = %q, want %q", p, k, c.Labels[k], v)
			}
		}
		if !cf.Created.Time.Equal(created) {
			t.Errorf("%s: created %s, want the commit time %s", p, cf.Created.Time, created)
		}
		mt, _ := img.MediaType()
		if mt != types.OCIManifestSchema1 {
			t.Errorf("%s: manifest media type %s", p, mt)
		}
	}
}

// layerFile is one entry of an image's layers.
type layerFile struct {
	hdr  *tar.Header
	data []byte
}

// imageFiles lists every entry of every layer of img.
func imageFiles(t *testing.T, img v1.Image) map[string]layerFile {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]layerFile{}
	for _, l := range layers {
		if mt, _ := l.MediaType(); mt != types.OCILayer {
			t.Errorf("layer media type %s, want %s", mt, types.OCILayer)
		}
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if _, dup := files[h.Name]; dup {
				t.Errorf("%s is in the layers twice", h.Name)
			}
			files[h.Name] = layerFile{h, data}
		}
		rc.Close()
	}
	return files
}

func TestImageFiles(t *testing.T) {
	// Every file and directory of the image: nothing else, no shell.
	want := map[string]int64{
		"etc/":                         0o755,
		"etc/group":                    0o644,
		"etc/passwd":                   0o644,
		"etc/webhook-bridge/":          0o755,
		"usr/":                         0o755,
		"usr/local/":                   0o755,
		"usr/local/bin/":               0o755,
		"usr/local/bin/webhook-bridge": 0o755,
	}
	revision := gitOut(t, "rev-parse", "HEAD")
	fi, err := os.Stat("../../../.git")
	gitDir := err == nil && fi.IsDir()
	machines := map[string]elf.Machine{"linux/amd64": elf.EM_X86_64, "linux/arm64": elf.EM_AARCH64}
	_, imgs := platformImages(t, builtIndex(t, out))
	for p, img := range imgs {
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		files := imageFiles(t, img)
		for n, f := range files {
			mode, ok := want[n]
			switch {
			case !ok:
				t.Errorf("%s: unexpected entry %s in the image", p, n)
			case f.hdr.Mode != mode || f.hdr.Uid != 0 || f.hdr.Gid != 0:
				t.Errorf("%s: %s has mode %o owner %d:%d, want %o 0:0", p, n, f.hdr.Mode, f.hdr.Uid, f.hdr.Gid, mode)
			}
			if !f.hdr.ModTime.Equal(cf.Created.Time) {
				t.Errorf("%s: %s dated %s, want the commit time %s", p, n, f.hdr.ModTime, cf.Created.Time)
			}
		}
		for n := range want {
			if _, ok := files[n]; !ok {
				t.Errorf("%s: %s missing from the image", p, n)
			}
		}
		if pw := string(files["etc/passwd"].data); !strings.Contains(pw, "\nnonroot:x:65532:65532:") {
			t.Errorf("%s: /etc/passwd does not name nonroot as 65532:65532:\n%s", p, pw)
		}
		if g := string(files["etc/group"].data); !strings.Contains(g, "\nnonroot:x:65532:") {
			t.Errorf("%s: /etc/group does not name nonroot as 65532:\n%s", p, g)
		}

		bin := files["usr/local/bin/webhook-bridge"].data
		ef, err := elf.NewFile(bytes.NewReader(bin))
		if err != nil {
			t.Fatalf("%s: the binary is not ELF: %v", p, err)
		}
		if ef.Machine != machines[p] {
			t.Errorf("%s: ELF machine %s, want %s", p, ef.Machine, machines[p])
		}
		for _, prog := range ef.Progs {
			if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
				t.Errorf("%s: the binary has a %s program header: not static", p, prog.Type)
			}
		}
		if ef.Section(".dynamic") != nil || ef.Section(".interp") != nil {
			t.Errorf("%s: the binary has a dynamic or interp section: not static", p)
		}
		bi, err := buildinfo.Read(bytes.NewReader(bin))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		settings := map[string]string{}
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
		for k, v := range map[string]string{"CGO_ENABLED": "0", "-trimpath": "true", "GOOS": "linux", "GOARCH": cf.Architecture} {
			if settings[k] != v {
				t.Errorf("%s: the binary was built with %s=%q, want %q", p, k, settings[k], v)
			}
		}
		// -trimpath keeps -ldflags out of the build information: the
		// version linked in is looked for in the binary itself (the host's
		// is run with --version below).
		if !bytes.Contains(bin, []byte(testVersion)) {
			t.Errorf("%s: the binary does not hold the version %s", p, testVersion)
		}
		// The revision is recorded whatever GOFLAGS says, so --version
		// names it; but the go command finds no VCS in a linked git
		// worktree (its .git is a file), and records none there.
		switch {
		case settings["vcs.revision"] == revision:
		case !gitDir && settings["vcs.revision"] == "":
			t.Logf("%s: no revision recorded: the go command stamps none in a linked git worktree", p)
		default:
			t.Errorf("%s: the binary records revision %q, want %s", p, settings["vcs.revision"], revision)
		}
		// The roots receivers' certificates are verified against: the
		// image has no CA bundle.
		roots := false
		for _, d := range bi.Deps {
			roots = roots || d.Path == "golang.org/x/crypto/x509roots/fallback"
		}
		if !roots {
			t.Errorf("%s: the binary lacks golang.org/x/crypto/x509roots/fallback: nothing to verify TLS with in a FROM-scratch image", p)
		}

		size, err := CompressedSize(img)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %.1f MB to pull (layer, config and manifest), binary %.1f MB", p, float64(size)/1e6, float64(len(bin))/1e6)
		if size > maxImageSize {
			t.Errorf("%s: the image is %d bytes, over the %d bound", p, size, maxImageSize)
		}
	}
}

func TestTarballsLoadAsTheSameImages(t *testing.T) {
	tag, err := name.NewTag(testTag)
	if err != nil {
		t.Fatal(err)
	}
	_, imgs := platformImages(t, builtIndex(t, out))
	for p, img := range imgs {
		path := filepath.Join(out, "webhook-bridge-"+strings.ReplaceAll(p, "/", "-")+".tar")
		loaded, err := tarball.ImageFromPath(path, &tag) // what docker load reads: manifest.json's RepoTags
		if err != nil {
			t.Fatalf("%s: %s as %s: %v", p, path, testTag, err)
		}
		want, _ := img.ConfigName()
		got, err := loaded.ConfigName()
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s: the tarball's image ID %s, want the index's %s", p, got, want)
		}
	}
}

// TestBinaryInTheImageDelivers takes the host's binary out of the image
// and runs it. This machine cannot start containers, so running the
// extracted binary is the check: it is byte for byte what the container
// would run, with the config at the path the image's command names.
func TestBinaryInTheImageDelivers(t *testing.T) {
	host := "linux/" + runtime.GOARCH
	_, imgs := platformImages(t, builtIndex(t, out))
	img, ok := imgs[host]
	if runtime.GOOS != "linux" || !ok {
		t.Skipf("the image has no %s/%s binary to run here", runtime.GOOS, runtime.GOARCH)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	// A directory the image's user can reach, removed at the end.
	dir, err := os.MkdirTemp("", "webhook-bridge-image-run-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "webhook-bridge")
	if err := os.WriteFile(bin, imageFiles(t, img)["usr/local/bin/webhook-bridge"].data, 0o755); err != nil {
		t.Fatal(err)
	}

	// --version says what the label says.
	v, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("--version: %v", err)
	}
	fields := strings.Fields(string(v))
	if len(fields) < 2 || fields[0] != "webhook-bridge" || fields[1] != cf.Config.Labels[LabelVersion] {
		t.Errorf("--version printed %q; want webhook-bridge %s first", v, cf.Config.Labels[LabelVersion])
	}

	redisDir := filepath.Join(dir, "redis")
	if err := os.Mkdir(redisDir, 0o755); err != nil {
		t.Fatal(err)
	}
	rs, err := redistest.Start(redisDir)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Kill()

	// The receiver checks nothing itself; it hands each request over.
	type got struct {
		header http.Header
		body   []byte
	}
	deliveries := make(chan got, 10)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		deliveries <- got{r.Header.Clone(), body}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()

	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i * 7)
	}
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	config := filepath.Join(dir, "bridge.yaml")
	if err := os.WriteFile(config, []byte(`listen: `+addr+`
redis:
  url: redis://`+rs.Addr+`/0
stream: image-test
subscriptions:
  - id: receiver
    topic: image.checked
    url: `+recv.URL+`/hook
    secret: `+secret+`
`), 0o600); err != nil {
		t.Fatal(err)
	}
	uid, gid, err := imageUser(cf.Config.User)
	if err != nil {
		t.Fatal(err)
	}
	asImageUser := os.Geteuid() == 0
	if asImageUser {
		// As a Secret mounted for the pod's user would be.
		if err := os.Chown(config, uid, gid); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Logf("not root: the binary runs as uid %d, not as the image's %d", os.Geteuid(), uid)
	}

	// As the image runs it: the entrypoint with the image's command, the
	// config's path put in; the image's environment and nothing else; the
	// image's user (when the test may switch to it), for whom the working
	// directory, /, is not writable.
	args := append([]string(nil), cf.Config.Cmd...)
	for i := range args {
		if args[i] == ConfigPath {
			args[i] = config
		}
	}
	cmd := exec.Command(bin, args...)
	// A read-only root filesystem has no writable /tmp either: a
	// temporary directory that cannot be written makes any use of one
	// fail here as it would there.
	cmd.Env = append(append([]string(nil), cf.Config.Env...), "TMPDIR="+filepath.Join(dir, "no-such-dir"))
	cmd.Dir = cf.Config.WorkingDir
	if asImageUser {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	}
	const wait = 20 * time.Second
	p := bridgetest.Run(t, cmd, addr, wait)

	resp, err := http.Post("http://"+addr+"/v1/events", "application/json",
		strings.NewReader(`{"name": "image.checked", "id": "evt-image-1", "payload": {"from": "the image"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/events: %s, want 202", resp.Status)
	}
	var d got
	select {
	case d = <-deliveries:
	case <-time.After(wait):
		t.Fatalf("no delivery within %s", wait)
	}
	if string(d.body) != `{"from": "the image"}` {
		t.Errorf("delivered body %q", d.body)
	}
	id := d.header.Get("webhook-id")
	ts, err := strconv.ParseInt(d.header.Get("webhook-timestamp"), 10, 64)
	if err != nil || id != "evt-image-1" {
		t.Errorf("webhook-id %q, webhook-timestamp %q", id, d.header.Get("webhook-timestamp"))
	}
	if !webhook.Verify(secret, id, ts, d.body, d.header.Get("webhook-signature")) {
		t.Errorf("the signature %q does not verify", d.header.Get("webhook-signature"))
	}

	p.Stop(syscall.SIGTERM, wait)
	if code := p.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("after SIGTERM the bridge exited with status %d (-1: still running %s after it, killed), want 0", code, wait)
	}
	select {
	case extra := <-deliveries:
		t.Errorf("a second delivery: %s", extra.body)
	default:
	}
}

// TestRebuildIsIdenticalAndPushes builds the host's platform a second
// time, into another directory and pushed to a registry on loopback: the
// image's digest is the first build's, and the registry serves the index
// written. One platform only, to keep the test short; the other is built
// the same way.
func TestRebuildIsIdenticalAndPushes(t *testing.T) {
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	ref := strings.TrimPrefix(reg.URL, "http://") + "/switchyard/webhook-bridge:" + strings.ReplaceAll(testVersion, "+", "_")
	host := "linux/" + runtime.GOARCH
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		host = "linux/amd64"
	}
	out2 := filepath.Join(t.TempDir(), "dist")
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"-out", out2, "-push", ref, "-platforms", host, "-version", testVersion}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	_, first := platformImages(t, builtIndex(t, out))
	order, second := platformImages(t, builtIndex(t, out2))
	if len(order) != 1 || order[0] != host {
		t.Fatalf("-platforms %s built %v", host, order)
	}
	d1, _ := first[host].Digest()
	d2, _ := second[host].Digest()
	if d1 != d2 {
		t.Errorf("%s: the second build's digest %s differs from the first's %s", host, d2, d1)
	}

	pulled, err := remote.Index(mustRef(t, ref))
	if err != nil {
		t.Fatal(err)
	}
	pd, _ := pulled.Digest()
	wd, _ := builtIndex(t, out2).Digest()
	if pd != wd {
		t.Errorf("the registry serves index %s, want %s", pd, wd)
	}
	if !strings.Contains(stdout.String(), "pushed ") || !strings.Contains(stdout.String(), "@"+wd.String()) {
		t.Errorf("the command did not report the push:\n%s", stdout.String())
	}
	pi, err := pulled.Image(d2)
	if err != nil {
		t.Fatalf("the pushed index lacks %s: %v", d2, err)
	}
	if _, err := pi.Layers(); err != nil {
		t.Fatal(err)
	}
}

// imageUser reads the config's "uid:gid".
func imageUser(user string) (uid, gid int, err error) {
	u, g, ok := strings.Cut(user, ":")
	if uid, err = strconv.Atoi(u); err != nil || !ok {
		return 0, 0, fmt.Errorf("the image's user %q is not uid:gid", user)
	}
	if gid, err = strconv.Atoi(g); err != nil {
		return 0, 0, fmt.Errorf("the image's user %q is not uid:gid", user)
	}
	return uid, gid, nil
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestBadInputIsRefused(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-out", "x", "-platforms", "linux"}, `"linux" is not os/arch`},
		{[]string{"-out", "x", "-platforms", "windows/amd64"}, "os must be linux"},
		{[]string{"-out", "x", "-platforms", "linux/mips"}, `unknown architecture "mips"`},
		{[]string{"-out", "x", "-platforms", "linux/arm"}, `variant "" is not one of`},
		{[]string{"-out", "x", "-platforms", "linux/amd64,linux/amd64"}, "linux/amd64 is listed twice"},
		{[]string{"-out", "x", "-platforms", ""}, `"" is not os/arch`},
		{[]string{}, "nothing to do: give -out DIR, -push REF or both"},
		{[]string{"-out", "x", "extra"}, `unexpected argument "extra"`},
		{[]string{"-out", "x", "-version", "v1 2"}, `-version "v1 2": want letters, digits`},
		{[]string{"-out", "x", "-version", "-X"}, `-version "-X"`},
		{[]string{"-out", "x", "-version", "v1", "-tag", "Upper/Case:x"}, `-tag "Upper/Case:x"`},
		{[]string{"-push", "not a ref", "-version", "v1"}, `-push "not a ref"`},
		{[]string{"-out", "x", "-repo", os.TempDir()}, "not a switchyard repository"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), c.args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one saying %s", c.args, err, c.want)
		}
		if _, err := os.Stat("x"); err == nil {
			t.Errorf("%q: wrote x", c.args)
			os.RemoveAll("x")
		}
	}
}
