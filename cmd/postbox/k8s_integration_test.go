//go:build integration

package main

import (
	"net/http"
	"slices"
	"testing"
)

// The Deployment's readiness probe, asked of a server-mode process: ready
// while ClickHouse is unreachable (events wait in the outbox, the replicas
// must stay in the Service), while plain /readyz still answers 503 naming
// clickhouse for monitoring.
func TestK8sReadinessProbeInServerMode(t *testing.T) {
	t.Parallel()
	objs, _ := loadK8s(t)
	d := k8sFind(t, objs, "Deployment", "postbox")
	probe := d.Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Path
	c := newCluster(t)
	c.chAddr = freeAddr(t) // nothing listens there
	srv := c.start("")
	resp, err := http.Get(srv.url(probe))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("readiness probe %s answers %d with only ClickHouse down, want 200", probe, resp.StatusCode)
	}
	code, r := ready(t, srv)
	if code != http.StatusServiceUnavailable || !slices.Equal(r.Down, []string{"clickhouse"}) {
		t.Fatalf("/readyz = %d %+v, want 503 naming clickhouse", code, r)
	}
}
