package intake

import (
	"context"
	"encoding/base64"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// Fuzz targets for what a tus client controls in its headers. The seeds
// run as ordinary tests; deploy/test runs each target briefly with -fuzz.

// Upload-Offset, Upload-Length: only plain non-negative decimal numbers
// that fit int64 are accepted, and they mean what they say.
func FuzzTusSize(f *testing.F) {
	for _, s := range []string{"0", "1", "007", "10485760", "9223372036854775807", "9223372036854775808", "-1", "+1", " 1", "1 ",
		"0x10", "1e3", "", "１２", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		n, ok := parseSize(v)
		if !ok {
			return
		}
		if n < 0 {
			t.Fatalf("parseSize(%q) = %d, negative", v, n)
		}
		if strings.Trim(v, "0123456789") != "" || v == "" {
			t.Fatalf("parseSize accepted %q, which is not a decimal number", v)
		}
		if want, err := strconv.ParseInt(v, 10, 64); err != nil || want != n {
			t.Fatalf("parseSize(%q) = %d, strconv says %d %v", v, n, want, err)
		}
	})
}

// encodeMetadata writes Upload-Metadata the way a client does (keys sorted).
func encodeMetadata(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		if m[k] == "" {
			parts = append(parts, k)
			continue
		}
		parts = append(parts, k+" "+base64.StdEncoding.EncodeToString([]byte(m[k])))
	}
	return strings.Join(parts, ",")
}

// Upload-Metadata: what is accepted has sane keys, and writing it again
// and parsing that gives the same pairs.
func FuzzTusMetadata(f *testing.F) {
	for _, s := range []string{
		"filename " + base64.StdEncoding.EncodeToString([]byte("AU März.pdf")) + ",filetype " + base64.StdEncoding.EncodeToString([]byte("application/pdf")),
		"filename", "filename ,x", "a b c", "a !!!", ",", "a,a", " k  dg== ", "k\tv", "filename " + base64.StdEncoding.EncodeToString([]byte("../../etc/passwd")),
		"filename " + base64.StdEncoding.EncodeToString([]byte("a\x00b\r\nc")), strings.Repeat("k,", 50), "\x18", "filename dg==\v", "k\u00a0dg==",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		m, err := ParseMetadata(v)
		if err != nil {
			return
		}
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] > 0x7e { // it is echoed in HEAD answers as sent
				t.Fatalf("ParseMetadata accepted %q with byte %#x", v, v[i])
			}
		}
		for k := range m {
			if k == "" || strings.ContainsAny(k, " \t,") {
				t.Fatalf("ParseMetadata(%q) accepted the key %q", v, k)
			}
		}
		again, err := ParseMetadata(encodeMetadata(m))
		if err != nil {
			t.Fatalf("metadata %v does not parse after writing it again: %v", m, err)
		}
		if len(again) != len(m) {
			t.Fatalf("roundtrip of %q: %v became %v", v, m, again)
		}
		for k, val := range m {
			if again[k] != val {
				t.Fatalf("roundtrip of %q: %q=%q became %q", v, k, val, again[k])
			}
		}
	})
}

// Upload-Checksum: only sha1/sha256 with a digest of the right length.
func FuzzTusChecksum(f *testing.F) {
	for _, s := range []string{"sha1 2jmj7l5rSw0yVb/vlWAYkK/YBwk=", "sha256 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", "md5 1B2M2Y8AsgTpgAmY7PhCfg==",
		"sha1", "sha1 !!", "sha256 ", " sha256 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU= ", "crc32 AAAA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		c, err := parseChecksum(v)
		if err != nil || c == nil {
			return
		}
		if c.alg != "sha1" && c.alg != "sha256" {
			t.Fatalf("parseChecksum(%q) accepted algorithm %q", v, c.alg)
		}
		if len(c.want) != c.h.Size() {
			t.Fatalf("parseChecksum(%q): digest of %d bytes for %s", v, len(c.want), c.alg)
		}
	})
}

// Tus-Resumable: every request but 1.0.0 is refused with 412 before
// anything else is looked at; Upload-Concat and the upload id of a request
// are refused cleanly (400/404/412/401) however they look, never with 5xx.
// No store is configured: a request that got past the header checks would
// panic on it, which the fuzzer reports.
func FuzzTusResumableAndConcat(f *testing.F) {
	f.Add("1.0.0", "", "")
	f.Add("0.2.2", "partial", "")
	f.Add("1.0.0 ", "final;/api/uploads/0123456789abcdef0123456789abcdef", "")
	f.Add("", "final;", "../../x")
	f.Add("1.0.0", "final; /a/b/ /c", "0123456789abcdef0123456789abcdeF")
	h := NewTusHandler(TusConfig{})
	f.Fuzz(func(t *testing.T, version, concat, id string) {
		for _, method := range []string{http.MethodPost, http.MethodHead, http.MethodPatch, http.MethodDelete} {
			hdr := map[string]string{"Tus-Resumable": version, "Upload-Concat": concat}
			resp := h.Serve(context.Background(), &TusRequest{Method: method, ID: id,
				Header: func(name string) string { return hdr[name] }, Body: strings.NewReader(""), ContentLength: 0})
			switch {
			case version != TusVersion && resp.Status != http.StatusPreconditionFailed:
				t.Fatalf("%s with Tus-Resumable %q: %d, want 412", method, version, resp.Status)
			case version == TusVersion && resp.Status != http.StatusUnauthorized:
				t.Fatalf("%s without a login: %d, want 401", method, resp.Status)
			}
			if resp.Problem == nil || !utf8.ValidString(resp.Problem.Detail) {
				t.Fatalf("%s: refusal without a German problem: %+v", method, resp)
			}
		}
	})
}
