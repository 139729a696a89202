package web

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"postbox/auth"
	"postbox/intake"
	"postbox/kasse"
	"postbox/storage/sqldb"
)

// tusBackend is one storage setup the protocol cases run on.
type tusBackend struct {
	DB    *sqldb.Store
	Blobs intake.BlobStore
	// Reopen returns new store instances over the same database and blob
	// storage, as a restarted replica (or another one) has them.
	Reopen func(t *testing.T) (*sqldb.Store, intake.BlobStore)
}

type tusBackendFactory func(t *testing.T) tusBackend

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// tusFixture is a server with the tus endpoint, a tenant with two insured
// persons, and a person of another tenant.
type tusFixture struct {
	t       *testing.T
	be      tusBackend
	db      *sqldb.Store
	blobs   intake.BlobStore
	h       *intake.TusHandler
	srv     *Server
	clock   *testClock
	cfg     intake.TusConfig
	kasse   kasse.Kasse
	erika   kasse.Person
	max     kasse.Person
	foreign kasse.Person
	people  map[string]auth.Principal
}

type fixtureOption func(cfg *intake.TusConfig, s *kasse.Settings)

func withScanner(s intake.Scanner) fixtureOption {
	return func(cfg *intake.TusConfig, _ *kasse.Settings) { cfg.Scanner = s }
}

// withLifetime shortens how long unfinished uploads live, so an expiry
// test does not expire the rows of other tests in a shared database.
func withLifetime(d time.Duration) fixtureOption {
	return func(cfg *intake.TusConfig, _ *kasse.Settings) { cfg.Lifetime = d }
}

func withSettings(fn func(s *kasse.Settings)) fixtureOption {
	return func(_ *intake.TusConfig, s *kasse.Settings) { fn(s) }
}

func withBlobs(wrap func(intake.BlobStore) intake.BlobStore) fixtureOption {
	return func(cfg *intake.TusConfig, _ *kasse.Settings) { cfg.Blobs = wrap(cfg.Blobs) }
}

// testLogger is quiet unless POSTBOX_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("POSTBOX_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewJSONHandler(io.Discard, nil))
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func newTusFixture(t *testing.T, factory tusBackendFactory, opts ...fixtureOption) *tusFixture {
	t.Helper()
	be := factory(t)
	f := &tusFixture{t: t, be: be, clock: &testClock{now: time.Now().UTC().Truncate(time.Second)}, people: map[string]auth.Principal{}}
	settings := kasse.DefaultSettings()
	probe := intake.TusConfig{}
	for _, o := range opts {
		o(&probe, &settings)
	}
	f.kasse = kasse.Kasse{ID: "tus-" + randHex(5), Name: "Test-BKK", PortalURL: "https://portal.invalid", Settings: settings}
	other := kasse.Kasse{ID: "tus-" + randHex(5), Name: "Andere Kasse", PortalURL: "https://andere.invalid", Settings: kasse.DefaultSettings()}
	person := func(tenant, given string) kasse.Person {
		return kasse.Person{ID: "p-" + randHex(8), TenantID: tenant, KVNR: kasse.CompleteKVNR("A" + strconv.Itoa(10000000+mrand.IntN(89999999))),
			GivenName: given, FamilyName: "Mustermann"}
	}
	f.erika, f.max, f.foreign = person(f.kasse.ID, "Erika"), person(f.kasse.ID, "Max"), person(other.ID, "Fremd")
	err := be.DB.InTx(context.Background(), func(tx *sqldb.Tx) error {
		for _, k := range []kasse.Kasse{f.kasse, other} {
			if err := tx.CreateKasse(context.Background(), k); err != nil {
				return err
			}
		}
		for _, p := range []kasse.Person{f.erika, f.max, f.foreign} {
			if err := tx.CreatePerson(context.Background(), p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []kasse.Person{f.erika, f.max, f.foreign} {
		f.people[p.ID] = auth.Principal{TenantID: p.TenantID, PersonID: p.ID, Role: auth.RoleInsured, SessionID: "s-" + p.ID}
	}
	f.people["caseworker"] = auth.Principal{TenantID: f.kasse.ID, AccountID: "a-cw", Role: auth.RoleCaseworker}
	f.start(be.DB, be.Blobs, opts...)
	return f
}

// start builds the server over db and blobs (again after a "restart").
func (f *tusFixture) start(db *sqldb.Store, blobs intake.BlobStore, opts ...fixtureOption) {
	db.SetClock(f.clock.Now)
	f.db, f.blobs = db, blobs
	cfg := intake.TusConfig{
		Store: db, Blobs: blobs, BasePath: TusPath + "/", PartSize: intake.MinPartSize, LockTTL: 5 * time.Second,
		Now: f.clock.Now, Logger: testLogger(),
	}
	var s kasse.Settings
	for _, o := range opts {
		o(&cfg, &s)
	}
	f.cfg = cfg
	f.h = intake.NewTusHandler(cfg)
	f.srv = quietServer(Options{})
	MountTus(f.srv.App(), f.h, TusOptions{Before: []fiber.Handler{f.testPrincipal}})
}

// testPrincipal stands in for the session middleware: X-Test-Person names
// who is logged in.
func (f *tusFixture) testPrincipal(c *fiber.Ctx) error {
	if p, ok := f.people[c.Get("X-Test-Person")]; ok {
		SetPrincipal(c, p)
	}
	return c.Next()
}

type hdr map[string]string

// do sends one request through app.Test; "Tus-Resumable: 1.0.0" is set
// unless h names it (an empty value removes it).
func (f *tusFixture) do(method, path, who string, h hdr, body []byte) *http.Response {
	f.t.Helper()
	var r io.Reader = http.NoBody
	if body != nil {
		r = bytes.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	req.Header.Set("Tus-Resumable", intake.TusVersion)
	if who != "" {
		req.Header.Set("X-Test-Person", who)
	}
	for k, v := range h {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := f.srv.App().Test(req, -1)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

func metadata(pairs ...string) string {
	var out []string
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, pairs[i]+" "+base64.StdEncoding.EncodeToString([]byte(pairs[i+1])))
	}
	return strings.Join(out, ",")
}

func idOf(t *testing.T, location string) string {
	t.Helper()
	id, ok := strings.CutPrefix(location, TusPath+"/")
	if !ok || id == "" {
		t.Fatalf("Location %q is not below %s/", location, TusPath)
	}
	return id
}

// create starts an upload and returns its id.
func (f *tusFixture) create(who string, length int64, filename string) string {
	f.t.Helper()
	resp := f.do("POST", TusPath, who, hdr{"Upload-Length": strconv.FormatInt(length, 10), "Upload-Metadata": metadata("filename", filename, "filetype", "")}, nil)
	if resp.StatusCode != http.StatusCreated {
		f.t.Fatalf("create: status %d %s", resp.StatusCode, readProblem(f.t, resp).Detail)
	}
	return idOf(f.t, resp.Header.Get("Location"))
}

func (f *tusFixture) patch(who, id string, offset int64, data []byte, h hdr) *http.Response {
	f.t.Helper()
	all := hdr{"Content-Type": "application/offset+octet-stream", "Upload-Offset": strconv.FormatInt(offset, 10)}
	for k, v := range h {
		all[k] = v
	}
	return f.do("PATCH", TusPath+"/"+id, who, all, data)
}

// upload sends data in chunks of the given sizes (the last one repeats)
// and expects every PATCH to succeed.
func (f *tusFixture) upload(who string, data []byte, filename string, chunks ...int) string {
	f.t.Helper()
	id := f.create(who, int64(len(data)), filename)
	f.send(who, id, data, 0, chunks...)
	return id
}

func (f *tusFixture) send(who, id string, data []byte, off int, chunks ...int) {
	f.t.Helper()
	for i := 0; off < len(data); i++ {
		n := chunks[min(i, len(chunks)-1)]
		end := min(off+n, len(data))
		resp := f.patch(who, id, int64(off), data[off:end], nil)
		if resp.StatusCode != http.StatusNoContent {
			f.t.Fatalf("PATCH at %d: status %d %s", off, resp.StatusCode, readProblem(f.t, resp).Detail)
		}
		if got := resp.Header.Get("Upload-Offset"); got != strconv.Itoa(end) {
			f.t.Fatalf("PATCH at %d: Upload-Offset %s, want %d", off, got, end)
		}
		off = end
	}
}

func (f *tusFixture) row(id string) intake.Upload {
	f.t.Helper()
	u, err := f.db.UploadByID(context.Background(), id)
	if err != nil {
		f.t.Fatalf("upload %s: %v", id, err)
	}
	return u
}

// stored reads the upload's object from the blob store.
func (f *tusFixture) stored(id string) []byte {
	f.t.Helper()
	u := f.row(id)
	rc, _, err := f.blobs.Get(context.Background(), u.BlobKey)
	if err != nil {
		f.t.Fatalf("object of %s: %v", id, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// assertNoBlobs checks that neither the object nor staging segments of an
// upload remain.
func (f *tusFixture) assertNoBlobs(u intake.Upload) {
	f.t.Helper()
	ctx := context.Background()
	if _, err := f.blobs.Stat(ctx, u.BlobKey); !errors.Is(err, intake.ErrBlobNotFound) {
		f.t.Errorf("object of %s still there (err %v)", u.ID, err)
	}
	for n := int64(1); n <= u.StagingSeq+1; n++ {
		key := intake.StagingKey(u.TenantID, u.ID, n)
		if _, err := f.blobs.Stat(ctx, key); !errors.Is(err, intake.ErrBlobNotFound) {
			f.t.Errorf("staging segment %d of %s still there (err %v)", n, u.ID, err)
		}
	}
}

type problemBody struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

func readProblem(t *testing.T, resp *http.Response) problemBody {
	t.Helper()
	var p problemBody
	body, _ := io.ReadAll(resp.Body)
	if len(body) == 0 {
		return p
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("error answer has Content-Type %q, want application/problem+json", ct)
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Errorf("problem body %q: %v", body, err)
	}
	return p
}

// doc returns n bytes that start like a document of the given kind and
// continue with seeded random bytes.
func doc(kind string, n int, seed uint64) []byte {
	heads := map[string][]byte{
		"pdf":  []byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"),
		"png":  {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 'I', 'H', 'D', 'R'},
		"jpeg": {0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 'J', 'F', 'I', 'F', 0},
		"exe":  []byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00"),
		"elf":  []byte("\x7fELF\x02\x01\x01\x00"),
		"zip":  []byte("PK\x03\x04\x14\x00\x00\x00\x08\x00"),
		"html": []byte("<!DOCTYPE html><html><head><script>alert(1)</script></head><body>"),
		"sh":   []byte("#!/bin/sh\nrm -rf /\n"),
	}
	out := make([]byte, n)
	src := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 7})
	src.Read(out)
	if kind == "html" || kind == "sh" {
		for i := range out { // keep text formats text
			out[i] = 'a' + out[i]%26
		}
	}
	copy(out, heads[kind])
	return out
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// gatedBlobs blocks the first PutPart or Put after arm() until release, so
// a request can be caught while it holds an upload's lock.
type gatedBlobs struct {
	intake.BlobStore
	mu      sync.Mutex
	armed   bool
	entered chan struct{}
	release chan struct{}
}

func (g *gatedBlobs) arm() {
	g.mu.Lock()
	g.armed = true
	g.entered = make(chan struct{})
	g.release = make(chan struct{})
	g.mu.Unlock()
}

func (g *gatedBlobs) wait() {
	g.mu.Lock()
	if !g.armed {
		g.mu.Unlock()
		return
	}
	g.armed = false
	entered, release := g.entered, g.release
	g.mu.Unlock()
	close(entered)
	<-release
}

func (g *gatedBlobs) PutPart(ctx context.Context, key, uploadID string, n int, r io.Reader, size int64) (intake.Part, error) {
	g.wait()
	return g.BlobStore.PutPart(ctx, key, uploadID, n, r, size)
}

func (g *gatedBlobs) Put(ctx context.Context, key string, r io.Reader, size int64) (intake.BlobInfo, error) {
	g.wait()
	return g.BlobStore.Put(ctx, key, r, size)
}

// replica is one server over the fixture's storage; use switches the
// fixture's requests to it (each keeps its own in-memory state).
type replica struct {
	db    *sqldb.Store
	blobs intake.BlobStore
	h     *intake.TusHandler
	srv   *Server
}

func (f *tusFixture) replica() replica { return replica{f.db, f.blobs, f.h, f.srv} }

func (f *tusFixture) use(r replica) { f.db, f.blobs, f.h, f.srv = r.db, r.blobs, r.h, r.srv }

// fakeClamd speaks clamd's INSTREAM protocol and reports signature as
// found in any stream that contains it. down makes it hang up at once.
type fakeClamd struct {
	ln        net.Listener
	signature []byte
	mu        sync.Mutex
	down      bool
	scans     int
}

const testSignature = "POSTBOX-TEST-SIGNATURE-EICAR-5f1d"

func newFakeClamd(t *testing.T) *fakeClamd {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &fakeClamd{ln: ln, signature: []byte(testSignature)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go c.serve(conn)
		}
	}()
	return c
}

func (c *fakeClamd) setDown(down bool) {
	c.mu.Lock()
	c.down = down
	c.mu.Unlock()
}

func (c *fakeClamd) serve(conn net.Conn) {
	defer conn.Close()
	c.mu.Lock()
	down := c.down
	c.scans++
	c.mu.Unlock()
	if down {
		return
	}
	br := bufio.NewReader(conn)
	cmd, err := br.ReadString(0)
	if err != nil || cmd != "zINSTREAM\x00" {
		return
	}
	var data []byte
	for {
		var l [4]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(l[:])
		if n == 0 {
			break
		}
		chunk := make([]byte, n)
		if _, err := io.ReadFull(br, chunk); err != nil {
			return
		}
		data = append(data, chunk...)
	}
	if bytes.Contains(data, c.signature) {
		conn.Write([]byte("stream: Postbox.Test-Signature FOUND\x00"))
		return
	}
	conn.Write([]byte("stream: OK\x00"))
}

func (c *fakeClamd) scanner() *intake.Clamd {
	return &intake.Clamd{Addr: c.ln.Addr().String(), Timeout: 10 * time.Second}
}
