package storagetest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Private services: a test that stops or restarts a service (fault tests)
// starts its OWN instance, configured as deploy/start configures the shared
// one, on free loopback ports in a directory of its own. The shared services
// other tests use are never touched. Each helper's Stop kills the way a
// crash does (SIGKILL, or "pg_ctl -m immediate"); Start brings the same
// instance back on the same port with its data.

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// servicesDir is where deploy/install put maildev (and the services' data).
func servicesDir() string {
	if d := os.Getenv("POSTBOX_SERVICES_DIR"); d != "" {
		return d
	}
	return "/var/tmp/postbox-services"
}

// ---------------------------------------------------------------- MinIO

// PrivateMinIO is a MinIO server of one test, with SSE-S3 like the shared one.
type PrivateMinIO struct {
	t                              testing.TB
	Endpoint, AccessKey, SecretKey string
	dir, kms                       string
	p                              *Proc
}

// NewPrivateMinIO prepares (does not start) a MinIO on a free port.
func NewPrivateMinIO(t testing.TB) *PrivateMinIO {
	m := &PrivateMinIO{t: t, Endpoint: fmt.Sprintf("127.0.0.1:%d", FreePort(t)), AccessKey: "private-" + hexOf(4),
		SecretKey: hexOf(16), dir: t.TempDir()}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	m.kms = "private-key:" + base64.StdEncoding.EncodeToString(key)
	t.Cleanup(m.Stop)
	return m
}

func minioBinary(t testing.TB) string {
	if p, err := exec.LookPath("minio"); err == nil {
		return p
	}
	out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	bin := filepath.Join(lines[len(lines)-1], "bin", "minio")
	if lines[0] != "" && len(lines) == 2 {
		bin = filepath.Join(lines[0], "minio")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("minio binary %s missing: run ./deploy/install (%v)", bin, err)
	}
	return bin
}

// Start launches MinIO (again) on its port and data and waits until it is ready.
func (m *PrivateMinIO) Start() {
	m.t.Helper()
	log := filepath.Join(m.dir, "minio.log")
	env := append(os.Environ(), "MINIO_ROOT_USER="+m.AccessKey, "MINIO_ROOT_PASSWORD="+m.SecretKey,
		"MINIO_KMS_SECRET_KEY="+m.kms, "MINIO_UPDATE=off", "MINIO_BROWSER=off")
	m.p = StartProc(m.t, log, env, minioBinary(m.t), "server", filepath.Join(m.dir, "data"), "--address", m.Endpoint,
		"--console-address", fmt.Sprintf("127.0.0.1:%d", FreePort(m.t)))
	waitFor(m.t, "private minio", m.p, log, 60*time.Second, func() bool { return HTTPOK("http://" + m.Endpoint + "/minio/health/ready") })
}

// Stop kills MinIO (SIGKILL).
func (m *PrivateMinIO) Stop() { m.p.Kill(); m.p = nil }

// ----------------------------------------------------------- ClickHouse

// PrivateClickHouse is a ClickHouse server of one test, configured like deploy/start's.
type PrivateClickHouse struct {
	t         testing.TB
	Addr      string // native protocol host:port
	HTTP      string // http host:port
	dir       string
	p         *Proc
	tcp, http int
}

// NewPrivateClickHouse writes the config of a ClickHouse on free ports (not started).
func NewPrivateClickHouse(t testing.TB) *PrivateClickHouse {
	dir := t.TempDir()
	for _, d := range []string{"data", "tmp", "user_files", "format_schemas", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	c := &PrivateClickHouse{t: t, dir: dir, tcp: FreePort(t), http: FreePort(t)}
	c.Addr, c.HTTP = fmt.Sprintf("127.0.0.1:%d", c.tcp), fmt.Sprintf("127.0.0.1:%d", c.http)
	config := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>%[1]s/log/server.log</log><errorlog>%[1]s/log/server.err.log</errorlog></logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>%[2]d</tcp_port>
  <http_port>%[3]d</http_port>
  <path>%[1]s/data/</path>
  <tmp_path>%[1]s/tmp/</tmp_path>
  <user_files_path>%[1]s/user_files/</user_files_path>
  <format_schema_path>%[1]s/format_schemas/</format_schema_path>
  <mark_cache_size>536870912</mark_cache_size>
  <timezone>UTC</timezone>
  <users_config>%[1]s/users.xml</users_config>
</yandex>
`, dir, c.tcp, c.http)
	users := `<?xml version="1.0"?>
<yandex>
  <profiles><default><allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
`
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// Start launches the server and waits until the native port and /ping answer.
func (c *PrivateClickHouse) Start() {
	c.t.Helper()
	log := filepath.Join(c.dir, "stdout.log")
	c.p = StartProc(c.t, log, os.Environ(), "/usr/sbin/clickhouse-server", "--config-file="+filepath.Join(c.dir, "config.xml"))
	waitFor(c.t, "private clickhouse", c.p, filepath.Join(c.dir, "log", "server.err.log"), 60*time.Second, func() bool {
		conn, err := net.DialTimeout("tcp", c.Addr, time.Second)
		if err != nil {
			return false
		}
		conn.Close()
		return HTTPOK("http://" + c.HTTP + "/ping")
	})
}

// Stop kills the server (SIGKILL), as a crash would.
func (c *PrivateClickHouse) Stop() { c.p.Kill(); c.p = nil }

// Pause freezes the server (SIGSTOP to its process group), as a hung host
// does: open connections stay open, nothing answers. Resume thaws it.
func (c *PrivateClickHouse) Pause() { c.p.Signal(c.t, syscall.SIGSTOP) }

// Resume continues a paused server.
func (c *PrivateClickHouse) Resume() { c.p.Signal(c.t, syscall.SIGCONT) }

// -------------------------------------------------------------- maildev

// PrivateMaildev is an SMTP sink with a web API of one test.
type PrivateMaildev struct {
	t        testing.TB
	SMTPAddr string
	WebURL   string // http://host:port of the API
	dir      string
	p        *Proc
}

// NewPrivateMaildev picks the ports and a mail directory (not started).
func NewPrivateMaildev(t testing.TB) *PrivateMaildev {
	m := &PrivateMaildev{t: t, SMTPAddr: fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
		WebURL: fmt.Sprintf("http://127.0.0.1:%d", FreePort(t)), dir: t.TempDir()}
	t.Cleanup(m.Stop)
	return m
}

// Start launches maildev (keeping the mails it holds in its directory) and
// waits until its API answers.
func (m *PrivateMaildev) Start() {
	m.t.Helper()
	bin := filepath.Join(servicesDir(), "npm", "node_modules", ".bin", "maildev")
	if _, err := os.Stat(bin); err != nil {
		m.t.Fatalf("maildev binary %s missing: run ./deploy/install (%v)", bin, err)
	}
	_, smtpPort, _ := net.SplitHostPort(m.SMTPAddr)
	webPort := m.WebURL[strings.LastIndexByte(m.WebURL, ':')+1:]
	log := filepath.Join(m.dir, "maildev.log")
	m.p = StartProc(m.t, log, os.Environ(), bin, "--ip", "127.0.0.1", "-s", smtpPort, "--web-ip", "127.0.0.1", "-w", webPort,
		"--mail-directory", filepath.Join(m.dir, "mail"))
	waitFor(m.t, "private maildev", m.p, log, 60*time.Second, func() bool { return HTTPOK(m.WebURL + "/api/healthz") })
}

// Stop kills maildev.
func (m *PrivateMaildev) Stop() { m.p.Kill(); m.p = nil }

// ------------------------------------------------------------ PostgreSQL

const pgBin = "/usr/lib/postgresql/15/bin"

// PrivatePostgres is a PostgreSQL cluster of one test (initdb takes ≈ 3 s).
// initdb and pg_ctl refuse to run as root, so as root they run as the
// postgres user, in a directory it owns.
type PrivatePostgres struct {
	t    testing.TB
	DSN  string // superuser, database postgres
	Port int
	dir  string
}

// NewPrivatePostgres runs initdb and starts the server.
func NewPrivatePostgres(t testing.TB) *PrivatePostgres {
	t.Helper()
	if _, err := os.Stat(pgBin + "/initdb"); err != nil {
		t.Fatalf("%s/initdb missing: run ./deploy/install (%v)", pgBin, err)
	}
	dir, err := os.MkdirTemp("", "postbox-private-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p := &PrivatePostgres{t: t, Port: FreePort(t), dir: dir}
	t.Cleanup(func() {
		p.pgctl("stop", "-m", "immediate")
		os.RemoveAll(dir)
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("user postgres: %v (run ./deploy/install)", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := p.asPG(pgBin+"/initdb", "-D", filepath.Join(dir, "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8",
		"--locale=C.UTF-8").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	p.DSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.Port)
	p.Start()
	return p
}

func (p *PrivatePostgres) asPG(name string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	} else {
		cmd = exec.Command(name, args...)
	}
	cmd.Dir = "/"
	return cmd
}

func (p *PrivatePostgres) pgctl(args ...string) ([]byte, error) {
	base := []string{"-D", filepath.Join(p.dir, "data"), "-l", filepath.Join(p.dir, "server.log"), "-w", "-t", "60"}
	return p.asPG(pgBin+"/pg_ctl", append(base, args...)...).CombinedOutput()
}

// Start starts the server (again) on its port, as deploy/start does (no
// fsync: a test instance).
func (p *PrivatePostgres) Start() {
	p.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -h 127.0.0.1 -c fsync=off -c max_connections=100", p.Port, p.dir)
	if out, err := p.pgctl("-o", opts, "start"); err != nil {
		p.t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, tailFile(filepath.Join(p.dir, "server.log")))
	}
}

// Stop stops the server at once ("immediate": no checkpoint, clients cut
// off), as a crash of the database host would.
func (p *PrivatePostgres) Stop() {
	p.t.Helper()
	if out, err := p.pgctl("stop", "-m", "immediate"); err != nil {
		p.t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

// Pause freezes the server and all its backends with SIGSTOP, as a hung
// database host does: connections are still accepted by the kernel, but
// nothing answers and nothing is refused. Resume (SIGCONT) thaws them.
func (p *PrivatePostgres) Pause() { p.t.Helper(); p.signal(syscall.SIGSTOP) }

// Resume continues a paused server.
func (p *PrivatePostgres) Resume() { p.t.Helper(); p.signal(syscall.SIGCONT) }

// signal sends sig to the postmaster and every process it started.
func (p *PrivatePostgres) signal(sig syscall.Signal) {
	p.t.Helper()
	raw, err := os.ReadFile(filepath.Join(p.dir, "data", "postmaster.pid"))
	if err != nil {
		p.t.Fatalf("postmaster.pid: %v", err)
	}
	master, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(raw), "\n", 2)[0]))
	if err != nil {
		p.t.Fatalf("postmaster.pid: %v", err)
	}
	// The postmaster first: stopped, it starts no backend the scan misses.
	if err := syscall.Kill(master, sig); err != nil {
		p.t.Fatalf("signal %v to the postmaster: %v", sig, err)
	}
	var pids []int
	procs, _ := os.ReadDir("/proc")
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut after ')'.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(master) {
			pids = append(pids, pid)
		}
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, sig) // a backend may have ended meanwhile
	}
}

// CreateDatabase makes a database for the application and returns its DSN.
func (p *PrivatePostgres) CreateDatabase(name string) string {
	p.t.Helper()
	out, err := p.asPG(pgBin+"/psql", "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port), "-U", "postgres", "-qAtX",
		"-c", "CREATE DATABASE "+name).CombinedOutput()
	if err != nil {
		p.t.Fatalf("create database: %v\n%s", err, out)
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, name)
}

func hexOf(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
