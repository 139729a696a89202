package minio

import (
	"io"
	"strings"
	"testing"
)

func TestNewValidatesEndpoint(t *testing.T) {
	good := []string{"127.0.0.1:9000", "localhost:9000", "minio", "s3.eu-central-1.amazonaws.com", "[::1]:9000", "minio.internal.example:443"}
	for _, ep := range good {
		if _, err := New(ep, "ak", "sk", "postbox-blobs", false); err != nil {
			t.Errorf("New(%q): %v", ep, err)
		}
	}
	bad := []string{"", "http//x", "http://127.0.0.1:9000", "https://minio:9000", "127.0.0.1:9000/bucket", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:99999", "host:port", "::1", "user@host:9000", "bad_host!:9000", "a b"}
	for _, ep := range bad {
		_, err := New(ep, "ak", "sk", "postbox-blobs", false)
		if err == nil {
			t.Errorf("New(%q) succeeded, want an error", ep)
			continue
		}
		// The operator must see which setting is wrong.
		if want := "s3 endpoint \"" + ep + "\""; !strings.Contains(err.Error(), want) {
			t.Errorf("New(%q) = %q, want it to name the endpoint (%s)", ep, err, want)
		}
	}
}

func TestNewValidatesBucket(t *testing.T) {
	for _, b := range []string{"", "UPPER", "a", "has_underscore", "-leading"} {
		if _, err := New("127.0.0.1:9000", "ak", "sk", b, false); err == nil || !strings.Contains(err.Error(), "s3 bucket") {
			t.Errorf("New with bucket %q: %v, want a bucket error", b, err)
		}
	}
}

func TestExactReader(t *testing.T) {
	cases := []struct {
		data string
		size int64
		ok   bool
	}{
		{"abc", 3, true},
		{"abc", -1, true},
		{"", 0, true},
		{"ab", 3, false},
		{"abcd", 3, false},
	}
	for _, c := range cases {
		got, err := io.ReadAll(newExactReader(t.Context(), onlyReader{strings.NewReader(c.data)}, c.size))
		if (err == nil) != c.ok {
			t.Errorf("%q declared %d: err %v, want ok=%v", c.data, c.size, err, c.ok)
		}
		if c.ok && string(got) != c.data {
			t.Errorf("%q declared %d: read %q", c.data, c.size, got)
		}
	}
}

type onlyReader struct{ r *strings.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }
