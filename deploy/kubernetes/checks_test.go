package kubernetes

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestChecksCatchBrokenManifests breaks the standalone manifests one way at
// a time and expects the checks to name what broke: none of them passes
// whatever it is given.
func TestChecksCatchBrokenManifests(t *testing.T) {
	bridge := func(b *bundle) *corev1.Container {
		for i, c := range b.deployments[0].Spec.Template.Spec.Containers {
			if c.Name == "webhook-bridge" {
				return &b.deployments[0].Spec.Template.Spec.Containers[i]
			}
		}
		t.Fatal("no webhook-bridge container")
		return nil
	}
	pod := func(b *bundle) *corev1.PodSpec { return &b.deployments[0].Spec.Template.Spec }
	editConfig := func(b *bundle, from, to string) {
		text := b.configMaps[0].Data["bridge.yaml"]
		if !strings.Contains(text, from) {
			t.Fatalf("the config holds no %q", from)
		}
		b.configMaps[0].Data["bridge.yaml"] = strings.Replace(text, from, to, 1)
	}
	no := false
	zero := int64(0)
	short := int64(35)
	for _, c := range []struct {
		name string
		edit func(*bundle)
		want string
	}{
		{"liveness path", func(b *bundle) { bridge(b).LivenessProbe.HTTPGet.Path = "/health" }, "livenessProbe path"},
		{"readiness port", func(b *bundle) { bridge(b).ReadinessProbe.HTTPGet.Port = intstr.FromInt32(9090) }, "readinessProbe port"},
		{"readiness named port", func(b *bundle) { bridge(b).ReadinessProbe.HTTPGet.Port = intstr.FromString("metrics") }, "readinessProbe port"},
		{"listen on loopback", func(b *bundle) { editConfig(b, "listen: 0.0.0.0:8080", "listen: 127.0.0.1:8080") }, "want 0.0.0.0:PORT"},
		{"listen elsewhere", func(b *bundle) { editConfig(b, "listen: 0.0.0.0:8080", "listen: 0.0.0.0:9090") }, "is not a container port"},
		{"grace period", func(b *bundle) { pod(b).TerminationGracePeriodSeconds = &short }, "terminationGracePeriodSeconds"},
		{"longer shutdown", func(b *bundle) { editConfig(b, "shutdown_timeout: 30s", "shutdown_timeout: 40s") }, "shutdown_timeout 40s plus 5s"},
		{"longer delay", func(b *bundle) { editConfig(b, "shutdown_delay: 5s", "shutdown_delay: 15s") }, "terminationGracePeriodSeconds 45; want more than shutdown_delay 15s"},
		{"no delay", func(b *bundle) { editConfig(b, "shutdown_delay: 5s", "shutdown_delay: 0s") }, "config shutdown_delay 0s behind Service"},
		{"no delay key", func(b *bundle) { editConfig(b, "shutdown_delay: 5s", "") }, "config shutdown_delay 0s behind Service"},
		{"bad delay", func(b *bundle) { editConfig(b, "shutdown_delay: 5s", "shutdown_delay: 5 seconds") }, "config shutdown_delay 5 seconds"},
		{"preStop sleep", func(b *bundle) {
			bridge(b).Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 10}}}
		}, "preStop sleep 10s plus shutdown_delay 5s"},
		{"preStop exec", func(b *bundle) {
			bridge(b).Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sleep", "5"}}}}
		}, "no program to run"},
		{"untagged image", func(b *bundle) { bridge(b).Image = "ghcr.io/switchyard-go/webhook-bridge" }, "want a version tag"},
		{"latest image", func(b *bundle) { bridge(b).Image = "localhost:5000/webhook-bridge:latest" }, "want a version tag"},
		{"writable root", func(b *bundle) { bridge(b).SecurityContext.ReadOnlyRootFilesystem = &no }, "readOnlyRootFilesystem"},
		{"root user", func(b *bundle) { bridge(b).SecurityContext.RunAsUser = &zero }, "runAsUser"},
		{"capabilities kept", func(b *bundle) { bridge(b).SecurityContext.Capabilities = nil }, "capabilities"},
		{"escalation", func(b *bundle) { bridge(b).SecurityContext.AllowPrivilegeEscalation = nil }, "allowPrivilegeEscalation"},
		{"no seccomp", func(b *bundle) {
			bridge(b).SecurityContext.SeccompProfile = nil
			pod(b).SecurityContext.SeccompProfile = nil
		}, "seccompProfile"},
		{"no requests", func(b *bundle) { bridge(b).Resources.Requests = nil }, "request"},
		{"no memory limit", func(b *bundle) { delete(bridge(b).Resources.Limits, corev1.ResourceMemory) }, "no memory limit"},
		{"wrong secret key", func(b *bundle) { bridge(b).Env[2].ValueFrom.SecretKeyRef.Key = "jwt" }, `reads key "jwt"`},
		{"missing env", func(b *bundle) { bridge(b).Env = bridge(b).Env[:len(bridge(b).Env)-1] }, "does not set"},
		{"secret in the file", func(b *bundle) {
			editConfig(b, "${BRIDGE_JWT_SECRET}", secretData(b.secrets[0])["jwt-secret"])
		}, "is written in ConfigMap"},
		{"literal admin token", func(b *bundle) { editConfig(b, "${BRIDGE_ADMIN_TOKEN}", "hunter2-hunter2") }, "config auth.admin_token is written"},
		{"no jwt", func(b *bundle) { editConfig(b, "jwt_secret: ${BRIDGE_JWT_SECRET}", "") }, "auth.jwt_secret is not set"},
		{"shared consumer", func(b *bundle) { editConfig(b, "consumer: ${POD_NAME}", "consumer: bridge") }, "config consumer"},
		{"no config mount", func(b *bundle) { bridge(b).VolumeMounts = nil }, "no ConfigMap volume"},
		{"service selector", func(b *bundle) { b.services[0].Spec.Selector["app.kubernetes.io/name"] = "other" }, "Service webhook-bridge selects"},
		{"service target", func(b *bundle) { b.services[0].Spec.Ports[0].TargetPort = intstr.FromInt32(80) }, "targets 80"},
		{"pdb selector", func(b *bundle) { b.pdbs[0].Spec.Selector.MatchLabels["app.kubernetes.io/instance"] = "other" }, "PodDisruptionBudget"},
		{"metrics port", func(b *bundle) { b.deployments[0].Spec.Template.Annotations["prometheus.io/port"] = "9090" }, "prometheus.io"},
		{"monitor port", func(b *bundle) { b.monitors[0].Spec.Endpoints[0].Port = "metrics" }, "ServiceMonitor"},
		{"deployment selector", func(b *bundle) {
			b.deployments[0].Spec.Selector.MatchLabels["app.kubernetes.io/name"] = "other"
		}, "does not select its Pods"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := loadDir(t, "deployment")
			if p := problems(b, true); len(p) > 0 {
				t.Fatalf("as shipped: %v", p)
			}
			c.edit(b)
			p := problems(b, true)
			if !strings.Contains(strings.Join(p, "\n"), c.want) {
				t.Errorf("problems %q; want one saying %q", p, c.want)
			}
		})
	}
}
