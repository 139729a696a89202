package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSMSHTTPGateway(t *testing.T) {
	var got map[string]string
	status := http.StatusAccepted
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s", r.Method, r.Header.Get("Content-Type"))
		}
		json.NewDecoder(r.Body).Decode(&got)
		w.WriteHeader(status)
	}))
	defer srv.Close()
	g, err := NewSMSHTTP(srv.URL + "/send")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.SendSMS(context.Background(), "+4915112345678", "Ihre mTAN: 123456."); err != nil {
		t.Fatal(err)
	}
	if got["to"] != "+4915112345678" || got["text"] != "Ihre mTAN: 123456." {
		t.Fatalf("gateway got %v", got)
	}
	status = http.StatusServiceUnavailable
	err = g.SendSMS(context.Background(), "+4915112345678", "Ihre mTAN: 654321.")
	if err == nil || !strings.Contains(err.Error(), "503") || strings.Contains(err.Error(), "654321") || strings.Contains(err.Error(), "+49151") {
		t.Fatalf("failed send: %v (must name the status, not the number or code)", err)
	}
	if _, err := NewSMSHTTP("ftp://x"); err == nil {
		t.Fatal("ftp URL accepted")
	}
}

func TestSMSDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sms")
	d, err := NewSMSDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SendSMS(context.Background(), "+4915112345678", "Ihre mTAN: 123456."); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.txt"))
	if len(files) != 1 {
		t.Fatalf("%d files", len(files))
	}
	raw, _ := os.ReadFile(files[0])
	if string(raw) != "An: +4915112345678\n\nIhre mTAN: 123456.\n" {
		t.Fatalf("file %q", raw)
	}
	if st, _ := os.Stat(files[0]); st.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v", st.Mode().Perm())
	}
	if err := d.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestNormalizeMobile(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0151 12345678", "+4915112345678"},
		{"+49 (151) 123-456-78", "+4915112345678"},
		{"0049 151 12345678", "+4915112345678"},
		{"+43 664 1234567", "+436641234567"},
		{"12ab", ""},
		{"+49", ""},
	} {
		got, err := NormalizeMobile(tc.in)
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("NormalizeMobile(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
