//go:build integration

package tusclient

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// cutProxy forwards everything to the server, except that it drops the
// answer to the first upload creation: the server has created the upload,
// the client only sees its connection closed (a mobile network gone at
// the wrong moment).
type cutProxy struct {
	addr  string
	mu    sync.Mutex
	posts int
	cut   bool
}

func newCutProxy(t *testing.T, server string) *cutProxy {
	target := &url.URL{Scheme: "http", Host: server}
	rp := httputil.NewSingleHostReverseProxy(target)
	p := &cutProxy{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/api/uploads") {
			rp.ServeHTTP(w, r)
			return
		}
		p.mu.Lock()
		p.posts++
		cut := !p.cut
		p.cut = true
		p.mu.Unlock()
		if !cut {
			rp.ServeHTTP(w, r)
			return
		}
		out := r.Clone(r.Context())
		out.URL.Scheme, out.URL.Host, out.Host, out.RequestURI = target.Scheme, target.Host, target.Host, ""
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			t.Errorf("forward the creation: %v", err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Errorf("the creation behind the cut answered %d", resp.StatusCode)
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		conn.Close()
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return p
}

func (p *cutProxy) creations() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.posts
}

// TestTusJSClientLostCreationAnswer: the answer to tus-js-client's POST is
// lost after the server created the upload; the client sends the POST
// again. With an Idempotency-Key (as the upload page sends) the retry gets
// the same upload: the person has ONE upload, byte-identical to the file.
// Without a key the server cannot tell a retry from a new file, and a
// second upload appears (the empty first one is what blocked submissions):
// that control shows the cut really hits the creation.
func TestTusJSClientLostCreationAnswer(t *testing.T) {
	e := newEnv(t)
	srv := e.start(t, freeAddr(t))
	for _, tc := range []struct {
		name, key string
		uploads   int
	}{
		{"with Idempotency-Key one upload", randHex(16), 1},
		{"without key a second upload", "", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kasseID, kvnr, _ := e.person(t, nil)
			cookie := login(t, srv.addr, kasseID, kvnr, e.issuePIN(t, kasseID, kvnr))
			proxy := newCutProxy(t, srv.addr)
			const size = 3<<20 + 123
			path, want := testFile(t, size)
			res := node(t, map[string]string{
				"TUS_ENDPOINT": "http://" + proxy.addr + "/api/uploads/", "TUS_COOKIE": cookie, "TUS_FILE": path,
				"TUS_CHUNK": strconv.Itoa(1 << 20), "TUS_PARALLEL": "1", "TUS_PHASE": "full",
				"TUS_STORAGE": filepath.Join(t.TempDir(), "tus-urls.json"), "TUS_IDEMPOTENCY_KEY": tc.key,
			})
			if n := proxy.creations(); n != 2 {
				t.Fatalf("%d creation requests, want the cut one and its retry", n)
			}
			ups := newClient(srv.addr, cookie).uploads(t)
			if len(ups) != tc.uploads {
				t.Fatalf("the person has %d uploads, want %d: %+v", len(ups), tc.uploads, ups)
			}
			done := 0
			for _, u := range ups {
				if u.Status == "complete" {
					done++
				}
			}
			if done != 1 {
				t.Fatalf("%d complete uploads, want 1: %+v", done, ups)
			}
			if got, n := e.storedSHA256(t, res.URL); got != want || n != size {
				t.Fatalf("stored object: %d bytes, SHA-256 %s; want %d bytes, %s", n, got, size, want)
			}
		})
	}
}
