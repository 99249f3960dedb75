package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/zip"
)

// rootModule is the library's module path.
const rootModule = "github.com/switchyard-go/switchyard"

// TestRootModuleInstallable checks what `go install` needs of the root
// go.mod: no replace or exclude directive, which go install …@version
// refuses.
func TestRootModuleInstallable(t *testing.T) {
	data, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.Parse("go.mod", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Module == nil || f.Module.Mod.Path != rootModule {
		t.Fatalf("go.mod declares module %v, want %s", f.Module, rootModule)
	}
	for _, r := range f.Replace {
		t.Errorf("go.mod:%d: replace %s: go install %s/cmd/webhook-bridge@VERSION refuses a module with replace directives", r.Syntax.Start.Line, r.Old.Path, rootModule)
	}
	for _, x := range f.Exclude {
		t.Errorf("go.mod:%d: exclude %s: go install %s/cmd/webhook-bridge@VERSION refuses a module with exclude directives", x.Syntax.Start.Line, x.Mod.Path, rootModule)
	}
}

// goEnv returns `go env name`.
func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

// TestGoInstall installs cmd/webhook-bridge as a user would, with
// `go install github.com/switchyard-go/switchyard/cmd/webhook-bridge@VERSION`,
// from a module proxy in a directory that holds this working tree as
// VERSION, and checks that the binary says it is VERSION.
//
// Dependencies come from the shared module cache (nothing is downloaded
// again); the test's own version is unique to the run, so that no run
// installs what an earlier one left in that cache, and is removed from
// it at the end.
func TestGoInstall(t *testing.T) {
	version := fmt.Sprintf("v0.99.%d", time.Now().UnixNano())
	modCache := goEnv(t, "GOMODCACHE")
	if modCache == "" {
		t.Fatal("go env GOMODCACHE is empty")
	}
	t.Cleanup(func() { removeFromModCache(t, modCache, version) })

	proxy := t.TempDir()
	escaped, err := module.EscapePath(rootModule)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(proxy, filepath.FromSlash(escaped), "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	zf, err := os.Create(filepath.Join(dir, version+".zip"))
	if err != nil {
		t.Fatal(err)
	}
	// The module's files as go would pack them: bench/, interop/ and
	// deploy/, modules of their own, are left out.
	if err := zip.CreateFromDir(zf, module.Version{Path: rootModule, Version: version}, root); err != nil {
		t.Fatalf("packing the module: %v", err)
	}
	if err := zf.Close(); err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	info, _ := json.Marshal(map[string]any{"Version": version, "Time": time.Now().UTC().Format(time.RFC3339)})
	for name, data := range map[string][]byte{version + ".mod": gomod, version + ".info": info, "list": []byte(version + "\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	gobin := t.TempDir()
	goproxy := "file://" + filepath.ToSlash(proxy)
	if real := goEnv(t, "GOPROXY"); real != "" {
		goproxy += "," + real
	}
	cmd := exec.Command("go", "install", rootModule+"/cmd/webhook-bridge@"+version)
	cmd.Dir = t.TempDir() // outside any module
	cmd.Env = append(os.Environ(),
		"GOPROXY="+goproxy,
		"GONOSUMDB="+rootModule, // the test's version is in no checksum database
		"GONOPROXY=", "GOPRIVATE=",
		"GOFLAGS=", "GOWORK=off", "GOTOOLCHAIN=local",
		"GOBIN="+gobin, "GOMODCACHE="+modCache,
	)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install …@%s: %v\n%s", version, err, out)
	}
	t.Logf("go install took %s", time.Since(start).Round(time.Millisecond))

	out, err := exec.Command(filepath.Join(gobin, "webhook-bridge"), "--version").Output()
	if err != nil {
		t.Fatalf("webhook-bridge --version: %v", err)
	}
	fields := strings.Fields(string(out))
	if len(fields) < 2 || fields[0] != "webhook-bridge" || fields[1] != version {
		t.Errorf("webhook-bridge --version printed %q, want \"webhook-bridge %s …\"", out, version)
	}
}

// removeFromModCache removes version of the root module from the module
// cache: its extracted tree (made read-only by go) and its download
// files.
func removeFromModCache(t *testing.T, modCache, version string) {
	escaped, _ := module.EscapePath(rootModule)
	tree := filepath.Join(modCache, filepath.FromSlash(escaped)+"@"+version)
	_ = filepath.WalkDir(tree, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(path, 0o755)
		}
		return nil
	})
	if err := os.RemoveAll(tree); err != nil {
		t.Errorf("removing %s from the module cache: %v", tree, err)
	}
	dl := filepath.Join(modCache, "cache", "download", filepath.FromSlash(escaped), "@v")
	files, _ := filepath.Glob(filepath.Join(dl, version+".*"))
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			t.Errorf("removing %s from the module cache: %v", f, err)
		}
	}
	// go lists the versions it fetched; drop this one.
	list, err := os.ReadFile(filepath.Join(dl, "list"))
	if err != nil {
		return
	}
	var kept []string
	for _, v := range strings.Fields(string(list)) {
		if v != version {
			kept = append(kept, v)
		}
	}
	if len(kept) == 0 {
		_ = os.Remove(filepath.Join(dl, "list"))
	} else {
		_ = os.WriteFile(filepath.Join(dl, "list"), []byte(strings.Join(kept, "\n")+"\n"), 0o644)
	}
}
