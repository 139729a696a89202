package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/jackc/pgx/v5"
	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"postbox/storage/postgres"
	"postbox/storage/sqldb"
)

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// freshPostgres creates an empty database on the shared server for this
// step and drops it when the step ends.
func (r *run) freshPostgres(ctx context.Context) (string, error) {
	base := r.opts.Services.PostgresDSN
	c, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", fmt.Errorf("connect postgres: %w", err)
	}
	defer c.Close(ctx)
	name := "postbox_bench_" + randHex(5)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	r.defer_(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			r.logf("drop database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			r.logf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

// freshStore is a migrated sqldb.Store on a database of the step's own.
func (r *run) freshStore(ctx context.Context) (*sqldb.Store, error) {
	dsn, err := r.freshPostgres(ctx)
	if err != nil {
		return nil, err
	}
	db, err := postgres.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	r.defer_(func() { db.Close() })
	return db, nil
}

func chAdmin(addr string) (driver.Conn, error) {
	return ch.Open(&ch.Options{Addr: []string{addr}, Auth: ch.Auth{Username: "default"}, DialTimeout: 5 * time.Second})
}

// freshClickHouse names a ClickHouse database for this step (the store
// creates it) and drops it when the step ends.
func (r *run) freshClickHouse() string {
	name := "postbox_bench_" + randHex(5)
	r.defer_(func() {
		c, err := chAdmin(r.opts.Services.ClickHouseAddr)
		if err != nil {
			r.logf("drop clickhouse database %s: %v", name, err)
			return
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
			r.logf("drop clickhouse database %s: %v", name, err)
		}
	})
	return name
}

func (r *run) minio() (*miniogo.Client, error) {
	s := r.opts.Services
	return miniogo.New(s.MinIOEndpoint, &miniogo.Options{Creds: credentials.NewStaticV4(s.MinIOAccessKey, s.MinIOSecretKey, "")})
}

// freshBucket names a bucket for this step and removes it with all its
// objects (and versions) when the step ends. create: make it here
// (postbox makes its own bucket at start).
func (r *run) freshBucket(ctx context.Context, create bool) (string, error) {
	mc, err := r.minio()
	if err != nil {
		return "", err
	}
	name := "postbox-bench-" + randHex(5)
	if create {
		if err := mc.MakeBucket(ctx, name, miniogo.MakeBucketOptions{}); err != nil {
			return "", fmt.Errorf("make bucket: %w", err)
		}
	}
	r.defer_(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := mc.RemoveBucketWithOptions(ctx, name, miniogo.RemoveBucketOptions{ForceDelete: true}); err != nil {
			if resp := miniogo.ToErrorResponse(err); resp.Code != "NoSuchBucket" {
				r.logf("remove bucket %s: %v", name, err)
			}
		}
	})
	return name, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// proc is a server process this step started, in its own process group.
type proc struct {
	name string
	cmd  *exec.Cmd
	logs *tailBuffer
	done chan struct{}
}

// tailBuffer keeps the last 64 KiB a process wrote, for error messages.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 64<<10 {
		t.b = t.b[len(t.b)-64<<10:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// startProc runs the command with exactly env, waits until health answers
// 2xx (within a minute) and stops it when the step ends.
func (r *run) startProc(ctx context.Context, name string, env []string, health string, bin string, args ...string) (*proc, error) {
	p := &proc{name: name, logs: &tailBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	r.defer_(p.stop)
	deadline := time.Now().Add(time.Minute)
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", health, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 300 {
				return p, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited at start:\n%s", name, p.logs)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s did not answer on %s within a minute:\n%s", name, health, p.logs)
		}
	}
}

// stop ends the process group with SIGTERM, SIGKILL after 20 s.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// peakRSS is the process's high-water mark of resident memory (VmHWM), bytes.
func (p *proc) peakRSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", p.pid())
}

// resetPeakRSS starts a new high-water mark (Linux: clear_refs 5).
func (p *proc) resetPeakRSS() error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.pid()), []byte("5"), 0)
}

// baseEnv is what every child process gets: nothing of the caller's
// POSTBOX_* settings leaks in.
func baseEnv() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
}

// tempDir is a directory removed when the step ends.
func (r *run) tempDir() (string, error) {
	d, err := os.MkdirTemp("", "postbox-bench-")
	if err != nil {
		return "", err
	}
	r.defer_(func() { os.RemoveAll(d) })
	return d, nil
}
