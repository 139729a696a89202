package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// k8sDir holds the multi-node manifests.
const k8sDir = "../../deploy/k8s"

// k8sObject is the part of a Kubernetes object the checks read.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Replicas    *int             `yaml:"replicas"`
		Selector    k8sSelector      `yaml:"selector"` // workloads and PDBs: matchLabels; Services: plain map
		MinAvail    *int             `yaml:"minAvailable"`
		MaxUnavail  *int             `yaml:"maxUnavailable"`
		Template    k8sPodTemplate   `yaml:"template"`
		Ports       []map[string]any `yaml:"ports"`
		ServiceName string           `yaml:"serviceName"`
	} `yaml:"spec"`
	file string
}

type k8sSelector struct {
	MatchLabels map[string]string
	Plain       map[string]string
}

func (s *k8sSelector) UnmarshalYAML(n *yaml.Node) error {
	var m map[string]any
	if err := n.Decode(&m); err != nil {
		return err
	}
	if ml, ok := m["matchLabels"]; ok {
		s.MatchLabels = map[string]string{}
		for k, v := range ml.(map[string]any) {
			s.MatchLabels[k] = fmt.Sprint(v)
		}
		return nil
	}
	s.Plain = map[string]string{}
	for k, v := range m {
		s.Plain[k] = fmt.Sprint(v)
	}
	return nil
}

type k8sPodTemplate struct {
	Metadata struct {
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		TerminationGrace *int           `yaml:"terminationGracePeriodSeconds"`
		InitContainers   []k8sContainer `yaml:"initContainers"`
		Containers       []k8sContainer `yaml:"containers"`
	} `yaml:"spec"`
}

type k8sContainer struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Args    []string `yaml:"args"`
	Command []string `yaml:"command"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	EnvFrom []struct {
		ConfigMapRef *struct{ Name string } `yaml:"configMapRef"`
		SecretRef    *struct{ Name string } `yaml:"secretRef"`
	} `yaml:"envFrom"`
	StartupProbe   *k8sProbe `yaml:"startupProbe"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	Lifecycle      struct {
		PreStop struct {
			Sleep struct {
				Seconds int `yaml:"seconds"`
			} `yaml:"sleep"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
	Exec *struct {
		Command []string `yaml:"command"`
	} `yaml:"exec"`
}

// loadK8s parses every manifest (all documents of every .yaml file) and
// fails on anything a YAML parser refuses or an object without kind/name.
func loadK8s(t *testing.T) ([]k8sObject, []string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", k8sDir, err)
	}
	var objs []k8sObject
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(false)
		for i := 0; ; i++ {
			var o k8sObject
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s document %d: %v", filepath.Base(f), i+1, err)
			}
			if o.APIVersion == "" || o.Kind == "" || (o.Metadata.Name == "" && o.Kind != "Kustomization") {
				t.Fatalf("%s document %d: apiVersion, kind and metadata.name are required: %+v", filepath.Base(f), i+1, o.Metadata)
			}
			o.file = filepath.Base(f)
			objs = append(objs, o)
		}
	}
	return objs, files
}

func k8sFind(t *testing.T, objs []k8sObject, kind, name string) k8sObject {
	t.Helper()
	for _, o := range objs {
		if o.Kind == kind && o.Metadata.Name == name {
			return o
		}
	}
	t.Fatalf("no %s %q in %s", kind, name, k8sDir)
	return k8sObject{}
}

func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// The manifests parse, kustomization lists them all, selectors of
// Services and PodDisruptionBudgets select pods that exist, PDBs leave
// room for a disruption, every container has requests and limits.
func TestK8sManifestsAreConsistent(t *testing.T) {
	objs, files := loadK8s(t)
	kust, err := os.ReadFile(filepath.Join(k8sDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !bytes.Contains(kust, []byte("- "+b)) {
			t.Errorf("kustomization.yaml does not list %s", b)
		}
	}
	type workload struct {
		name     string
		replicas int
		labels   map[string]string
	}
	var workloads []workload
	for _, o := range objs {
		if o.Kind != "Deployment" && o.Kind != "StatefulSet" {
			continue
		}
		if !subset(o.Spec.Selector.MatchLabels, o.Spec.Template.Metadata.Labels) {
			t.Errorf("%s %s: selector %v does not match its pod labels %v", o.Kind, o.Metadata.Name, o.Spec.Selector.MatchLabels, o.Spec.Template.Metadata.Labels)
		}
		n := 1
		if o.Spec.Replicas != nil {
			n = *o.Spec.Replicas
		}
		workloads = append(workloads, workload{o.Metadata.Name, n, o.Spec.Template.Metadata.Labels})
		for _, c := range o.Spec.Template.Spec.Containers {
			if c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" || c.Resources.Requests["cpu"] == "" {
				t.Errorf("%s %s container %s: cpu/memory requests and a memory limit are required", o.Kind, o.Metadata.Name, c.Name)
			}
			if c.ReadinessProbe == nil || c.LivenessProbe == nil {
				t.Errorf("%s %s container %s: readiness and liveness probes are required", o.Kind, o.Metadata.Name, c.Name)
			}
			if strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image, ":") {
				t.Errorf("%s %s container %s: image %q must be pinned", o.Kind, o.Metadata.Name, c.Name, c.Image)
			}
		}
	}
	selects := func(sel map[string]string) []workload {
		var out []workload
		for _, w := range workloads {
			if subset(sel, w.labels) {
				out = append(out, w)
			}
		}
		return out
	}
	for _, o := range objs {
		switch o.Kind {
		case "Service":
			if len(selects(o.Spec.Selector.Plain)) == 0 {
				t.Errorf("Service %s selects no pods: %v", o.Metadata.Name, o.Spec.Selector.Plain)
			}
		case "PodDisruptionBudget":
			ws := selects(o.Spec.Selector.MatchLabels)
			if len(ws) == 0 {
				t.Errorf("PodDisruptionBudget %s selects no pods", o.Metadata.Name)
				continue
			}
			total := 0
			for _, w := range ws {
				total += w.replicas
			}
			switch {
			case o.Spec.MinAvail != nil && *o.Spec.MinAvail >= total:
				t.Errorf("PodDisruptionBudget %s: minAvailable %d of %d pods blocks every drain", o.Metadata.Name, *o.Spec.MinAvail, total)
			case o.Spec.MaxUnavail != nil && *o.Spec.MaxUnavail < 1:
				t.Errorf("PodDisruptionBudget %s: maxUnavailable < 1 blocks every drain", o.Metadata.Name)
			case o.Spec.MinAvail == nil && o.Spec.MaxUnavail == nil:
				t.Errorf("PodDisruptionBudget %s sets no budget", o.Metadata.Name)
			}
		}
	}
}

// The postbox Deployment: its probes point at the real routes (asked of a
// running server), its settings are settings postbox knows and parse as a
// valid server-mode configuration, its port is the one it listens on, and
// a pod gets time for the graceful shutdown.
func TestK8sPostboxDeployment(t *testing.T) {
	objs, _ := loadK8s(t)
	d := k8sFind(t, objs, "Deployment", "postbox")
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		t.Errorf("postbox runs %v replicas; a multi-node install needs at least 2", d.Spec.Replicas)
	}
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("postbox pod has %d containers, want 1", len(d.Spec.Template.Spec.Containers))
	}
	c := d.Spec.Template.Spec.Containers[0]

	env := map[string]string{}
	known := map[string]bool{}
	for _, s := range settings() {
		known[s.env] = true
	}
	for _, ef := range c.EnvFrom {
		var o k8sObject
		switch {
		case ef.ConfigMapRef != nil:
			o = k8sFind(t, objs, "ConfigMap", ef.ConfigMapRef.Name)
		case ef.SecretRef != nil:
			o = k8sFind(t, objs, "Secret", ef.SecretRef.Name)
		}
		for k, v := range o.Data {
			env[k] = v
		}
		for k, v := range o.StringData {
			env[k] = v
		}
	}
	for k := range env {
		if !known[k] {
			t.Errorf("manifest sets %s, which postbox does not know", k)
		}
	}
	// Everything that would otherwise land in the pod's own data dir (an
	// emptyDir: lost with the pod, unseen by the other replicas).
	for _, k := range []string{"POSTBOX_DATABASE_URL", "POSTBOX_S3_ENDPOINT", "POSTBOX_S3_ACCESS_KEY", "POSTBOX_S3_SECRET_KEY",
		"POSTBOX_CLICKHOUSE_ADDR", "POSTBOX_SMTP_ADDR", "POSTBOX_SMS_GATEWAY_URL", "POSTBOX_SECRET_KEY", "POSTBOX_BASE_URL", "POSTBOX_LISTEN"} {
		if _, ok := env[k]; !ok {
			t.Errorf("manifest lacks %s: replicas would not share state", k)
		}
	}
	// With the secrets filled in, the configuration is valid server mode.
	filled := map[string]string{}
	for k, v := range env {
		filled[k] = v
	}
	filled["POSTBOX_SECRET_KEY"] = strings.Repeat("ab", 32)
	filled["POSTBOX_S3_ACCESS_KEY"], filled["POSTBOX_S3_SECRET_KEY"] = "postbox", "geheim-geheim"
	cfg, _, err := parseConfig("serve", nil, envFrom(filled), nil)
	if err != nil {
		t.Fatalf("the manifest's settings do not parse: %v", err)
	}
	_, port, _ := strings.Cut(cfg.Listen, ":")
	httpPort := 0
	for _, p := range c.Ports {
		if p.Name == "http" {
			httpPort = p.ContainerPort
		}
	}
	if strconv.Itoa(httpPort) != port {
		t.Errorf("containerPort http is %d, POSTBOX_LISTEN is %s", httpPort, cfg.Listen)
	}
	grace := d.Spec.Template.Spec.TerminationGrace
	if stop := cfg.ShutdownTimeout + time.Duration(c.Lifecycle.PreStop.Sleep.Seconds)*time.Second; grace == nil || time.Duration(*grace)*time.Second <= stop {
		t.Errorf("terminationGracePeriodSeconds %v must exceed the shutdown timeout plus the preStop pause (%v)", grace, stop)
	}

	// Probes: HTTP on the named port; asked of a running server.
	probes := map[string]*k8sProbe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe}
	for name, p := range probes {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Port != "http" {
			t.Fatalf("%s probe of postbox must be an httpGet on port http: %+v", name, p)
		}
	}
	if !strings.HasPrefix(c.ReadinessProbe.HTTPGet.Path, "/readyz") || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("readiness %q must be /readyz…, liveness %q /healthz", c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path)
	}
	r := startServe(t, nil, map[string]string{"POSTBOX_DATA_DIR": t.TempDir()})
	for name, p := range probes {
		path := p.HTTPGet.Path
		if name == "readiness" {
			// The embedded default has other checks than server mode; the
			// route itself must exist (k8s_integration_test asks the full
			// path of a server-mode process).
			path, _, _ = strings.Cut(path, "?")
		}
		resp, err := http.Get("http://" + r.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s probe %s answers %d on a healthy server", name, path, resp.StatusCode)
		}
	}
}

// The most replicas the autoscaler may start, each with its full
// PostgreSQL pool (storage/postgres), fit the primary's max_connections.
func TestK8sConnectionBudget(t *testing.T) {
	objs, _ := loadK8s(t)
	src, err := os.ReadFile("../../storage/postgres/postgres.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`SetMaxOpenConns\((\d+)\)`).FindSubmatch(src)
	if m == nil {
		t.Fatal("storage/postgres sets no SetMaxOpenConns")
	}
	pool, _ := strconv.Atoi(string(m[1]))
	var hpa struct {
		Spec struct {
			MaxReplicas int `yaml:"maxReplicas"`
		} `yaml:"spec"`
	}
	raw, err := os.ReadFile(filepath.Join(k8sDir, "postbox.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	for {
		var node yaml.Node
		if err := dec.Decode(&node); err != nil {
			break
		}
		var head struct{ Kind string }
		node.Decode(&head)
		if head.Kind == "HorizontalPodAutoscaler" {
			node.Decode(&hpa)
		}
	}
	primary := k8sFind(t, objs, "StatefulSet", "postgres-primary")
	mc := regexp.MustCompile(`max_connections=(\d+)`).FindStringSubmatch(strings.Join(primary.Spec.Template.Spec.Containers[0].Args, " "))
	if mc == nil || hpa.Spec.MaxReplicas == 0 {
		t.Fatalf("max_connections %v, HPA maxReplicas %d", mc, hpa.Spec.MaxReplicas)
	}
	maxConn, _ := strconv.Atoi(mc[1])
	if need := hpa.Spec.MaxReplicas*pool + 20; need > maxConn { // 20: standby, operators, migrations
		t.Errorf("%d replicas × %d connections + 20 = %d > max_connections %d", hpa.Spec.MaxReplicas, pool, need, maxConn)
	}
}

// MinIO runs distributed on 4 nodes, and its node list names exactly them.
func TestK8sMinIODistributed(t *testing.T) {
	objs, _ := loadK8s(t)
	s := k8sFind(t, objs, "StatefulSet", "minio")
	if s.Spec.Replicas == nil || *s.Spec.Replicas != 4 {
		t.Fatalf("minio replicas %v, want 4", s.Spec.Replicas)
	}
	args := strings.Join(s.Spec.Template.Spec.Containers[0].Args, " ")
	want := fmt.Sprintf("http://minio-{0...%d}.%s.", *s.Spec.Replicas-1, s.Spec.ServiceName)
	if !strings.Contains(args, want) {
		t.Errorf("minio args %q do not list the %d pods (%s…)", args, *s.Spec.Replicas, want)
	}
	k8sFind(t, objs, "PodDisruptionBudget", "minio")
}

// PostgreSQL has a primary and a standby that clones it and streams.
func TestK8sPostgresStandby(t *testing.T) {
	objs, _ := loadK8s(t)
	p := k8sFind(t, objs, "StatefulSet", "postgres-primary")
	if !strings.Contains(strings.Join(p.Spec.Template.Spec.Containers[0].Args, " "), "wal_level=replica") {
		t.Error("the primary does not run with wal_level=replica")
	}
	s := k8sFind(t, objs, "StatefulSet", "postgres-standby")
	init := s.Spec.Template.Spec.InitContainers
	if len(init) != 1 || !regexp.MustCompile(`pg_basebackup -h postgres-primary .*-R -X stream`).MatchString(strings.Join(init[0].Args, " ")) {
		t.Errorf("the standby does not clone the primary with pg_basebackup -R -X stream: %+v", init)
	}
	svc := k8sFind(t, objs, "Service", "postgres-primary")
	if svc.Spec.Selector.Plain["role"] != "primary" {
		t.Errorf("postgres-primary Service selects %v", svc.Spec.Selector.Plain)
	}
}

var (
	chCreate = regexp.MustCompile(`(?s)CREATE TABLE IF NOT EXISTS (?:\{db\}|postbox)\.(\w+)(?: ON CLUSTER postbox)? \((.*?)\) ENGINE = (\w+)(\([^)]*\))?\s*(.*?);`)
	chDrop   = regexp.MustCompile(`DROP TABLE IF EXISTS \{db\}\.(\w+)`)
	spaces   = regexp.MustCompile(`\s+`)
)

// The cluster schema in clickhouse.yaml creates every table postbox's
// migrations leave (and schema_migrations) as a Replicated* table ON
// CLUSTER, with the same columns, partitioning and sort key.
func TestK8sClickHouseSchemaMatchesMigrations(t *testing.T) {
	objs, _ := loadK8s(t)
	cm := k8sFind(t, objs, "ConfigMap", "clickhouse-config")
	cluster := cm.Data["schema-cluster.sql"]
	if cluster == "" {
		t.Fatal("clickhouse-config has no schema-cluster.sql")
	}
	norm := func(s string) string { return strings.TrimSpace(spaces.ReplaceAllString(s, " ")) }
	want := map[string][2]string{ // table -> columns, rest (partition/order)
		"schema_migrations": {"version UInt32, name String, applied_at DateTime('UTC')", "ORDER BY version"},
	}
	migs, err := filepath.Glob("../../storage/clickhouse/migrations/*.sql")
	if err != nil || len(migs) == 0 {
		t.Fatalf("no ClickHouse migrations: %v", err)
	}
	slices.Sort(migs)
	for _, f := range migs {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range chCreate.FindAllStringSubmatch(string(raw), -1) {
			want[m[1]] = [2]string{norm(m[2]), norm(m[5])}
		}
		for _, m := range chDrop.FindAllStringSubmatch(string(raw), -1) {
			delete(want, m[1])
		}
	}
	got := map[string]bool{}
	for _, m := range chCreate.FindAllStringSubmatch(cluster, -1) {
		table := m[1]
		got[table] = true
		w, ok := want[table]
		if !ok {
			t.Errorf("the cluster schema creates %s, which the migrations do not have", table)
			continue
		}
		if !strings.Contains(m[0], "ON CLUSTER postbox") || !strings.HasPrefix(m[3], "Replicated") {
			t.Errorf("%s: must be created ON CLUSTER with a Replicated engine, is %s", table, m[3])
		}
		if norm(m[2]) != w[0] {
			t.Errorf("%s columns differ from the migrations:\n cluster:    %s\n migrations: %s", table, norm(m[2]), w[0])
		}
		if norm(m[5]) != w[1] {
			t.Errorf("%s partitioning/sort key differ:\n cluster:    %s\n migrations: %s", table, norm(m[5]), w[1])
		}
	}
	for table := range want {
		if !got[table] {
			t.Errorf("the cluster schema lacks %s", table)
		}
	}
}
