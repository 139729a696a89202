//go:build integration

// Package tusclient tests postbox's upload endpoint from the outside: the
// real binary in server mode (PostgreSQL, MinIO) as a subprocess, an
// insured person logged in with a real Einmal-PIN (issued by
// "postbox pin issue", entered at POST /api/pin-login), and real clients:
// tus-js-client in node, and a small Go tus client where a test needs
// exact control over when a request is cut.
package tusclient

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
	"net"
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

	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"postbox/intake"
	"postbox/kasse"
	"postbox/storage/postgres"
	"postbox/storage/sqldb"
	"postbox/storage/storagetest"
)

// binPath is the postbox binary, built once for the package.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "postbox-tusclient-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "postbox")
	build := exec.Command("go", "build", "-o", binPath, "postbox/cmd/postbox")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build postbox: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is server mode on the shared services, with a bucket of its own.
type env struct {
	pgDSN, minioEndpoint, access, secret, bucket string
	secretKey                                    string
	dataDir                                      string
}

func newEnv(t testing.TB) *env {
	e := &env{
		pgDSN:         storagetest.FreshPostgres(t),
		minioEndpoint: storagetest.Service(t, "POSTBOX_TEST_MINIO_ENDPOINT"),
		access:        storagetest.Service(t, "POSTBOX_TEST_MINIO_ACCESS_KEY"),
		secret:        storagetest.Service(t, "POSTBOX_TEST_MINIO_SECRET_KEY"),
		bucket:        "postbox-e2e-" + randHex(6),
		secretKey:     randHex(32),
		dataDir:       t.TempDir(),
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := e.minio(t).RemoveBucketWithOptions(ctx, e.bucket, miniogo.RemoveBucketOptions{ForceDelete: true}); err != nil {
			t.Logf("remove bucket %s: %v", e.bucket, err)
		}
	})
	return e
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (e *env) minio(t testing.TB) *miniogo.Client {
	c, err := miniogo.New(e.minioEndpoint, &miniogo.Options{Creds: credentials.NewStaticV4(e.access, e.secret, "")})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// vars is the whole environment of a postbox process: nothing inherited,
// so the POSTBOX_* of the services file cannot leak in.
func (e *env) vars(listen string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir(),
		"POSTBOX_LISTEN=" + listen, "POSTBOX_BASE_URL=http://" + listen, "POSTBOX_DATA_DIR=" + e.dataDir,
		"POSTBOX_SECRET_KEY=" + e.secretKey, "POSTBOX_LOG_LEVEL=warn",
		"POSTBOX_DATABASE_URL=" + e.pgDSN,
		"POSTBOX_S3_ENDPOINT=" + e.minioEndpoint, "POSTBOX_S3_ACCESS_KEY=" + e.access,
		"POSTBOX_S3_SECRET_KEY=" + e.secret, "POSTBOX_S3_BUCKET=" + e.bucket,
	}
}

func (e *env) db(t testing.TB) *sqldb.Store {
	db, err := postgres.Open(context.Background(), e.pgDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// person creates a Kasse with its own insured person (so quotas of other
// runs do not count) and returns their ids.
func (e *env) person(t testing.TB, settings func(*kasse.Settings)) (kasseID, kvnr, personID string) {
	s := kasse.DefaultSettings()
	if settings != nil {
		settings(&s)
	}
	k := kasse.Kasse{ID: "e2e-" + randHex(6), Name: "E2E-Kasse", PortalURL: "http://portal.invalid", Settings: s}
	digits := fmt.Sprintf("%08d", mrandUint()%100000000)
	p := kasse.Person{ID: "p-" + randHex(8), TenantID: k.ID, KVNR: kasse.CompleteKVNR("E" + digits), GivenName: "Erika", FamilyName: "Mustermann"}
	err := e.db(t).InTx(context.Background(), func(tx *sqldb.Tx) error {
		if err := tx.CreateKasse(context.Background(), k); err != nil {
			return err
		}
		return tx.CreatePerson(context.Background(), p)
	})
	if err != nil {
		t.Fatal(err)
	}
	return k.ID, p.KVNR, p.ID
}

func mrandUint() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 | uint64(b[4])<<32
}

var pinLine = regexp.MustCompile(`(?m)^PIN: ([A-Z0-9-]+)$`)

// issuePIN runs "postbox pin issue" as a batch would and returns the PIN.
func (e *env) issuePIN(t testing.TB, kasseID, kvnr string) string {
	cmd := exec.Command(binPath, "pin", "issue", "--kasse", kasseID, "--kvnr", kvnr, "--type", "hilfsmittel",
		"--text", "Bitte senden Sie uns die ärztliche Verordnung.", "--out", filepath.Join(e.dataDir, "brief-"+randHex(4)+".pdf"), "--print-pin")
	cmd.Env = e.vars("127.0.0.1:1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pin issue: %v\n%s", err, out)
	}
	m := pinLine.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no PIN in the output of pin issue:\n%s", out)
	}
	return string(m[1])
}

// server is a running postbox process.
type server struct {
	*storagetest.Proc
	t    testing.TB
	addr string
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs "postbox serve" on addr and waits until it answers.
func (e *env) start(t testing.TB, addr string) *server {
	s := &server{t: t, addr: addr}
	s.Proc = storagetest.StartProc(t, filepath.Join(t.TempDir(), "postbox.log"), e.vars(addr), binPath, "serve")
	t.Cleanup(s.stop)
	s.WaitReady(t, "postbox on "+addr, 60*time.Second, func() bool { return storagetest.HTTPOK("http://" + addr + "/healthz") })
	return s
}

// kill ends the process with SIGKILL: no shutdown, no cleanup.
func (s *server) kill() { s.Kill() }

func (s *server) stop() { s.Stop(30 * time.Second) }

// peakRSS is the process's high-water mark of resident memory (VmHWM).
func (s *server) peakRSS() int64 {
	n, err := s.PeakRSS()
	if err != nil {
		s.t.Fatal(err)
	}
	return n
}

// resetPeakRSS starts a new high-water mark.
func (s *server) resetPeakRSS() {
	if err := s.ResetPeakRSS(); err != nil {
		s.t.Fatalf("reset peak RSS: %v", err)
	}
}

// login enters KVNR and PIN at the PIN login and returns the session cookie.
func login(t testing.TB, addr, kasseID, kvnr, pin string) string {
	body, _ := json.Marshal(map[string]string{"kasse": kasseID, "kvnr": kvnr, "pin": pin})
	resp, err := http.Post("http://"+addr+"/api/pin-login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("PIN login: %d %s", resp.StatusCode, b)
	}
	for _, c := range resp.Cookies() {
		if strings.HasSuffix(c.Name, "postbox_pin") {
			return c.Name + "=" + c.Value
		}
	}
	t.Fatal("PIN login set no session cookie")
	return ""
}

// client is a minimal tus client for tests that must cut requests at will.
type client struct {
	base, cookie string
	hc           *http.Client
}

func newClient(addr, cookie string) *client {
	return &client{base: "http://" + addr, cookie: cookie, hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
}

func (c *client) req(ctx context.Context, method, url string, body io.Reader, n int64, h map[string]string) (*http.Response, error) {
	if !strings.HasPrefix(url, "http") {
		url = c.base + url
	}
	r, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	r.ContentLength = n
	r.Header.Set("Tus-Resumable", intake.TusVersion)
	r.Header.Set("Cookie", c.cookie)
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return c.hc.Do(r)
}

// create returns the upload URL (a path).
func (c *client) create(t testing.TB, length int64, filename string) string {
	resp, err := c.req(context.Background(), "POST", "/api/uploads/", nil, 0, map[string]string{
		"Upload-Length": strconv.FormatInt(length, 10), "Upload-Metadata": "filename " + b64(filename)})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d", resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

// offset asks the server where to continue, waiting out a lock (423).
func (c *client) offset(t testing.TB, url string) int64 {
	resp, err := c.req(context.Background(), "HEAD", url, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD %s: %d", url, resp.StatusCode)
	}
	n, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// patch sends n bytes of body at off; it returns the status and the new offset.
func (c *client) patch(ctx context.Context, url string, off int64, body io.Reader, n int64) (int, int64, error) {
	resp, err := c.req(ctx, "PATCH", url, body, n, map[string]string{
		"Content-Type": "application/offset+octet-stream", "Upload-Offset": strconv.FormatInt(off, 10)})
	if err != nil {
		return 0, 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	newOff, _ := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	return resp.StatusCode, newOff, nil
}

// uploads lists the person's uploads as the upload page does.
func (c *client) uploads(t testing.TB) []struct {
	ID, Status, SHA256 string
	Size               int64
} {
	resp, err := c.req(context.Background(), "GET", "/api/uploads", nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Uploads []struct {
			ID, Status, SHA256 string
			Size               int64
		} `json:"uploads"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Uploads
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// storedSHA256 hashes the object of an upload straight from MinIO.
func (e *env) storedSHA256(t testing.TB, uploadURL string) (string, int64) {
	id := uploadURL[strings.LastIndexByte(uploadURL, '/')+1:]
	u, err := e.db(t).UploadByID(context.Background(), id)
	if err != nil {
		t.Fatalf("upload %s: %v", id, err)
	}
	obj, err := e.minio(t).GetObject(context.Background(), e.bucket, u.BlobKey, miniogo.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	h := sha256.New()
	n, err := io.Copy(h, obj)
	if err != nil {
		t.Fatalf("read object %s: %v", u.BlobKey, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

// testFile writes size bytes that start like a PDF and returns path and SHA-256.
func testFile(t testing.TB, size int64) (string, string) {
	path := filepath.Join(t.TempDir(), "befund.pdf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	w := io.MultiWriter(f, h)
	w.Write([]byte("%PDF-1.7\n"))
	if _, err := io.CopyN(w, rand.Reader, size-9); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path, hex.EncodeToString(h.Sum(nil))
}
