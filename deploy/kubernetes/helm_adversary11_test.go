package kubernetes

import (
	"strings"
	"testing"
)

// TestChartRefusesSecretsInConfig: config is rendered into a ConfigMap,
// which anyone who may read the namespace's ConfigMaps reads; a token,
// secret, header value or Redis password written there as it is, not as
// ${NAME}, is refused at render, naming the key, without the value.
func TestChartRefusesSecretsInConfig(t *testing.T) {
	sub := func(extra map[string]any) map[string]any {
		s := map[string]any{"id": "a", "topic": "t", "url": "https://h.example/in"}
		for k, v := range extra {
			s[k] = v
		}
		return map[string]any{"subscriptions": []any{s}}
	}
	for _, c := range []struct {
		name   string
		config map[string]any
		want   string
	}{
		{"admin token", map[string]any{"auth": map[string]any{"admin_token": "hunter2-literal"}}, "config.auth.admin_token"},
		{"jwt secret", map[string]any{"auth": map[string]any{"jwt_secret": "hunter2-literal"}}, "config.auth.jwt_secret"},
		{"redis password", map[string]any{"redis": map[string]any{"url": "redis://:hunter2-literal@r:6379"}}, "config.redis.url"},
		{"sentinel password", map[string]any{"redis": map[string]any{"url": nil, "sentinel_url": "redis://s:26379?master_name=m&password=hunter2-literal"}}, "config.redis.sentinel_url"},
		{"subscription secret", sub(map[string]any{"secret": "whsec_aHVudGVyMi1saXRlcmFsaHVudGVyMg=="}), "config.subscriptions[0].secret"},
		{"subscription header", sub(map[string]any{"headers": map[string]any{"Authorization": "Bearer hunter2-literal"}}), "config.subscriptions[0].headers.Authorization"},
		{"subscription URL user info", sub(map[string]any{"url": "https://u:hunter2-literal@h.example/in"}), "config.subscriptions[0].url"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := render(t, map[string]any{"config": c.config})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("helm template: %v; want an error naming %s", err, c.want)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "aHVudGVy") {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
	// The same keys as ${NAME}, or with no secret in them, render.
	for _, ok := range []map[string]any{
		{"auth": map[string]any{"admin_token": "${ADMIN}", "jwt_secret": "${JWT}"}},
		{"redis": map[string]any{"url": "redis://r:6379/0"}},
		{"redis": map[string]any{"url": "redis://:${REDIS_PASSWORD}@r:6379/0"}},
		sub(map[string]any{"secret": "${WHSEC}", "headers": map[string]any{"Authorization": "Bearer ${TOKEN}", "X-Team": "${TEAM}"}}),
	} {
		if _, err := render(t, map[string]any{"config": ok}); err != nil {
			t.Errorf("config %v: %v", ok, err)
		}
	}
}

// TestChartRefusesSidecarClashes: in mode sidecar the application's
// containers share the Pod's name space of containers and its network:
// one named like the bridge's container, or listening on containerPort,
// makes a Pod that cannot run, refused at render.
func TestChartRefusesSidecarClashes(t *testing.T) {
	for _, c := range []struct {
		name      string
		container map[string]any
		want      string
	}{
		{"same name", map[string]any{"name": "webhook-bridge", "image": "app:1"}, `app.containers: a container is named "webhook-bridge"`},
		{"same port", map[string]any{"name": "app", "image": "app:1", "ports": []any{map[string]any{"containerPort": 8080}}}, "app.containers: container app listens on 8080"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := render(t, map[string]any{"mode": "sidecar", "app": map[string]any{"containers": []any{c.container}}})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("helm template: %v; want an error saying %q", err, c.want)
			}
		})
	}
}
