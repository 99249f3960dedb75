package kubernetes

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"
)

// bundle is one set of resources applied together: a manifest directory,
// or what the chart renders for one set of values.
type bundle struct {
	name        string
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	configMaps  []*corev1.ConfigMap
	secrets     []*corev1.Secret
	pdbs        []*policyv1.PodDisruptionBudget
	monitors    []*monitoringv1.ServiceMonitor
}

// decodeDocuments decodes every YAML document of data strictly into the
// Kubernetes API type its apiVersion and kind name, and adds it to b: a
// field the type does not have, a value of the wrong type or a kind this
// project does not ship is an error naming the source and the document.
func (b *bundle) decodeDocuments(source string, data []byte) error {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: document %d: %w", source, i, err)
		}
		var tm metav1.TypeMeta
		if err := sigsyaml.Unmarshal(doc, &tm); err != nil {
			return fmt.Errorf("%s: document %d: %w", source, i, err)
		}
		if tm.Kind == "" && tm.APIVersion == "" {
			var v any
			if err := sigsyaml.Unmarshal(doc, &v); err != nil || v != nil {
				return fmt.Errorf("%s: document %d has no apiVersion and kind", source, i)
			}
			continue // empty: only comments, or a template that rendered nothing
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 Deployment":
			d := &appsv1.Deployment{}
			b.deployments, obj = append(b.deployments, d), d
		case "v1 Service":
			s := &corev1.Service{}
			b.services, obj = append(b.services, s), s
		case "v1 ConfigMap":
			c := &corev1.ConfigMap{}
			b.configMaps, obj = append(b.configMaps, c), c
		case "v1 Secret":
			s := &corev1.Secret{}
			b.secrets, obj = append(b.secrets, s), s
		case "policy/v1 PodDisruptionBudget":
			p := &policyv1.PodDisruptionBudget{}
			b.pdbs, obj = append(b.pdbs, p), p
		case "monitoring.coreos.com/v1 ServiceMonitor":
			m := &monitoringv1.ServiceMonitor{}
			b.monitors, obj = append(b.monitors, m), m
		default:
			return fmt.Errorf("%s: document %d: %s %s is not a kind these manifests ship", source, i, tm.APIVersion, tm.Kind)
		}
		if err := decodeStrict(doc, obj); err != nil {
			return fmt.Errorf("%s: %s (document %d): %w", source, tm.Kind, i, err)
		}
	}
}

// decodeStrict decodes a YAML document into obj as the API server decodes
// a request: field names match exactly, in their case (encoding/json, and
// so sigs.k8s.io/yaml's UnmarshalStrict, would take readOnlyRootFileSystem
// for readOnlyRootFilesystem), and an unknown or repeated field is an
// error.
func decodeStrict(doc []byte, obj any) error {
	js, err := sigsyaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := sigsjson.UnmarshalStrict(js, obj)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// loadDir reads every manifest of a directory under deploy/kubernetes, and
// checks that its kustomization.yaml lists each one but the optional
// ServiceMonitor.
func loadDir(t *testing.T, dir string) *bundle {
	t.Helper()
	b := &bundle{name: dir}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("%s: no manifests (%v)", dir, err)
	}
	var want []string
	for _, f := range files {
		base := filepath.Base(f)
		if base == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n := len(b.monitors)
		if err := b.decodeDocuments(f, data); err != nil {
			t.Fatal(err)
		}
		if len(b.monitors) == n {
			want = append(want, base) // a ServiceMonitor needs the operator's CRD: applied on its own
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
	}
	if err := decodeStrict(raw, &k); err != nil {
		t.Fatalf("%s/kustomization.yaml: %v", dir, err)
	}
	slices.Sort(k.Resources)
	if k.Kind != "Kustomization" || !slices.Equal(k.Resources, want) {
		t.Errorf("%s/kustomization.yaml: kind %q, resources %v; want Kustomization with %v", dir, k.Kind, k.Resources, want)
	}
	return b
}

func TestManifestsDecodeStrictly(t *testing.T) {
	for _, dir := range []string{"deployment", "sidecar"} {
		b := loadDir(t, dir)
		if len(b.deployments) != 1 || len(b.configMaps) != 1 || len(b.secrets) != 1 {
			t.Errorf("%s: %d Deployments, %d ConfigMaps, %d Secrets; want one of each", dir, len(b.deployments), len(b.configMaps), len(b.secrets))
		}
	}
	b := loadDir(t, "deployment")
	if len(b.services) != 1 || len(b.pdbs) != 1 || len(b.monitors) != 1 {
		t.Errorf("deployment: %d Services, %d PodDisruptionBudgets, %d ServiceMonitors; want one of each", len(b.services), len(b.pdbs), len(b.monitors))
	}
}

// TestStrictDecodingRefusesMisspeltFields breaks the shipped manifests in
// the ways a hand edit does, and expects each to be refused: so the
// decoding the other tests rely on is strict.
func TestStrictDecodingRefusesMisspeltFields(t *testing.T) {
	for _, c := range []struct{ file, from, to, want string }{
		{"deployment/deployment.yaml", "terminationGracePeriodSeconds:", "terminationGracePeriodSecond:", "terminationGracePeriodSecond"},
		{"deployment/deployment.yaml", "readOnlyRootFilesystem:", "readOnlyRootFileSystem:", "readOnlyRootFileSystem"},
		{"deployment/deployment.yaml", "replicas: 2", "replicas: two", "replicas"},
		{"deployment/deployment.yaml", "\n        runAsNonRoot: true\n", "\n        runAsNonRoot: true\n        runAsNonRoot: false\n", "runAsNonRoot"},
		{"deployment/pdb.yaml", "maxUnavailable:", "maxUnavaliable:", "maxUnavaliable"},
		{"deployment/servicemonitor.yaml", "interval:", "intervall:", "intervall"},
		{"sidecar/configmap.yaml", "kind: ConfigMap", "kind: ConfigMapp", "ConfigMapp"},
	} {
		data, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		broken := strings.Replace(string(data), c.from, c.to, 1)
		if broken == string(data) {
			t.Fatalf("%s holds no %q to break", c.file, c.from)
		}
		var b bundle
		if err := b.decodeDocuments(c.file, []byte(broken)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s with %q for %q: error %v; want one naming %q", c.file, c.to, c.from, err, c.want)
		}
		var good bundle
		if err := good.decodeDocuments(c.file, data); err != nil {
			t.Errorf("%s as shipped: %v", c.file, err)
		}
	}
}

func TestManifestsKeepTheBridgeContract(t *testing.T) {
	for _, dir := range []string{"deployment", "sidecar"} {
		t.Run(dir, func(t *testing.T) {
			b := loadDir(t, dir)
			checkBundle(t, b, true)
			if dir == "deployment" {
				if r := b.deployments[0].Spec.Replicas; r == nil || *r < 2 {
					t.Errorf("the standalone Deployment has %v replicas; want 2 or more sharing one Redis", r)
				}
				if len(b.pdbs) == 0 || len(b.services) == 0 || len(b.monitors) == 0 {
					t.Errorf("the standalone Deployment comes with a PodDisruptionBudget, a Service and a ServiceMonitor")
				}
			} else if len(b.deployments[0].Spec.Template.Spec.Containers) < 2 {
				t.Errorf("the sidecar Pod has %d containers; want the application's and the bridge", len(b.deployments[0].Spec.Template.Spec.Containers))
			}
		})
	}
}

// bridgeContainer is the webhook-bridge container of a Pod: the one run
// with --config.
type bridgeContainer struct {
	deployment *appsv1.Deployment
	c          *corev1.Container
	configPath string
	config     map[string]any // the configuration file, as YAML
	configText string
	port       int32 // the port config.listen names
}

// bridges finds every bridge container of b and the configuration file its
// --config names in a ConfigMap volume of b.
func bridges(b *bundle) ([]bridgeContainer, error) {
	var out []bridgeContainer
	for _, d := range b.deployments {
		spec := &d.Spec.Template.Spec
		var containers []*corev1.Container
		for i := range spec.InitContainers {
			// A native sidecar: an init container that keeps running.
			if p := spec.InitContainers[i].RestartPolicy; p != nil && *p == corev1.ContainerRestartPolicyAlways {
				containers = append(containers, &spec.InitContainers[i])
			}
		}
		for i := range spec.Containers {
			containers = append(containers, &spec.Containers[i])
		}
		for _, c := range containers {
			args := append(slices.Clone(c.Command), c.Args...)
			at := slices.Index(args, "--config")
			if at < 0 {
				continue
			}
			if at+1 >= len(args) {
				return nil, fmt.Errorf("%s: %s/%s: --config without a file", b.name, d.Name, c.Name)
			}
			bc := bridgeContainer{deployment: d, c: c, configPath: args[at+1]}
			text, err := configFile(b, d, c, bc.configPath)
			if err != nil {
				return nil, err
			}
			bc.configText = text
			if err := sigsyaml.Unmarshal([]byte(text), &bc.config); err != nil {
				return nil, fmt.Errorf("%s: %s: %s: %v", b.name, d.Name, bc.configPath, err)
			}
			out = append(out, bc)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no container runs the bridge with --config", b.name)
	}
	return out, nil
}

// configFile returns the content of path as the container sees it: the key
// of the ConfigMap mounted at path's directory.
func configFile(b *bundle, d *appsv1.Deployment, c *corev1.Container, path string) (string, error) {
	for _, m := range c.VolumeMounts {
		if m.MountPath != filepath.Dir(path) || m.SubPath != "" {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			for _, cm := range b.configMaps {
				if cm.Name == v.ConfigMap.Name {
					text, ok := cm.Data[filepath.Base(path)]
					if !ok {
						return "", fmt.Errorf("%s: ConfigMap %s has no key %s, the file --config names", b.name, cm.Name, filepath.Base(path))
					}
					return text, nil
				}
			}
			return "", fmt.Errorf("%s: volume %s names ConfigMap %s, which is not there", b.name, v.Name, v.ConfigMap.Name)
		}
	}
	return "", fmt.Errorf("%s: %s/%s: no ConfigMap volume is mounted at %s, the directory of --config %s", b.name, d.Name, c.Name, filepath.Dir(path), path)
}

// containerPort resolves a probe's or a Service's port, a number or the
// name of one of c's ports.
func containerPort(c *corev1.Container, p intstr.IntOrString) (int32, bool) {
	if p.Type == intstr.Int {
		return p.IntVal, p.IntVal > 0
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

// durationOf reads a Go duration of the configuration, def when absent.
func durationOf(cfg map[string]any, key string, def time.Duration) (time.Duration, error) {
	v, ok := cfg[key]
	if !ok {
		return def, nil
	}
	s, _ := v.(string)
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("config %s %v: %v", key, v, err)
	}
	return d, nil
}

// envRef is a whole value "${NAME}", the only form a secret may take in a
// configuration file.
var envRef = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$`)

// anyEnvRef finds ${NAME} and ${NAME:-default} anywhere.
var anyEnvRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}`)

// secretSettings returns the configuration's values that are secrets, by
// their path: these must come from the environment.
func secretSettings(cfg map[string]any) map[string]any {
	out := map[string]any{}
	sub := func(m any, key string) any {
		if mm, ok := m.(map[string]any); ok {
			return mm[key]
		}
		return nil
	}
	for _, k := range []string{"jwt_secret", "admin_token"} {
		if v := sub(cfg["auth"], k); v != nil {
			out["auth."+k] = v
		}
	}
	if v := sub(cfg["demo"], "secret"); v != nil {
		out["demo.secret"] = v
	}
	for _, k := range []string{"url", "cluster_url", "sentinel_url"} {
		if v := sub(cfg["redis"], k); v != nil {
			out["redis."+k] = v // it may hold a password
		}
	}
	subs, _ := cfg["subscriptions"].([]any)
	for i, s := range subs {
		switch v := sub(s, "secret").(type) {
		case nil:
		case []any:
			for j, one := range v {
				out[fmt.Sprintf("subscriptions[%d].secret[%d]", i, j)] = one
			}
		default:
			out[fmt.Sprintf("subscriptions[%d].secret", i)] = v
		}
	}
	return out
}

// checkBundle reports in t what problems finds in b.
func checkBundle(t *testing.T, b *bundle, secretsInBundle bool) {
	t.Helper()
	for _, p := range problems(b, secretsInBundle) {
		t.Error(p)
	}
}

// problems checks what every bridge Pod of b needs, and returns one line
// for each thing wrong; secretsInBundle says that every Secret the Pods
// read is one of b's.
func problems(b *bundle, secretsInBundle bool) []string {
	var out []string
	errorf := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	all, err := bridges(b)
	if err != nil {
		return []string{err.Error()}
	}
	for _, bc := range all {
		d, c, cfg := bc.deployment, bc.c, bc.config
		where := fmt.Sprintf("%s: %s/%s", b.name, d.Name, c.Name)
		pod := &d.Spec.Template

		// The bridge listens on every address, on the port the container declares.
		listen, _ := cfg["listen"].(string)
		host, port, ok := strings.Cut(listen, ":")
		if !ok || (host != "" && host != "0.0.0.0" && host != "[::]") {
			errorf("%s: config listen %q: want 0.0.0.0:PORT, so that the probes reach the Pod's IP", where, listen)
		}
		var declared []int32
		for _, cp := range c.Ports {
			declared = append(declared, cp.ContainerPort)
			if fmt.Sprint(cp.ContainerPort) == port {
				bc.port = cp.ContainerPort
			}
		}
		if bc.port == 0 {
			errorf("%s: config listen %q is not a container port %v", where, listen, declared)
		}
		// ... and requires tokens there.
		for _, k := range []string{"jwt_secret", "admin_token"} {
			if auth, _ := cfg["auth"].(map[string]any); auth == nil || auth[k] == nil || auth[k] == "" {
				errorf("%s: config auth.%s is not set, and the bridge listens beyond loopback", where, k)
			}
		}

		// Probes: the routes the bridge serves for them, on its port.
		for _, p := range []struct {
			name  string
			probe *corev1.Probe
			path  string
		}{{"livenessProbe", c.LivenessProbe, "/healthz"}, {"readinessProbe", c.ReadinessProbe, "/readyz"}, {"startupProbe", c.StartupProbe, "/healthz"}} {
			if p.probe == nil && p.name == "startupProbe" {
				continue // optional
			}
			if p.probe == nil || p.probe.HTTPGet == nil {
				errorf("%s: no %s httpGet", where, p.name)
				continue
			}
			if p.probe.HTTPGet.Path != p.path {
				errorf("%s: %s path %q; want %s", where, p.name, p.probe.HTTPGet.Path, p.path)
			}
			if got, ok := containerPort(c, p.probe.HTTPGet.Port); !ok || got != bc.port {
				errorf("%s: %s port %s is %d; want the bridge's port %d", where, p.name, p.probe.HTTPGet.Port.String(), got, bc.port)
			}
		}

		// The grace period outlasts the shutdown: from SIGTERM the bridge
		// exits within shutdown_delay plus shutdown_timeout plus 5 s.
		delay, err := durationOf(cfg, "shutdown_delay", 0)
		if err != nil {
			errorf("%s: %v", where, err)
		}
		shutdown, err := durationOf(cfg, "shutdown_timeout", 30*time.Second)
		if err != nil {
			errorf("%s: %v", where, err)
		}
		// The kubelet counts a preStop hook's time in the grace period too
		// (none is shipped: shutdown_delay does its work).
		var preStop time.Duration
		preStopText := ""
		if l := c.Lifecycle; l != nil && l.PreStop != nil {
			if l.PreStop.Sleep == nil {
				errorf("%s: a preStop hook other than sleep: the image has no program to run", where)
			} else {
				preStop = time.Duration(l.PreStop.Sleep.Seconds) * time.Second
				preStopText = fmt.Sprintf("the preStop sleep %s plus ", preStop)
			}
		}
		bound := preStop + delay + shutdown + 5*time.Second
		if g := pod.Spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= bound {
			got := "unset"
			if g != nil {
				got = fmt.Sprint(*g)
			}
			errorf("%s: terminationGracePeriodSeconds %s; want more than %sshutdown_delay %s plus shutdown_timeout %s plus 5s (%s)", where, got, preStopText, delay, shutdown, bound)
		}
		// Behind a Service, the bridge goes on taking events until the
		// Service has dropped the Pod.
		if len(b.services) > 0 && delay <= 0 {
			errorf("%s: config shutdown_delay %s behind Service %s: want a few seconds, or posts are refused between SIGTERM and the Service dropping the Pod", where, delay, b.services[0].Name)
		}

		// Security context, the container's over the Pod's.
		checkSecurity(errorf, where, pod.Spec.SecurityContext, c.SecurityContext)

		// A pinned image: a tag other than latest, or a digest.
		if _, tag, ok := strings.Cut(c.Image[strings.LastIndex(c.Image, "/")+1:], ":"); !ok || tag == "latest" || tag == "" {
			errorf("%s: image %q: want a version tag or a digest, so that every replica and every rollback runs the same bridge", where, c.Image)
		}

		// Resources.
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if q, ok := c.Resources.Requests[r]; !ok || q.IsZero() {
				errorf("%s: no %s request", where, r)
			}
		}
		if q, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok || q.IsZero() {
			errorf("%s: no memory limit", where)
		}

		// Every ${NAME} of the configuration is in the container's environment.
		env := map[string]corev1.EnvVar{}
		for _, e := range c.Env {
			env[e.Name] = e
		}
		for _, m := range anyEnvRef.FindAllStringSubmatch(bc.configText, -1) {
			if _, ok := env[m[1]]; !ok && m[2] == "" {
				errorf("%s: config names ${%s}, which the container's environment does not set", where, m[1])
			}
		}
		if consumer, ok := cfg["consumer"]; ok {
			m := envRef.FindStringSubmatch(fmt.Sprint(consumer))
			if m == nil || env[m[1]].ValueFrom == nil || env[m[1]].ValueFrom.FieldRef == nil || env[m[1]].ValueFrom.FieldRef.FieldPath != "metadata.name" {
				errorf("%s: config consumer %v: want ${VAR} with VAR the Pod's name, so that each replica has its own", where, consumer)
			}
		}
		// Secrets come from the environment, never from the file.
		for path, v := range secretSettings(cfg) {
			s, _ := v.(string)
			if !envRef.MatchString(s) {
				errorf("%s: config %s is written in the ConfigMap; want ${NAME} from a Secret", where, path)
			}
		}
		// ... and every secretKeyRef names a key its Secret has.
		for _, e := range c.Env {
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				continue
			}
			ref := e.ValueFrom.SecretKeyRef
			s := findSecret(b, ref.Name)
			switch {
			case s == nil && secretsInBundle:
				errorf("%s: env %s reads Secret %s, which is not there", where, e.Name, ref.Name)
			case s != nil && !hasKey(s, ref.Key):
				errorf("%s: env %s reads key %q of Secret %s, which has only %v", where, e.Name, ref.Key, ref.Name, secretKeys(s))
			}
		}

		// Metrics annotations name the bridge's port and path.
		if a := pod.Annotations; a["prometheus.io/scrape"] != "" {
			if a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != fmt.Sprint(bc.port) || a["prometheus.io/path"] != "/metrics" {
				errorf("%s: prometheus.io annotations %q %q %q; want true, %d, /metrics", where, a["prometheus.io/scrape"], a["prometheus.io/port"], a["prometheus.io/path"], bc.port)
			}
		}

		// The Deployment's selector selects its Pods; so do the Service and the PDB.
		podLabels := labels.Set(pod.Labels)
		if sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err != nil || !sel.Matches(podLabels) {
			errorf("%s: the Deployment's selector does not select its Pods (%v)", where, err)
		}
		for _, s := range b.services {
			if !labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels) {
				errorf("%s: Service %s selects %v, not the Pods %v", where, s.Name, s.Spec.Selector, pod.Labels)
			}
			for _, sp := range s.Spec.Ports {
				if got, ok := containerPort(c, sp.TargetPort); !ok || got != bc.port {
					errorf("%s: Service %s port %s targets %s; want the bridge's port %d", where, s.Name, sp.Name, sp.TargetPort.String(), bc.port)
				}
			}
		}
		for _, p := range b.pdbs {
			sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
			if err != nil || sel.Empty() || !sel.Matches(podLabels) {
				errorf("%s: PodDisruptionBudget %s does not select the Pods (%v)", where, p.Name, err)
			}
			if (p.Spec.MinAvailable == nil) == (p.Spec.MaxUnavailable == nil) {
				errorf("%s: PodDisruptionBudget %s: want one of minAvailable and maxUnavailable", where, p.Name)
			}
		}
	}

	// A ServiceMonitor scrapes /metrics on a port of a Service it selects.
	for _, m := range b.monitors {
		sel, err := metav1.LabelSelectorAsSelector(&m.Spec.Selector)
		if err != nil || sel.Empty() {
			errorf("%s: ServiceMonitor %s: no selector (%v)", b.name, m.Name, err)
			continue
		}
		found := false
		for _, s := range b.services {
			if !sel.Matches(labels.Set(s.Labels)) {
				continue
			}
			found = true
			for _, ep := range m.Spec.Endpoints {
				if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) || ep.Path != "/metrics" {
					errorf("%s: ServiceMonitor %s scrapes port %q path %q; want a port of Service %s and /metrics", b.name, m.Name, ep.Port, ep.Path, s.Name)
				}
			}
		}
		if !found {
			errorf("%s: ServiceMonitor %s selects no Service", b.name, m.Name)
		}
	}

	// No value of a Secret is written in a ConfigMap.
	for _, s := range b.secrets {
		for key, v := range secretData(s) {
			for _, cm := range b.configMaps {
				for file, text := range cm.Data {
					if v != "" && strings.Contains(text, v) {
						errorf("%s: Secret %s key %s is written in ConfigMap %s (%s)", b.name, s.Name, key, cm.Name, file)
					}
				}
			}
		}
	}
	return out
}

func checkSecurity(errorf func(string, ...any), where string, pod *corev1.PodSecurityContext, c *corev1.SecurityContext) {
	if c == nil {
		errorf("%s: no securityContext", where)
		return
	}
	if pod == nil {
		pod = &corev1.PodSecurityContext{}
	}
	// The container's setting wins over the Pod's, as in the kubelet.
	pick := func(cv, pv *int64) *int64 {
		if cv != nil {
			return cv
		}
		return pv
	}
	nonRoot := c.RunAsNonRoot
	if nonRoot == nil {
		nonRoot = pod.RunAsNonRoot
	}
	seccomp := c.SeccompProfile
	if seccomp == nil {
		seccomp = pod.SeccompProfile
	}
	if nonRoot == nil || !*nonRoot {
		errorf("%s: runAsNonRoot is not true", where)
	}
	if u := pick(c.RunAsUser, pod.RunAsUser); u == nil || *u != 65532 {
		errorf("%s: runAsUser %v; want 65532, the image's user", where, u)
	}
	if g := pick(c.RunAsGroup, pod.RunAsGroup); g == nil || *g != 65532 {
		errorf("%s: runAsGroup %v; want 65532, the image's group", where, g)
	}
	if c.ReadOnlyRootFilesystem == nil || !*c.ReadOnlyRootFilesystem {
		errorf("%s: readOnlyRootFilesystem is not true", where)
	}
	if c.AllowPrivilegeEscalation == nil || *c.AllowPrivilegeEscalation {
		errorf("%s: allowPrivilegeEscalation is not false", where)
	}
	if c.Capabilities == nil || !slices.Equal(c.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(c.Capabilities.Add) > 0 {
		errorf("%s: capabilities %+v; want drop [ALL] and nothing added", where, c.Capabilities)
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		errorf("%s: seccompProfile %+v; want RuntimeDefault", where, seccomp)
	}
}

func findSecret(b *bundle, name string) *corev1.Secret {
	for _, s := range b.secrets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// secretData is a Secret's values, from data and stringData alike.
func secretData(s *corev1.Secret) map[string]string {
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	for k, v := range s.StringData {
		out[k] = v
	}
	return out
}

func hasKey(s *corev1.Secret, key string) bool {
	_, ok := secretData(s)[key]
	return ok
}

func secretKeys(s *corev1.Secret) []string {
	var keys []string
	for k := range secretData(s) {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
