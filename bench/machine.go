package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Machine describes where a run happened: the numbers mean little without it.
type Machine struct {
	CPU        string
	Cores      int
	MemoryGiB  float64
	LoadBefore [3]float64
	Versions   [][2]string // name, version
}

func describeMachine(ctx context.Context, s Services) Machine {
	m := Machine{CPU: cpuModel(), Cores: runtime.NumCPU(), MemoryGiB: memTotalGiB(), LoadBefore: loadAverage()}
	add := func(name, v string) {
		if v == "" {
			v = "unknown"
		}
		m.Versions = append(m.Versions, [2]string{name, v})
	}
	rev := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, kv := range bi.Settings {
			if kv.Key == "vcs.revision" && len(kv.Value) >= 12 {
				rev = kv.Value[:12]
			}
			if kv.Key == "vcs.modified" && kv.Value == "true" && rev != "" {
				rev += " (modified)"
			}
		}
	}
	if rev == "" { // built without VCS stamping (go run, a test binary)
		rev = commandOutput("git", "rev-parse", "--short=12", "HEAD")
	}
	add("postbox", rev)
	add("Go", runtime.Version())
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if c, err := pgx.Connect(ctx, s.PostgresDSN); err == nil {
		var v, fsync, sc string
		_ = c.QueryRow(ctx, "SHOW server_version").Scan(&v)
		// The test instance runs without fsync: commits are cheaper than
		// on a production server, which matters for every figure with a
		// transaction in it.
		_ = c.QueryRow(ctx, "SHOW fsync").Scan(&fsync)
		_ = c.QueryRow(ctx, "SHOW synchronous_commit").Scan(&sc)
		add("PostgreSQL", fmt.Sprintf("%s (fsync=%s, synchronous_commit=%s)", v, fsync, sc))
		c.Close(ctx)
	} else {
		add("PostgreSQL", "")
	}
	if c, err := chAdmin(s.ClickHouseAddr); err == nil {
		if v, err := c.ServerVersion(); err == nil {
			add("ClickHouse", fmt.Sprintf("%d.%d.%d", v.Version.Major, v.Version.Minor, v.Version.Patch))
		} else {
			add("ClickHouse", "")
		}
		c.Close()
	} else {
		add("ClickHouse", "")
	}
	add("MinIO", minioVersion())
	add("Node.js", commandOutput("node", "--version"))
	npm := filepath.Join(s.ServicesDir, "npm", "node_modules")
	add("maildev", npmVersion(npm, "maildev"))
	add("@tus/server (peer)", npmVersion(npm, "@tus/server"))
	add("@tus/s3-store (peer)", npmVersion(npm, "@tus/s3-store"))
	return m
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func memTotalGiB() float64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / (1 << 20)
		}
	}
	return 0
}

// loadAverage is the 1, 5 and 15 minute load average.
func loadAverage() [3]float64 {
	var l [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	f := strings.Fields(string(b))
	for i := 0; i < 3 && i < len(f); i++ {
		l[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return l
}

func commandOutput(name string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}

// minioVersion reads the module version of the binary deploy/install
// built (GOBIN or GOPATH/bin): a go-installed MinIO calls itself
// DEVELOPMENT.GOGET.
func minioVersion() string {
	bin := "minio"
	if gobin := commandOutput("go", "env", "GOBIN"); gobin != "" {
		bin = filepath.Join(gobin, "minio")
	} else if gopath := commandOutput("go", "env", "GOPATH"); gopath != "" {
		bin = filepath.Join(gopath, "bin", "minio")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "version", "-m", bin).Output()
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == "mod" && f[1] == "github.com/minio/minio" {
			return f[2]
		}
	}
	return ""
}

func npmVersion(nodeModules, pkg string) string {
	b, err := os.ReadFile(filepath.Join(nodeModules, pkg, "package.json"))
	if err != nil {
		return ""
	}
	var p struct {
		Version string `json:"version"`
	}
	_ = json.Unmarshal(b, &p)
	return p.Version
}
