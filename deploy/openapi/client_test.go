package openapi

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestGeneratedClient generates TypeScript types from the description the
// bridge serves (GET /openapi.yaml) with openapi-typescript, compiles a
// client written against them with openapi-fetch and tsc (strict), and
// runs it with node: it makes a subscription and posts an event, which
// the receiver gets. A description that disagreed with what the client
// needs (a path, a field, a type) fails the compile; one that disagreed
// with the bridge fails the run.
func TestGeneratedClient(t *testing.T) {
	<-nodeReady
	if nodeErr != nil {
		t.Fatal(nodeErr)
	}
	rcv := startReceiver(t)
	b := startBridge(t, `
listen: LISTEN
redis:
  url: redis://REDIS/0
stream: openapi-client-`+time.Now().Format("150405.000000000")+`
auth:
  jwt_secret: `+jwtSecret+`
  admin_token: `+adminToken+`
`)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = nodeDir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	bin := func(name string) string { return filepath.Join(nodeDir, "node_modules", ".bin", name) }
	run(bin("openapi-typescript"), "http://"+b.Addr+"/openapi.yaml", "-o", "schema.d.ts")
	run(bin("tsc"), "-p", "tsconfig.json")

	jwt := jwtHS256(jwtSecret, map[string]any{"exp": time.Now().Add(time.Hour).Unix()})
	out := run("node", filepath.Join("dist", "client.js"), "http://"+b.Addr, adminToken, jwt, rcv.url+"/ok", "from-typescript-1")
	var res struct {
		Status  int      `json:"status"`
		IDs     []string `json:"ids"`
		Source  string   `json:"source"`
		Secrets *int     `json:"secrets"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &res); err != nil {
		t.Fatalf("client printed %q: %v", out, err)
	}
	if res.Status != 202 || !slices.Equal(res.IDs, []string{"from-typescript-1"}) || res.Source != "api" || res.Secrets == nil || *res.Secrets != 0 {
		t.Fatalf("client: %+v, want 202 with the id posted, from a subscription of source api without secrets", res)
	}
	eventually(t, "the receiver got the event the generated client posted", func() bool {
		return slices.Contains(rcv.delivered("/ok"), "from-typescript-1")
	})
	if got := rcv.bodyOf("from-typescript-1"); got != `{"from":"typescript"}` {
		t.Errorf("delivered body %q, want the payload posted", got)
	}
}
