package kubernetes

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	corev1 "k8s.io/api/core/v1"
)

// chartDir is the chart the tests lint and render.
const chartDir = "../helm/webhook-bridge"

// kubeVersion is the cluster version the chart is linted and rendered for:
// the oldest its Chart.yaml accepts.
var kubeVersion = &common.KubeVersion{Version: "v1.25.0", Major: "1", Minor: "25"}

// valueSets are the values the chart is linted and rendered with: its
// defaults, every toggle away from its default, and the sidecar example.
var valueSets = []struct {
	name, file string
	// secretsInBundle: the chart makes the Secret the Pods read.
	secretsInBundle bool
}{
	{"defaults", "", false},
	{"every toggle", "testdata/full-values.yaml", true},
	{"sidecar example", filepath.Join(chartDir, "examples/sidecar.yaml"), false},
}

func readValues(t *testing.T, file string) map[string]any {
	t.Helper()
	if file == "" {
		return map[string]any{}
	}
	v, err := common.ReadValuesFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// render is helm template: the chart's documents for values, by file, with
// NOTES.txt.
func render(t *testing.T, values map[string]any) (map[string]string, error) {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	caps := *common.DefaultCapabilities
	caps.KubeVersion = *kubeVersion
	vals, err := util.ToRenderValues(chrt, values, common.ReleaseOptions{Name: "events", Namespace: "payments", IsInstall: true, Revision: 1}, &caps)
	if err != nil {
		return nil, err
	}
	return engine.Render(chrt, vals)
}

// renderBundle renders the chart and decodes every document strictly.
func renderBundle(t *testing.T, name string, values map[string]any) (*bundle, string) {
	t.Helper()
	out, err := render(t, values)
	if err != nil {
		t.Fatalf("%s: helm template: %v", name, err)
	}
	b := &bundle{name: "chart with " + name}
	var notes string
	for _, file := range slices.Sorted(maps.Keys(out)) {
		switch {
		case strings.HasSuffix(file, "NOTES.txt"):
			notes = out[file]
		case strings.HasSuffix(file, ".yaml"):
			if err := b.decodeDocuments(file, []byte(out[file])); err != nil {
				t.Fatalf("%s: %v\n%s", name, err, out[file])
			}
		}
	}
	return b, notes
}

func TestChartLints(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			res := lint.RunAll(chartDir, readValues(t, vs.file), "payments", lint.WithKubeVersion(kubeVersion))
			for _, m := range res.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %v", m)
				}
			}
		})
	}
}

// TestLintFindsBrokenCharts: the linter the test above relies on refuses a
// chart broken as an edit could break it.
func TestLintFindsBrokenCharts(t *testing.T) {
	for _, c := range []struct{ file, from, to, want string }{
		{"Chart.yaml", "version: 0.1.0", "version: one", "version"},
		{"templates/service.yaml", "{{- end }}", "", "unexpected EOF"},
		{"values.yaml", "replicaCount: 2", "replicaCount: 2\n  bad: [", "values.yaml"},
	} {
		dir := t.TempDir()
		if err := os.CopyFS(dir, os.DirFS(chartDir)); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, c.file)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		broken := strings.Replace(string(data), c.from, c.to, 1)
		if broken == string(data) {
			t.Fatalf("%s holds no %q", c.file, c.from)
		}
		if err := os.WriteFile(path, []byte(broken), 0o644); err != nil {
			t.Fatal(err)
		}
		var errs []string
		for _, m := range lint.RunAll(dir, nil, "payments", lint.WithKubeVersion(kubeVersion)).Messages {
			if m.Severity >= support.ErrorSev {
				errs = append(errs, m.Error())
			}
		}
		if !strings.Contains(strings.Join(errs, "\n"), c.want) {
			t.Errorf("helm lint of the chart with %s broken: errors %q; want one naming %q", c.file, errs, c.want)
		}
	}
}

func TestChartRendersWhatTheBridgeNeeds(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			values := readValues(t, vs.file)
			b, notes := renderBundle(t, vs.name, values)
			checkBundle(t, b, vs.secretsInBundle)
			if len(b.deployments) != 1 || len(b.configMaps) != 1 {
				t.Fatalf("%d Deployments and %d ConfigMaps; want one of each", len(b.deployments), len(b.configMaps))
			}
			d := b.deployments[0]
			mode, _ := values["mode"].(string)
			if mode == "sidecar" {
				if len(b.services) != 0 || len(d.Spec.Template.Spec.Containers) < 2 {
					t.Errorf("mode sidecar: %d Services, %d containers; want none, and the application's beside the bridge", len(b.services), len(d.Spec.Template.Spec.Containers))
				}
			} else if len(b.services) != 1 {
				t.Errorf("mode deployment: %d Services; want one", len(b.services))
			}
			if d.Spec.Template.Annotations["checksum/config"] == "" {
				t.Errorf("no checksum/config annotation: a new configuration would not roll the Pods")
			}
			if !strings.Contains(notes, "/v1/events") {
				t.Errorf("NOTES.txt does not say where events are posted:\n%s", notes)
			}
		})
	}
}

// TestChartHonoursEveryValue renders the chart with every value away from
// its default and finds each in the output.
func TestChartHonoursEveryValue(t *testing.T) {
	b, _ := renderBundle(t, "every toggle", readValues(t, "testdata/full-values.yaml"))
	all, err := bridges(b)
	if err != nil {
		t.Fatal(err)
	}
	d, c := b.deployments[0], all[0].c
	spec := d.Spec.Template.Spec
	for _, check := range []struct {
		what string
		ok   bool
	}{
		{"name events-bridge", d.Name == "events-bridge" && b.configMaps[0].Name == "events-bridge"},
		{"3 replicas", d.Spec.Replicas != nil && *d.Spec.Replicas == 3},
		{"image and tag", c.Image == "registry.example.com/platform/webhook-bridge:v9.9.9"},
		{"pull policy", c.ImagePullPolicy == "Always"},
		{"pull secret", len(spec.ImagePullSecrets) == 1 && spec.ImagePullSecrets[0].Name == "regcred"},
		{"container port 9090", len(c.Ports) == 1 && c.Ports[0].ContainerPort == 9090 && all[0].config["listen"] == "0.0.0.0:9090"},
		{"config from values", all[0].config["stream"] == "orders" && all[0].config["retry"] != nil},
		{"grace period 90", spec.TerminationGracePeriodSeconds != nil && *spec.TerminationGracePeriodSeconds == 90},
		{"shutdown_delay 10s", all[0].config["shutdown_delay"] == "10s" && c.Lifecycle == nil},
		{"Secret made, named", len(b.secrets) == 1 && b.secrets[0].Name == "events-bridge-secrets" && secretData(b.secrets[0])["ledger-secret"] != ""},
		{"checksum/secret", d.Spec.Template.Annotations["checksum/secret"] != ""},
		{"extra env", slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "OTEL_SERVICE_NAME" && e.Value == "events-bridge" }) &&
			slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
				return e.Name == "GOMEMLIMIT" && e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil
			})},
		{"resources", c.Resources.Limits.Memory().String() == "512Mi" && c.Resources.Requests.Cpu().String() == "250m"},
		{"pod annotation", d.Spec.Template.Annotations["example.com/team"] == "payments"},
		{"pod label", d.Spec.Template.Labels["example.com/tier"] == "backend" && d.Spec.Selector.MatchLabels["example.com/tier"] == ""},
		{"service NodePort 80", len(b.services) == 1 && b.services[0].Spec.Type == "NodePort" && b.services[0].Spec.Ports[0].Port == 80},
		{"pdb maxUnavailable 2", len(b.pdbs) == 1 && b.pdbs[0].Spec.MaxUnavailable != nil && b.pdbs[0].Spec.MaxUnavailable.IntValue() == 2},
		{"ServiceMonitor", len(b.monitors) == 1 && string(b.monitors[0].Spec.Endpoints[0].Interval) == "15s" && b.monitors[0].Labels["release"] == "prometheus"},
		{"nodeSelector", spec.NodeSelector["kubernetes.io/os"] == "linux"},
		{"tolerations", len(spec.Tolerations) == 1 && spec.Tolerations[0].Key == "dedicated"},
		{"affinity", spec.Affinity != nil && spec.Affinity.PodAntiAffinity != nil},
	} {
		if !check.ok {
			t.Errorf("values file: %s not rendered", check.what)
		}
	}

	// And the toggles that default to on, off.
	off, _ := renderBundle(t, "pdb and annotations off", map[string]any{
		"pdb":     map[string]any{"enabled": false},
		"metrics": map[string]any{"annotations": false},
	})
	if len(off.pdbs) != 0 || off.deployments[0].Spec.Template.Annotations["prometheus.io/scrape"] != "" {
		t.Errorf("pdb.enabled false and metrics.annotations false: %d PodDisruptionBudgets, annotations %v", len(off.pdbs), off.deployments[0].Spec.Template.Annotations)
	}
	// Mode sidecar, the bridge as a native sidecar.
	sidecar := readValues(t, filepath.Join(chartDir, "examples/sidecar.yaml"))
	sidecar["app"].(map[string]any)["nativeSidecar"] = true
	native, _ := renderBundle(t, "a native sidecar", sidecar)
	checkBundle(t, native, false)
	nspec := native.deployments[0].Spec.Template.Spec
	if len(nspec.InitContainers) != 1 || nspec.InitContainers[0].Name != "webhook-bridge" ||
		nspec.InitContainers[0].RestartPolicy == nil || *nspec.InitContainers[0].RestartPolicy != corev1.ContainerRestartPolicyAlways ||
		nspec.InitContainers[0].StartupProbe == nil || slices.ContainsFunc(nspec.Containers, func(c corev1.Container) bool { return c.Name == "webhook-bridge" }) {
		t.Errorf("app.nativeSidecar: init containers %+v, containers %+v; want the bridge as an init container with restartPolicy Always and a startup probe, and only there", nspec.InitContainers, nspec.Containers)
	}

	on, _ := renderBundle(t, "defaults", nil)
	if len(on.pdbs) != 1 || len(on.monitors) != 0 || len(on.secrets) != 0 {
		t.Errorf("defaults: %d PodDisruptionBudgets, %d ServiceMonitors, %d Secrets; want 1, 0, 0", len(on.pdbs), len(on.monitors), len(on.secrets))
	}
}

// TestChartRefusesBadValues: values that would give a broken bridge fail
// at render, saying which value.
func TestChartRefusesBadValues(t *testing.T) {
	for _, c := range []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"grace not above the shutdown", map[string]any{"terminationGracePeriodSeconds": 35}, "terminationGracePeriodSeconds 35"},
		{"longer shutdown", map[string]any{"config": map[string]any{"shutdown_timeout": "1m0.5s"}}, "config.shutdown_timeout (61s)"},
		{"longer delay", map[string]any{"config": map[string]any{"shutdown_delay": "10.5s"}}, "terminationGracePeriodSeconds 45: want more than config.shutdown_delay (11s)"},
		{"bad duration", map[string]any{"config": map[string]any{"shutdown_timeout": "30 seconds"}}, "config.shutdown_timeout"},
		{"bad delay", map[string]any{"config": map[string]any{"shutdown_delay": "-5s"}}, `config.shutdown_delay "-5s"`},
		{"preStop sleep gone", map[string]any{"preStopSleepSeconds": 5}, "preStopSleepSeconds"},
		{"listen set", map[string]any{"config": map[string]any{"listen": "127.0.0.1:8080"}}, "config.listen"},
		{"secret key missing", map[string]any{"secret": map[string]any{"create": true, "values": map[string]any{"redis-url": "redis://r:6379"}}}, "secret.values has no key"},
		{"unknown mode", map[string]any{"mode": "daemonset"}, "mode"},
		{"misspelt value", map[string]any{"replicas": 3}, "replicas"},
		{"misspelt nested value", map[string]any{"pdb": map[string]any{"maxUnavaliable": 1}}, "maxUnavaliable"},
		{"a PDB that blocks every drain", map[string]any{"pdb": map[string]any{"maxUnavailable": 0}}, "maxUnavailable"},
		{"a PDB of 0%", map[string]any{"pdb": map[string]any{"maxUnavailable": "0%"}}, "maxUnavailable"},
		{"a name Kubernetes refuses", map[string]any{"fullnameOverride": "Bad_Name"}, "fullnameOverride"},
		{"a name too long", map[string]any{"fullnameOverride": strings.Repeat("a", 64)}, "fullnameOverride"},
		{"extraEnv over a secret", map[string]any{"extraEnv": []any{map[string]any{"name": "REDIS_URL", "value": "redis://elsewhere:6379"}}}, "extraEnv sets REDIS_URL"},
		{"extraEnv over the pod name", map[string]any{"extraEnv": []any{map[string]any{"name": "POD_NAME", "value": "x"}}}, "extraEnv sets POD_NAME"},
		{"value of the wrong type", map[string]any{"replicaCount": "two"}, "replicaCount"},
		{"sidecar without app", map[string]any{"mode": "sidecar"}, "app.containers is empty"},
		{"monitor in sidecar mode", map[string]any{"mode": "sidecar", "serviceMonitor": map[string]any{"enabled": true},
			"app": map[string]any{"containers": []any{map[string]any{"name": "app", "image": "app:1"}}}}, "serviceMonitor.enabled needs mode deployment"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := render(t, c.values)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("helm template: %v; want an error saying %q", err, c.want)
			}
		})
	}
	// A grace period just above the bound passes: 5s + 30s + 5 s with the
	// defaults, 30s + 5 s without the delay.
	for _, ok := range []map[string]any{
		{"terminationGracePeriodSeconds": 41},
		{"terminationGracePeriodSeconds": 36, "config": map[string]any{"shutdown_delay": "0s"}},
		// Durations as the bridge reads them: a bare 0, a leading dot.
		{"terminationGracePeriodSeconds": 36, "config": map[string]any{"shutdown_delay": "0"}},
		{"terminationGracePeriodSeconds": 36, "config": map[string]any{"shutdown_delay": 0}},
		{"terminationGracePeriodSeconds": 37, "config": map[string]any{"shutdown_delay": ".5s"}},
		{"terminationGracePeriodSeconds": 37, "config": map[string]any{"shutdown_delay": "500ms", "shutdown_timeout": "30.s"}},
	} {
		if _, err := render(t, ok); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
}
