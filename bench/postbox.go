package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"postbox/intake"
	"postbox/kasse"
	"postbox/storage/postgres"
	"postbox/storage/sqldb"
)

// postboxSetup is server mode on the shared services with a database,
// bucket (and optionally ClickHouse database) of its own; every instance
// started from it shares them, as replicas do.
type postboxSetup struct {
	r                        *run
	pgDSN, bucket, secretKey string
	chDB, smsURL             string
	dataDir                  string
	db                       *sqldb.Store
}

func (r *run) newPostbox(ctx context.Context, withClickHouse bool) (*postboxSetup, error) {
	dsn, err := r.freshPostgres(ctx)
	if err != nil {
		return nil, err
	}
	bucket, err := r.freshBucket(ctx, false)
	if err != nil {
		return nil, err
	}
	dir, err := r.tempDir()
	if err != nil {
		return nil, err
	}
	s := &postboxSetup{r: r, pgDSN: dsn, bucket: bucket, secretKey: randHex(32), dataDir: dir}
	if withClickHouse {
		s.chDB = r.freshClickHouse()
	}
	return s, nil
}

func (s *postboxSetup) env(listen string) []string {
	sv := s.r.opts.Services
	env := append(baseEnv(),
		"POSTBOX_LISTEN="+listen, "POSTBOX_BASE_URL=http://"+listen, "POSTBOX_DATA_DIR="+s.dataDir,
		"POSTBOX_SECRET_KEY="+s.secretKey, "POSTBOX_LOG_LEVEL=warn",
		"POSTBOX_DATABASE_URL="+s.pgDSN,
		"POSTBOX_S3_ENDPOINT="+sv.MinIOEndpoint, "POSTBOX_S3_ACCESS_KEY="+sv.MinIOAccessKey,
		"POSTBOX_S3_SECRET_KEY="+sv.MinIOSecretKey, "POSTBOX_S3_BUCKET="+s.bucket)
	if s.chDB != "" {
		env = append(env, "POSTBOX_CLICKHOUSE_ADDR="+sv.ClickHouseAddr, "POSTBOX_CLICKHOUSE_DATABASE="+s.chDB)
	}
	if s.smsURL != "" {
		env = append(env, "POSTBOX_SMS_GATEWAY_URL="+s.smsURL)
	}
	return env
}

// start runs one "postbox serve" on a free loopback port.
func (s *postboxSetup) start(ctx context.Context) (*proc, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{"serve"}
	if dir := s.r.opts.ProfileDir; dir != "" {
		args = []string{"bench", "serve", "--cpuprofile", filepath.Join(dir, fmt.Sprintf("postbox-%s-%s.pprof", s.r.step, randHex(3)))}
	}
	p, err := s.r.startProc(ctx, "postbox", s.env(addr), "http://"+addr+"/healthz", s.r.opts.Binary, args...)
	if err != nil {
		return nil, "", err
	}
	if s.db == nil {
		if s.db, err = postgres.Open(ctx, s.pgDSN); err != nil {
			return nil, "", err
		}
		db := s.db
		s.r.defer_(func() { db.Close() })
	}
	return p, addr, nil
}

// kasse creates a Kasse with generous upload quotas (the benchmark's
// uploads are many and large) and n insured persons; it returns the
// Kasse and the persons.
func (s *postboxSetup) kasse(ctx context.Context, n int, online bool) (kasse.Kasse, []kasse.Person, error) {
	st := kasse.DefaultSettings()
	st.MaxSubmissionBytes = 1 << 40
	st.MaxFileBytes = 1 << 40
	st.MaxFilesPerUpload = 100000
	k := kasse.Kasse{ID: "bench-" + randHex(5), Name: "Benchkasse", PortalURL: "http://portal.invalid", Settings: st}
	persons := make([]kasse.Person, n)
	err := s.db.InTx(ctx, func(tx *sqldb.Tx) error {
		if err := tx.CreateKasse(ctx, k); err != nil {
			return err
		}
		for i := range persons {
			p := kasse.Person{ID: "p-" + randHex(8), TenantID: k.ID, KVNR: kasse.CompleteKVNR(fmt.Sprintf("B%08d", i)),
				GivenName: "Erika", FamilyName: "Mustermann"}
			if online {
				p.Email = fmt.Sprintf("p%d-%s@bench.invalid", i, k.ID)
				p.Delivery = kasse.DeliveryOnline
			}
			if err := tx.CreatePerson(ctx, p); err != nil {
				return err
			}
			persons[i] = p
		}
		return nil
	})
	return k, persons, err
}

var pinLine = regexp.MustCompile(`(?m)^PIN: ([A-Z0-9-]+)$`)

// issuePIN runs "postbox pin issue" as a letter batch would.
func (s *postboxSetup) issuePIN(ctx context.Context, kasseID, kvnr string) (string, error) {
	cmd := exec.CommandContext(ctx, s.r.opts.Binary, "pin", "issue", "--kasse", kasseID, "--kvnr", kvnr, "--type", "hilfsmittel",
		"--text", "Bitte senden Sie uns die ärztliche Verordnung.", "--out", filepath.Join(s.dataDir, "brief-"+randHex(4)+".pdf"), "--print-pin")
	cmd.Env = s.env("127.0.0.1:1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("pin issue: %v\n%s", err, out)
	}
	m := pinLine.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("no PIN in the output of pin issue")
	}
	return string(m[1]), nil
}

// pinLogin enters KVNR and PIN and returns the session cookie.
func pinLogin(ctx context.Context, hc *http.Client, addr, kasseID, kvnr, pin string) (string, error) {
	body, _ := json.Marshal(map[string]string{"kasse": kasseID, "kvnr": kvnr, "pin": pin})
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/api/pin-login", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return "", fmt.Errorf("PIN login: %d %s", resp.StatusCode, b)
	}
	for _, c := range resp.Cookies() {
		if strings.HasSuffix(c.Name, "postbox_pin") {
			return c.Name + "=" + c.Value, nil
		}
	}
	return "", fmt.Errorf("PIN login set no session cookie")
}

// tusClient speaks the tus core protocol with creation; postbox and the
// peer get the same client.
type tusClient struct {
	base   string // http://host:port
	path   string // creation endpoint
	cookie string
	hc     *http.Client
}

func (c *tusClient) do(ctx context.Context, method, url string, body io.Reader, n int64, h map[string]string) (*http.Response, error) {
	if !strings.HasPrefix(url, "http") {
		url = c.base + url
	}
	r, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	r.ContentLength = n
	r.Header.Set("Tus-Resumable", intake.TusVersion)
	if c.cookie != "" {
		r.Header.Set("Cookie", c.cookie)
	}
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return c.hc.Do(r)
}

// upload creates an upload of size bytes and sends src in PATCHes of
// chunk bytes (wholeFile: one PATCH).
func (c *tusClient) upload(ctx context.Context, size, chunk int64, name string, src io.Reader) error {
	_, err := c.send(ctx, size, chunk, fileMetadata(name), src)
	return err
}

func fileMetadata(name string) map[string]string {
	return map[string]string{"Upload-Metadata": "filename " + base64.StdEncoding.EncodeToString([]byte(name)) +
		",filetype " + base64.StdEncoding.EncodeToString([]byte("application/pdf"))}
}

// send creates an upload of size bytes with the headers h, sends src in
// PATCHes of chunk bytes and returns the upload's URL.
func (c *tusClient) send(ctx context.Context, size, chunk int64, h map[string]string, src io.Reader) (string, error) {
	if chunk <= 0 {
		chunk = size
	}
	create := map[string]string{"Upload-Length": strconv.FormatInt(size, 10)}
	maps.Copy(create, h)
	resp, err := c.do(ctx, "POST", c.path, nil, 0, create)
	if err != nil {
		return "", err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("create upload: status %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	for off := int64(0); off < size; {
		n := min(chunk, size-off)
		resp, err := c.do(ctx, "PATCH", loc, io.LimitReader(src, n), n, map[string]string{
			"Content-Type": "application/offset+octet-stream", "Upload-Offset": strconv.FormatInt(off, 10)})
		if err != nil {
			return "", err
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		newOff, _ := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
		if resp.StatusCode != http.StatusNoContent || newOff != off+n {
			return "", fmt.Errorf("PATCH at %d: status %d, offset %d: %s", off, resp.StatusCode, newOff, b)
		}
		off += n
	}
	return loc, nil
}

// uploadSplit sends one file of size bytes as parts partial uploads on as
// many streams, then joins them (tus concatenation, what tus-js-client's
// parallelUploads does); the file is complete when the final upload's
// creation answers 201.
func (c *tusClient) uploadSplit(ctx context.Context, size int64, parts int, chunk int64, name string) error {
	n := size / int64(parts)
	locs := make([]string, parts)
	_, err := parallel(ctx, workload{files: parts, streams: parts}, func(ctx context.Context, i int) error {
		loc, err := c.send(ctx, n, chunk, map[string]string{"Upload-Concat": "partial"}, newSourceAt(int64(i)*n, n))
		locs[i] = loc
		return err
	})
	if err != nil {
		return err
	}
	h := fileMetadata(name)
	h["Upload-Concat"] = "final;" + strings.Join(locs, " ")
	resp, err := c.do(ctx, "POST", c.path, nil, 0, h)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("join partial uploads: status %d: %s", resp.StatusCode, b)
	}
	return nil
}

func newHTTPClient(conns int) *http.Client {
	return &http.Client{Timeout: 10 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: 0, DisableCompression: true}}
}
