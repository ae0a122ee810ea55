package validate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/santhosh-tekuri/jsonschema/v6"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	kustypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/simlookup/simlookup/schemas"
)

// manifests is what one kustomization renders, decoded into typed objects.
type manifests struct {
	Namespaces      []corev1.Namespace
	ServiceAccounts []corev1.ServiceAccount
	ConfigMaps      []corev1.ConfigMap
	Secrets         []corev1.Secret
	Services        []corev1.Service
	Deployments     []appsv1.Deployment
	StatefulSets    []appsv1.StatefulSet
	Jobs            []batchv1.Job
	PDBs            []policyv1.PodDisruptionBudget
	ScaledObjects   []map[string]any
	PrometheusRules []monitoringv1.PrometheusRule
	ServiceMonitors []monitoringv1.ServiceMonitor
}

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// decodeObject decodes one YAML document strictly (unknown or duplicate
// fields are errors) into the Go type of its apiVersion and kind.
func decodeObject(t *testing.T, where string, doc []byte, m *manifests) {
	t.Helper()
	var tm typeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		t.Errorf("%s: %v", where, err)
		return
	}
	strict := func(v any) bool {
		if err := yaml.UnmarshalStrict(doc, v); err != nil {
			t.Errorf("%s: %s %s %q does not decode strictly: %v", where, tm.APIVersion, tm.Kind, tm.Metadata.Name, err)
			return false
		}
		return true
	}
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 Namespace":
		var o corev1.Namespace
		if strict(&o) {
			m.Namespaces = append(m.Namespaces, o)
		}
	case "v1 ServiceAccount":
		var o corev1.ServiceAccount
		if strict(&o) {
			m.ServiceAccounts = append(m.ServiceAccounts, o)
		}
	case "v1 ConfigMap":
		var o corev1.ConfigMap
		if strict(&o) {
			m.ConfigMaps = append(m.ConfigMaps, o)
		}
	case "v1 Secret":
		var o corev1.Secret
		if strict(&o) {
			m.Secrets = append(m.Secrets, o)
		}
	case "v1 Service":
		var o corev1.Service
		if strict(&o) {
			m.Services = append(m.Services, o)
		}
	case "apps/v1 Deployment":
		var o appsv1.Deployment
		if strict(&o) {
			m.Deployments = append(m.Deployments, o)
		}
	case "apps/v1 StatefulSet":
		var o appsv1.StatefulSet
		if strict(&o) {
			m.StatefulSets = append(m.StatefulSets, o)
		}
	case "batch/v1 Job":
		var o batchv1.Job
		if strict(&o) {
			m.Jobs = append(m.Jobs, o)
		}
	case "policy/v1 PodDisruptionBudget":
		var o policyv1.PodDisruptionBudget
		if strict(&o) {
			m.PDBs = append(m.PDBs, o)
		}
	case "keda.sh/v1alpha1 ScaledObject":
		var o map[string]any
		if err := yaml.Unmarshal(doc, &o); err != nil {
			t.Errorf("%s: %v", where, err)
			return
		}
		if err := kedaScaledObjectSchema(t).Validate(jsonRoundTrip(t, o)); err != nil {
			t.Errorf("%s: ScaledObject %q does not validate against KEDA's CRD schema: %v", where, tm.Metadata.Name, err)
			return
		}
		m.ScaledObjects = append(m.ScaledObjects, o)
	case "monitoring.coreos.com/v1 PrometheusRule":
		var o monitoringv1.PrometheusRule
		if strict(&o) {
			m.PrometheusRules = append(m.PrometheusRules, o)
		}
	case "monitoring.coreos.com/v1 ServiceMonitor":
		var o monitoringv1.ServiceMonitor
		if strict(&o) {
			m.ServiceMonitors = append(m.ServiceMonitors, o)
		}
	default:
		t.Errorf("%s: no validation for %s %s (add it to decodeObject)", where, tm.APIVersion, tm.Kind)
	}
}

func jsonRoundTrip(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// kedaScaledObjectSchema compiles the openAPIV3Schema of KEDA's ScaledObject
// CRD (testdata/crds), with additionalProperties: false added wherever the
// schema lists properties and does not preserve unknown fields, so that a
// misspelt field is an error (kubectl's strict field validation) rather
// than silently pruned.
func kedaScaledObjectSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "crds", "keda.sh_scaledobjects.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Group    string `json:"group"`
			Versions []struct {
				Name   string `json:"name"`
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(b, &crd); err != nil {
		t.Fatal(err)
	}
	for _, v := range crd.Spec.Versions {
		if v.Name != "v1alpha1" {
			continue
		}
		s := v.Schema.OpenAPIV3Schema
		closeObjects(s, true)
		c := jsonschema.NewCompiler()
		if err := c.AddResource("keda-scaledobject.json", jsonRoundTrip(t, s)); err != nil {
			t.Fatal(err)
		}
		sch, err := c.Compile("keda-scaledobject.json")
		if err != nil {
			t.Fatal(err)
		}
		return sch
	}
	t.Fatal("KEDA CRD has no v1alpha1 version")
	return nil
}

// closeObjects sets additionalProperties: false on object schemas that list
// their properties (the root's metadata stays open: Kubernetes validates it).
func closeObjects(s map[string]any, root bool) {
	props, hasProps := s["properties"].(map[string]any)
	_, preserve := s["x-kubernetes-preserve-unknown-fields"]
	_, additional := s["additionalProperties"]
	if hasProps && !preserve && !additional {
		s["additionalProperties"] = false
	}
	for name, p := range props {
		if ps, ok := p.(map[string]any); ok && !(root && name == "metadata") {
			closeObjects(ps, false)
		}
	}
	for _, key := range []string{"items", "additionalProperties"} {
		if ps, ok := s[key].(map[string]any); ok {
			closeObjects(ps, false)
		}
	}
	for _, key := range []string{"allOf", "anyOf", "oneOf"} {
		if list, ok := s[key].([]any); ok {
			for _, p := range list {
				if ps, ok := p.(map[string]any); ok {
					closeObjects(ps, false)
				}
			}
		}
	}
}

// kustomizeBuild renders a kustomization like `kubectl apply -k DIR` would,
// checks that it lists every YAML file of its folder, and decodes the result.
func kustomizeBuild(t *testing.T, rel string) *manifests {
	t.Helper()
	dir := filepath.Join(repoRoot(t), rel)
	var k kustypes.Kustomization
	if err := yaml.UnmarshalStrict(readFile(t, filepath.Join(rel, "kustomization.yaml")), &k); err != nil {
		t.Fatalf("%s/kustomization.yaml: %v", rel, err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		base := filepath.Base(f)
		if base != "kustomization.yaml" && !slices.Contains(k.Resources, base) {
			t.Errorf("%s/%s is not in kustomization.yaml's resources", rel, base)
		}
	}
	m := &manifests{}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range splitYAML(b) {
			decodeObject(t, fmt.Sprintf("%s/%s#%d", rel, filepath.Base(f), i), doc, &manifests{})
		}
	}
	kz := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := kz.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", rel, err)
	}
	for _, r := range res.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		decodeObject(t, "kustomize build "+rel+": "+r.CurId().String(), b, m)
		if ns := r.GetNamespace(); r.GetKind() != "Namespace" && ns != k.Namespace {
			t.Errorf("%s is in namespace %q, want %q", r.CurId(), ns, k.Namespace)
		}
	}
	return m
}

func byName[T any](t *testing.T, items []T, name string, get func(T) string) T {
	t.Helper()
	var names []string
	for _, it := range items {
		if get(it) == name {
			return it
		}
		names = append(names, get(it))
	}
	t.Fatalf("no %T named %q (have %v)", *new(T), name, names)
	return *new(T)
}

// checkPodSecurity: non-root, read-only root filesystem, no privilege
// escalation, no capabilities, RuntimeDefault seccomp, no service account token.
func checkPodSecurity(t *testing.T, what string, spec corev1.PodSpec) {
	t.Helper()
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod securityContext %+v: want runAsNonRoot, a non-zero runAsUser, seccomp RuntimeDefault", what, psc)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: automountServiceAccountToken should be false", what)
	}
	for _, c := range spec.Containers {
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, corev1.Capability("ALL")) {
			t.Errorf("%s/%s: container securityContext %+v: want readOnlyRootFilesystem, no privilege escalation, drop ALL", what, c.Name, sc)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s/%s: want cpu and memory requests and a memory limit, got %+v", what, c.Name, c.Resources)
		}
		if c.Image != "ghcr.io/simlookup/simlookup:latest" {
			t.Errorf("%s/%s: image %q; kustomization's images: should set it", what, c.Name, c.Image)
		}
	}
}

// containerEnv is every variable a container gets, with where it comes from.
func containerEnv(t *testing.T, m *manifests, c corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef != nil {
			cm := byName(t, m.ConfigMaps, from.ConfigMapRef.Name, func(o corev1.ConfigMap) string { return o.Name })
			for k, v := range cm.Data {
				env[k] = v
			}
		}
		if from.SecretRef != nil {
			t.Errorf("container %s: envFrom a Secret puts secrets in the environment; mount them as files", c.Name)
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s := byName(t, m.Secrets, ref.Name, func(o corev1.Secret) string { return o.Name })
			if _, ok := s.StringData[ref.Key]; !ok {
				t.Errorf("container %s: %s refers to missing key %s of Secret %s", c.Name, e.Name, ref.Key, ref.Name)
			}
			env[e.Name] = "(secret " + ref.Name + "/" + ref.Key + ")"
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm := byName(t, m.ConfigMaps, ref.Name, func(o corev1.ConfigMap) string { return o.Name })
			v, ok := cm.Data[ref.Key]
			if !ok {
				t.Errorf("container %s: %s refers to missing key %s of ConfigMap %s", c.Name, e.Name, ref.Key, ref.Name)
			}
			env[e.Name] = v
		default:
			env[e.Name] = "(from the pod)"
		}
	}
	for k, v := range env {
		if secretLike(k) {
			t.Errorf("container %s: %s=%s carries a secret in the environment", c.Name, k, v)
		}
	}
	return env
}

func envNames(env map[string]string) []string {
	var names []string
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func selects(t *testing.T, what string, sel map[string]string, podLabels map[string]string) {
	t.Helper()
	if len(sel) == 0 || !labels.SelectorFromSet(sel).Matches(labels.Set(podLabels)) {
		t.Errorf("%s: selector %v does not select pods labelled %v", what, sel, podLabels)
	}
}

// TestKubernetesManifests: deploy/kubernetes builds with kustomize, every
// object decodes strictly, and the pieces fit together.
func TestKubernetesManifests(t *testing.T) {
	m := kustomizeBuild(t, "deploy/kubernetes")

	// Worker Deployment.
	dep := byName(t, m.Deployments, "simlookup-worker", func(o appsv1.Deployment) string { return o.Name })
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas < 2 {
		t.Errorf("worker replicas %v, want several", dep.Spec.Replicas)
	}
	pod := dep.Spec.Template
	selects(t, "worker Deployment", dep.Spec.Selector.MatchLabels, pod.Labels)
	checkPodSecurity(t, "worker", pod.Spec)
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("worker: %d containers", len(pod.Spec.Containers))
	}
	wc := pod.Spec.Containers[0]
	if !slices.Equal(wc.Args, []string{"worker"}) {
		t.Errorf("worker args %v", wc.Args)
	}
	probe := func(what string, p *corev1.Probe, path string) {
		t.Helper()
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.String() != "metrics" {
			t.Errorf("%s: want an HTTP probe of %s on the metrics port, got %+v", what, path, p)
		}
	}
	probe("worker readiness", wc.ReadinessProbe, "/readyz")
	probe("worker liveness", wc.LivenessProbe, "/healthz")
	wenv := containerEnv(t, m, wc)
	if wenv["SIMLOOKUP_HTTP_ADDR"] != ":9090" || len(wc.Ports) != 1 || wc.Ports[0].ContainerPort != 9090 || wc.Ports[0].Name != "metrics" {
		t.Errorf("worker serves metrics on %q, ports %+v", wenv["SIMLOOKUP_HTTP_ADDR"], wc.Ports)
	}
	// The vendor secret arrives as a file from the Secret, mounted without subPath.
	secretFile := wenv["SIMLOOKUP_SECRET_FILE"]
	var mounted bool
	for _, vm := range wc.VolumeMounts {
		for _, v := range pod.Spec.Volumes {
			if v.Name != vm.Name || v.Secret == nil {
				continue
			}
			sec := byName(t, m.Secrets, v.Secret.SecretName, func(o corev1.Secret) string { return o.Name })
			for _, it := range v.Secret.Items {
				if filepath.Join(vm.MountPath, it.Path) == secretFile && vm.SubPath == "" && vm.ReadOnly {
					mounted = true
					if _, ok := sec.StringData[it.Key]; !ok {
						t.Errorf("the secret volume uses key %s, which Secret %s lacks", it.Key, sec.Name)
					}
				}
			}
		}
	}
	if secretFile == "" || !mounted {
		t.Errorf("worker: SIMLOOKUP_SECRET_FILE %q is not a read-only mount (without subPath) of the vendor Secret", secretFile)
	}
	if _, ok := wenv["SIMLOOKUP_APPKEY"]; !ok {
		t.Error("worker: no SIMLOOKUP_APPKEY")
	}
	for _, k := range []string{"SIMLOOKUP_NATS_URL", "SIMLOOKUP_API_URL", "SIMLOOKUP_RATE", "SIMLOOKUP_BURST", "SIMLOOKUP_LIMITER"} {
		if wenv[k] == "" {
			t.Errorf("worker: %s unset", k)
		}
	}

	// Secret: placeholders only.
	sec := byName(t, m.Secrets, "simlookup-vendor", func(o corev1.Secret) string { return o.Name })
	for k, v := range sec.StringData {
		if !strings.HasPrefix(v, "REPLACE_") {
			t.Errorf("Secret %s key %s holds %q; the committed example must hold placeholders only", sec.Name, k, v)
		}
	}
	if len(sec.Data) != 0 {
		t.Errorf("Secret %s has data; keep placeholders in stringData", sec.Name)
	}

	// PDB and metrics Service select the workers.
	pdb := byName(t, m.PDBs, "simlookup-worker", func(o policyv1.PodDisruptionBudget) string { return o.Name })
	selects(t, "worker PDB", pdb.Spec.Selector.MatchLabels, pod.Labels)
	if pdb.Spec.MaxUnavailable == nil && pdb.Spec.MinAvailable == nil {
		t.Error("worker PDB sets neither maxUnavailable nor minAvailable")
	}
	wsvc := byName(t, m.Services, "simlookup-worker-metrics", func(o corev1.Service) string { return o.Name })
	selects(t, "worker metrics Service", wsvc.Spec.Selector, pod.Labels)
	if len(wsvc.Spec.Ports) != 1 || wsvc.Spec.Ports[0].Name != "metrics" || wsvc.Spec.Ports[0].TargetPort.String() != "metrics" {
		t.Errorf("worker metrics Service ports %+v", wsvc.Spec.Ports)
	}

	// Sink: one instance, persistent volume, output on it.
	ss := byName(t, m.StatefulSets, "simlookup-sink", func(o appsv1.StatefulSet) string { return o.Name })
	if ss.Spec.Replicas == nil || *ss.Spec.Replicas != 1 {
		t.Errorf("sink replicas %v, want exactly 1 (one writer per folder)", ss.Spec.Replicas)
	}
	spod := ss.Spec.Template
	selects(t, "sink StatefulSet", ss.Spec.Selector.MatchLabels, spod.Labels)
	checkPodSecurity(t, "sink", spod.Spec)
	if spod.Spec.SecurityContext.FSGroup == nil {
		t.Error("sink: no fsGroup; the volume would not be writable by the non-root user")
	}
	sc := spod.Spec.Containers[0]
	if !slices.Equal(sc.Args, []string{"sink"}) {
		t.Errorf("sink args %v", sc.Args)
	}
	probe("sink readiness", sc.ReadinessProbe, "/readyz")
	probe("sink liveness", sc.LivenessProbe, "/healthz")
	senv := containerEnv(t, m, sc)
	if len(ss.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("sink: %d volumeClaimTemplates, want 1", len(ss.Spec.VolumeClaimTemplates))
	}
	pvc := ss.Spec.VolumeClaimTemplates[0]
	var outOnPVC bool
	for _, vm := range sc.VolumeMounts {
		if vm.Name == pvc.Name && strings.HasPrefix(senv["SIMLOOKUP_OUT"]+"/", vm.MountPath+"/") {
			outOnPVC = true
		}
	}
	if !outOnPVC || pvc.Spec.Resources.Requests.Storage().IsZero() || !slices.Contains(pvc.Spec.AccessModes, corev1.ReadWriteOnce) {
		t.Errorf("sink: SIMLOOKUP_OUT %q must be on the ReadWriteOnce claim %s (%+v)", senv["SIMLOOKUP_OUT"], pvc.Name, pvc.Spec)
	}
	ssvc := byName(t, m.Services, ss.Spec.ServiceName, func(o corev1.Service) string { return o.Name })
	selects(t, "sink Service", ssvc.Spec.Selector, spod.Labels)
	if ssvc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("sink governing Service should be headless")
	}

	// Streams Job.
	job := byName(t, m.Jobs, "simlookup-streams", func(o batchv1.Job) string { return o.Name })
	checkPodSecurity(t, "streams job", job.Spec.Template.Spec)
	jc := job.Spec.Template.Spec.Containers[0]
	if !slices.Equal(jc.Args, []string{"streams"}) {
		t.Errorf("streams job args %v", jc.Args)
	}
	jenv := containerEnv(t, m, jc)

	// Every process that provisions agrees on the streams and the consumer.
	for _, k := range []string{"SIMLOOKUP_NATS_URL", "SIMLOOKUP_REPLICAS", "SIMLOOKUP_REQUESTS_MAX_BYTES", "SIMLOOKUP_RESULTS_MAX_BYTES", "SIMLOOKUP_RESULTS_MAX_AGE", "SIMLOOKUP_DLQ_MAX_AGE", "SIMLOOKUP_ACK_WAIT"} {
		if jenv[k] == "" || jenv[k] != wenv[k] {
			t.Errorf("%s: streams job %q, worker %q: they must agree", k, jenv[k], wenv[k])
		}
	}
	if senv["SIMLOOKUP_NATS_URL"] != wenv["SIMLOOKUP_NATS_URL"] {
		t.Errorf("sink and workers use different NATS servers: %q, %q", senv["SIMLOOKUP_NATS_URL"], wenv["SIMLOOKUP_NATS_URL"])
	}

	// All pods run as the one ServiceAccount, which exists.
	for what, spec := range map[string]corev1.PodSpec{"worker": pod.Spec, "sink": spod.Spec, "streams job": job.Spec.Template.Spec} {
		byName(t, m.ServiceAccounts, spec.ServiceAccountName, func(o corev1.ServiceAccount) string { return o.Name })
		_ = what
	}

	// KEDA scales the worker Deployment on the worker consumer's backlog.
	if len(m.ScaledObjects) != 1 {
		t.Fatalf("%d ScaledObjects, want 1", len(m.ScaledObjects))
	}
	var so struct {
		Spec struct {
			ScaleTargetRef struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Name       string `json:"name"`
			} `json:"scaleTargetRef"`
			MinReplicaCount *int32 `json:"minReplicaCount"`
			MaxReplicaCount *int32 `json:"maxReplicaCount"`
			Triggers        []struct {
				Type     string            `json:"type"`
				Metadata map[string]string `json:"metadata"`
			} `json:"triggers"`
		} `json:"spec"`
	}
	b, _ := json.Marshal(m.ScaledObjects[0])
	if err := json.Unmarshal(b, &so); err != nil {
		t.Fatal(err)
	}
	if so.Spec.ScaleTargetRef.Kind != "Deployment" || so.Spec.ScaleTargetRef.Name != dep.Name {
		t.Errorf("ScaledObject targets %+v, want Deployment %s", so.Spec.ScaleTargetRef, dep.Name)
	}
	if so.Spec.MinReplicaCount == nil || so.Spec.MaxReplicaCount == nil || *so.Spec.MinReplicaCount < 1 || *so.Spec.MaxReplicaCount < *so.Spec.MinReplicaCount {
		t.Errorf("ScaledObject replicas min %v max %v", so.Spec.MinReplicaCount, so.Spec.MaxReplicaCount)
	}
	if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "nats-jetstream" {
		t.Fatalf("ScaledObject triggers %+v, want one nats-jetstream", so.Spec.Triggers)
	}
	md := so.Spec.Triggers[0].Metadata
	if md["stream"] != schemas.RequestStream || md["consumer"] != schemas.WorkerConsumer {
		t.Errorf("trigger watches %s/%s, want %s/%s", md["stream"], md["consumer"], schemas.RequestStream, schemas.WorkerConsumer)
	}
	// The scaler's required settings (KEDA pkg/scalers/nats_jetstream_scaler.go).
	if md["natsServerMonitoringEndpoint"] == "" || (md["account"] == "" && md["accountID"] == "") || md["lagThreshold"] == "" {
		t.Errorf("trigger metadata %v lacks natsServerMonitoringEndpoint, account or lagThreshold", md)
	}
	for k := range md {
		if !slices.Contains([]string{"natsServerMonitoringEndpoint", "account", "accountID", "stream", "consumer", "lagThreshold", "activationLagThreshold", "useHttps"}, k) {
			t.Errorf("trigger metadata %s is not a setting of KEDA's nats-jetstream scaler", k)
		}
	}
}

// TestKubernetesEnvIsCLI: every SIMLOOKUP_* variable a container gets is a
// flag (or environment-only setting) of its subcommand.
func TestKubernetesEnvIsCLI(t *testing.T) {
	m := kustomizeBuild(t, "deploy/kubernetes")
	check := func(what string, spec corev1.PodSpec) {
		for _, c := range spec.Containers {
			t.Run(what, func(t *testing.T) {
				checkEnv(t, "deploy/kubernetes "+what, c.Args[0], envNames(containerEnv(t, m, c)))
				checkArgs(t, "deploy/kubernetes "+what, c.Args)
			})
		}
	}
	for _, d := range m.Deployments {
		check(d.Name, d.Spec.Template.Spec)
	}
	for _, s := range m.StatefulSets {
		check(s.Name, s.Spec.Template.Spec)
	}
	for _, j := range m.Jobs {
		check(j.Name, j.Spec.Template.Spec)
	}

	// The streams the Job provisions are deploy/nats's definitions (the
	// manifests keep the defaults), and its settings parse.
	job := byName(t, m.Jobs, "simlookup-streams", func(o batchv1.Job) string { return o.Name })
	env := containerEnv(t, m, job.Spec.Template.Spec.Containers[0])
	stdout, stderr, code := runCLIEnv(t, env, "streams", "--dry-run")
	if code != 0 {
		t.Fatalf("simlookup streams --dry-run with the Job's environment exits %d: %s", code, stderr)
	}
	compareDryRun(t, "streams --dry-run with the streams Job's environment", stdout)
}

// TestPrometheusOperatorManifests: deploy/prometheus builds with kustomize
// and decodes into the Prometheus Operator's types; the ServiceMonitor
// scrapes the metrics ports of both Services of deploy/kubernetes.
func TestPrometheusOperatorManifests(t *testing.T) {
	pm := kustomizeBuild(t, "deploy/prometheus")
	km := kustomizeBuild(t, "deploy/kubernetes")
	if len(pm.PrometheusRules) != 1 || len(pm.ServiceMonitors) != 1 {
		t.Fatalf("deploy/prometheus renders %d PrometheusRules and %d ServiceMonitors, want 1 each", len(pm.PrometheusRules), len(pm.ServiceMonitors))
	}
	sm := pm.ServiceMonitors[0]
	var scraped []string
	for _, svc := range km.Services {
		if !labels.SelectorFromSet(sm.Spec.Selector.MatchLabels).Matches(labels.Set(svc.Labels)) {
			continue
		}
		for _, p := range svc.Spec.Ports {
			for _, ep := range sm.Spec.Endpoints {
				if ep.Port == p.Name {
					scraped = append(scraped, svc.Name)
				}
			}
		}
	}
	sort.Strings(scraped)
	if want := []string{"simlookup-sink", "simlookup-worker-metrics"}; !slices.Equal(scraped, want) {
		t.Errorf("the ServiceMonitor scrapes %v, want %v", scraped, want)
	}
}
