//go:build integration

package main

// The harness of the fault and scale-out tests: the real postbox binary,
// built once for the package, runs as child processes in server mode
// against PostgreSQL, MinIO, ClickHouse and maildev — each test with a
// database, bucket and ClickHouse database of its own, so parallel tests
// and packages do not see each other. A process can be killed with
// SIGKILL (no shutdown, no cleanup) and started again on the same address.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"postbox/intake"
	"postbox/kasse"
	"postbox/storage/clickhouse"
	"postbox/storage/postgres"
	"postbox/storage/sqldb"
	"postbox/storage/storagetest"
)

var (
	binDir  string
	binOnce sync.Once
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "postbox-cmd-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// postboxBinary builds cmd/postbox once for the package (only tests that
// run child processes pay for it).
func postboxBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binPath = filepath.Join(binDir, "postbox")
		out, err := exec.Command("go", "build", "-o", binPath, "postbox/cmd/postbox").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build postbox: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func rndHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// cluster is one test's share of the services: what every postbox process
// of the test is configured with. Fields may be pointed at private
// instances before the first process starts.
type cluster struct {
	t                         *testing.T
	pgDSN                     string
	s3Endpoint, s3Key, s3Pass string
	bucket                    string
	chAddr, chDB              string
	smtpAddr, maildevURL      string
	secretKey                 string
	extra                     map[string]string // more POSTBOX_* settings
}

// newCluster gives the test a fresh PostgreSQL database, a bucket and a
// ClickHouse database of its own on the shared services, and the shared
// maildev. All are removed when the test ends.
func newCluster(t *testing.T) *cluster {
	c := &cluster{
		t:          t,
		pgDSN:      storagetest.FreshPostgres(t),
		s3Endpoint: storagetest.Service(t, "POSTBOX_TEST_MINIO_ENDPOINT"),
		s3Key:      storagetest.Service(t, "POSTBOX_TEST_MINIO_ACCESS_KEY"),
		s3Pass:     storagetest.Service(t, "POSTBOX_TEST_MINIO_SECRET_KEY"),
		bucket:     "postbox-fault-" + rndHex(6),
		chAddr:     storagetest.Service(t, "POSTBOX_TEST_CLICKHOUSE_ADDR"),
		chDB:       "postbox_fault_" + rndHex(6),
		smtpAddr:   storagetest.Service(t, "POSTBOX_TEST_SMTP_ADDR"),
		maildevURL: storagetest.Service(t, "POSTBOX_TEST_MAILDEV_URL"),
		secretKey:  rndHex(32),
		extra: map[string]string{
			"POSTBOX_EVENT_SHIP_INTERVAL": "200ms",
			"POSTBOX_MAIL_RETRY_BASE":     "1s",
			"POSTBOX_MAIL_RETRY_MAX":      "2s",
		},
	}
	sharedCH := c.chAddr
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if mc, err := c.minio(); err == nil {
			if err := mc.RemoveBucketWithOptions(ctx, c.bucket, miniogo.RemoveBucketOptions{ForceDelete: true}); err != nil {
				t.Logf("remove bucket %s: %v", c.bucket, err)
			}
		}
		if c.chAddr != sharedCH {
			return // a private or dead ClickHouse: nothing left to drop
		}
		if conn, err := chgo.Open(&chgo.Options{Addr: []string{c.chAddr}}); err == nil {
			if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+c.chDB); err != nil {
				t.Logf("drop clickhouse database %s: %v", c.chDB, err)
			}
			conn.Close()
		}
	})
	return c
}

func (c *cluster) minio() (*miniogo.Client, error) {
	return miniogo.New(c.s3Endpoint, &miniogo.Options{Creds: credentials.NewStaticV4(c.s3Key, c.s3Pass, "")})
}

// env is the whole environment of a postbox process: nothing inherited, so
// the POSTBOX_* of the services file cannot leak in.
func (c *cluster) env(listen, dataDir string) []string {
	vars := map[string]string{
		"POSTBOX_LISTEN": listen, "POSTBOX_BASE_URL": "http://" + listen, "POSTBOX_DATA_DIR": dataDir,
		"POSTBOX_SECRET_KEY": c.secretKey, "POSTBOX_LOG_LEVEL": "warn",
		"POSTBOX_DATABASE_URL": c.pgDSN,
		"POSTBOX_S3_ENDPOINT":  c.s3Endpoint, "POSTBOX_S3_ACCESS_KEY": c.s3Key, "POSTBOX_S3_SECRET_KEY": c.s3Pass,
		"POSTBOX_S3_BUCKET":       c.bucket,
		"POSTBOX_CLICKHOUSE_ADDR": c.chAddr, "POSTBOX_CLICKHOUSE_DATABASE": c.chDB,
		"POSTBOX_SMTP_ADDR": c.smtpAddr,
	}
	for k, v := range c.extra {
		vars[k] = v
	}
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	return out
}

var dbOnce sync.Map // *cluster -> *sqldb.Store

// db is the test's own connection to the cluster's database, as an
// operator's psql would be (opening it also applies the migrations).
func (c *cluster) db() *sqldb.Store {
	if s, ok := dbOnce.Load(c); ok {
		return s.(*sqldb.Store)
	}
	db, err := postgres.Open(context.Background(), c.pgDSN)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { db.Close(); dbOnce.Delete(c) })
	dbOnce.Store(c, db)
	return db
}

// reconnect drops the test's own connections, e.g. after the database was
// restarted under them (each idle connection would fail once).
func (c *cluster) reconnect() {
	if s, ok := dbOnce.LoadAndDelete(c); ok {
		s.(*sqldb.Store).Close()
	}
}

// events opens the cluster's ClickHouse database for reading.
func (c *cluster) events() *clickhouse.Store {
	s, err := clickhouse.Open(context.Background(), c.chAddr, c.chDB, clickhouse.WithDialTimeout(5*time.Second))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { s.Close() })
	return s
}

// pbProc is one running postbox process.
type pbProc struct {
	*storagetest.Proc
	addr    string
	dataDir string
}

// start runs "postbox serve [args]" on addr (a fresh free one if empty)
// and waits until /healthz answers.
func (c *cluster) start(addr string, args ...string) *pbProc {
	c.t.Helper()
	if addr == "" {
		addr = freeAddr(c.t)
	}
	p := &pbProc{addr: addr, dataDir: c.t.TempDir()}
	p.Proc = storagetest.StartProc(c.t, filepath.Join(c.t.TempDir(), "postbox.log"), c.env(addr, p.dataDir),
		postboxBinary(c.t), append([]string{"serve"}, args...)...)
	c.t.Cleanup(func() {
		p.stop()
		if c.t.Failed() {
			c.t.Logf("log of postbox on %s:\n%s", p.addr, storagetest.Tail(p.Logs(), 4000))
		}
	})
	p.WaitReady(c.t, "postbox on "+addr, 90*time.Second, func() bool { return storagetest.HTTPOK(p.url("/healthz")) })
	return p
}

func (p *pbProc) url(path string) string { return "http://" + p.addr + path }

// kill ends the process with SIGKILL: no shutdown, no cleanup.
func (p *pbProc) kill() { p.Kill() }

func (p *pbProc) stop() { p.Stop(40 * time.Second) }

// person is an insured person of a Kasse of the test's own.
type person struct {
	kasseID, kvnr, id, email string
}

// newPerson creates a Kasse with one insured person who wants online
// delivery (so a submission queues a notification mail).
func (c *cluster) newPerson(settings func(*kasse.Settings)) person {
	c.t.Helper()
	s := kasse.DefaultSettings()
	if settings != nil {
		settings(&s)
	}
	k := kasse.Kasse{ID: "f-" + rndHex(6), Name: "Fehlertest-Kasse", PortalURL: "http://portal.invalid", Settings: s}
	var d [4]byte
	rand.Read(d[:])
	digits := fmt.Sprintf("%08d", (uint32(d[0])|uint32(d[1])<<8|uint32(d[2])<<16|uint32(d[3])<<24)%100000000)
	p := kasse.Person{ID: "p-" + rndHex(8), TenantID: k.ID, KVNR: kasse.CompleteKVNR("F" + digits), GivenName: "Erika",
		FamilyName: "Mustermann", Email: "erika-" + rndHex(6) + "@example.org", Delivery: kasse.DeliveryOnline}
	err := c.db().InTx(context.Background(), func(tx *sqldb.Tx) error {
		if err := tx.CreateKasse(context.Background(), k); err != nil {
			return err
		}
		return tx.CreatePerson(context.Background(), p)
	})
	if err != nil {
		c.t.Fatal(err)
	}
	return person{kasseID: k.ID, kvnr: p.KVNR, id: p.ID, email: p.Email}
}

var issuedPIN = regexp.MustCompile(`(?m)^PIN: ([A-Z0-9-]+)$`)

// issuePIN runs "postbox pin issue" as a batch would and returns the PIN.
func (c *cluster) issuePIN(p person) string {
	c.t.Helper()
	dir := c.t.TempDir()
	cmd := exec.Command(postboxBinary(c.t), "pin", "issue", "--kasse", p.kasseID, "--kvnr", p.kvnr, "--type", "hilfsmittel",
		"--text", "Bitte senden Sie uns die ärztliche Verordnung.", "--out", filepath.Join(dir, "brief.pdf"), "--print-pin")
	cmd.Env = c.env("127.0.0.1:1", dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.t.Fatalf("pin issue: %v\n%s", err, out)
	}
	m := issuedPIN.FindSubmatch(out)
	if m == nil {
		c.t.Fatalf("no PIN in the output of pin issue:\n%s", out)
	}
	return string(m[1])
}

// pinClient is an insured person logged in with an Einmal-PIN; base may be
// switched between instances (the session lives in the database).
type pinClient struct {
	t            *testing.T
	cookie, csrf string
	hc           *http.Client
}

func (c *cluster) login(p person, on *pbProc) *pinClient {
	c.t.Helper()
	pin := c.issuePIN(p)
	body, _ := json.Marshal(map[string]string{"kasse": p.kasseID, "kvnr": p.kvnr, "pin": pin})
	resp, err := http.Post(on.url("/api/pin-login"), "application/json", bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("PIN login: %d %s", resp.StatusCode, raw)
	}
	var out struct {
		CSRF string `json:"csrf_token"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		c.t.Fatal(err)
	}
	pc := &pinClient{t: c.t, csrf: out.CSRF, hc: &http.Client{Timeout: 5 * time.Minute}}
	for _, ck := range resp.Cookies() {
		if strings.HasSuffix(ck.Name, "postbox_pin") {
			pc.cookie = ck.Name + "=" + ck.Value
		}
	}
	if pc.cookie == "" || pc.csrf == "" {
		c.t.Fatal("PIN login set no session cookie or CSRF token")
	}
	return pc
}

// answer is a response read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("answer %d %q: %v", a.status, a.body, err)
	}
}

// problem is a problem+json answer.
type problemBody struct {
	Type, Title, Detail string
	Status              int
}

func (a answer) problem(t *testing.T) problemBody {
	t.Helper()
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("answer %d is %q, want problem+json: %s", a.status, ct, a.body)
	}
	var p problemBody
	a.json(t, &p)
	return p
}

// do sends one request with the session cookie and CSRF token; body may be
// a []byte, an io.Reader (then n is its length) or a value sent as JSON.
func (pc *pinClient) do(ctx context.Context, method, url string, body any, n int64, header map[string]string) (answer, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r, n = bytes.NewReader(b), int64(len(b))
	case io.Reader:
		r = b
	default:
		raw, _ := json.Marshal(b)
		r, n = bytes.NewReader(raw), int64(len(raw))
		if header == nil {
			header = map[string]string{}
		}
		header["Content-Type"] = "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return answer{}, err
	}
	if r != nil {
		req.ContentLength = n
	}
	req.Header.Set("Cookie", pc.cookie)
	req.Header.Set("X-CSRF-Token", pc.csrf)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := pc.hc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: raw}, err
}

func (pc *pinClient) must(method, url string, body any, want int) answer {
	pc.t.Helper()
	a, err := pc.do(context.Background(), method, url, body, 0, nil)
	if err != nil {
		pc.t.Fatalf("%s %s: %v", method, url, err)
	}
	if a.status != want {
		pc.t.Fatalf("%s %s: %d, want %d: %s", method, url, a.status, want, a.body)
	}
	return a
}

func tusHeader(h map[string]string) map[string]string {
	out := map[string]string{"Tus-Resumable": intake.TusVersion}
	for k, v := range h {
		out[k] = v
	}
	return out
}

// create starts a tus upload on p and returns its path.
func (pc *pinClient) create(on *pbProc, length int64, filename string) string {
	pc.t.Helper()
	a, err := pc.do(context.Background(), "POST", on.url("/api/uploads/"), nil, 0, tusHeader(map[string]string{
		"Upload-Length": strconv.FormatInt(length, 10), "Upload-Metadata": "filename " + base64.StdEncoding.EncodeToString([]byte(filename))}))
	if err != nil || a.status != http.StatusCreated {
		pc.t.Fatalf("create upload: %d %v %s", a.status, err, a.body)
	}
	return a.header.Get("Location")
}

// patch sends body (n bytes) at off; it returns the answer (its
// Upload-Offset header is the new offset).
func (pc *pinClient) patch(ctx context.Context, on *pbProc, path string, off int64, body io.Reader, n int64) (answer, error) {
	return pc.do(ctx, "PATCH", on.url(path), body, n, tusHeader(map[string]string{
		"Content-Type": "application/offset+octet-stream", "Upload-Offset": strconv.FormatInt(off, 10)}))
}

// offset asks on where to continue.
func (pc *pinClient) offset(on *pbProc, path string) int64 {
	pc.t.Helper()
	a, err := pc.do(context.Background(), "HEAD", on.url(path), nil, 0, tusHeader(nil))
	if err != nil || a.status != http.StatusOK {
		pc.t.Fatalf("HEAD %s: %d %v", path, a.status, err)
	}
	n, err := strconv.ParseInt(a.header.Get("Upload-Offset"), 10, 64)
	if err != nil {
		pc.t.Fatalf("HEAD %s: Upload-Offset %q", path, a.header.Get("Upload-Offset"))
	}
	return n
}

// pdf returns size bytes that start like a PDF, and their SHA-256.
func pdf(size int) ([]byte, string) {
	b := make([]byte, size)
	rand.Read(b)
	copy(b, "%PDF-1.7\n")
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

// storedSHA256 hashes an upload's object straight from the bucket.
func (c *cluster) storedSHA256(path string) (string, int64) {
	c.t.Helper()
	id := path[strings.LastIndexByte(path, '/')+1:]
	u, err := c.db().UploadByID(context.Background(), id)
	if err != nil {
		c.t.Fatalf("upload %s: %v", id, err)
	}
	mc, err := c.minio()
	if err != nil {
		c.t.Fatal(err)
	}
	obj, err := mc.GetObject(context.Background(), c.bucket, u.BlobKey, miniogo.GetObjectOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	defer obj.Close()
	h := sha256.New()
	n, err := io.Copy(h, obj)
	if err != nil {
		c.t.Fatalf("read object of upload %s: %v", id, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

// eventually polls cond every 100 ms until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
