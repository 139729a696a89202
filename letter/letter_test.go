package letter

import (
	"bytes"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// text extracts what a reader sees with poppler's pdftotext (Debian package
// poppler-utils, installed by deploy/install), whitespace collapsed; crop
// limits it to an area (pdftotext -x -y -W -H, in points).
func text(t *testing.T, pdf []byte, crop ...string) string {
	t.Helper()
	bin, err := exec.LookPath("pdftotext")
	if err != nil {
		t.Fatal("pdftotext not found: install the Debian package poppler-utils (deploy/install does)")
	}
	cmd := exec.Command(bin, append(append([]string{"-layout", "-enc", "UTF-8"}, crop...), "-", "-")...)
	cmd.Stdin = bytes.NewReader(pdf)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	return strings.Join(strings.Fields(string(out)), " ")
}

func base() Letter {
	return Letter{
		Title:         "Testbrief",
		Sender:        "BKK Müller & Söhne",
		Tagline:       "Sicherer Versand",
		ReturnAddress: "BKK Müller & Söhne · Postfach 1 · 12345 Köln",
		Recipient:     []string{"Jürgen Groß-Łukasiewicz", "", "Königsallee 7", "40212 Düsseldorf"},
		Info:          []Field{{"Datum", Date(time.Date(2026, 11, 23, 23, 30, 0, 0, time.UTC))}},
		Subject:       "Ihr Code für Übungszwecke",
		Body:          []Paragraph{{Text: "Guten Tag,"}, {Text: "bitte beachten Sie:", Highlight: true}},
		Code:          &Code{Label: "Ihr Code", Value: "ABCD-EFGH", Note: "gültig bis einschließlich 31.12.2026"},
		After:         []Paragraph{{Text: "Grüße über Straße – 5 €"}},
		Closing:       "Mit freundlichen Grüßen\nIhre BKK",
	}
}

func TestWrite(t *testing.T) {
	long := "Wilhelmine-Friederike Augusta Carolina von Hohenzollern-Sigmaringen" // two lines in the window
	for _, tc := range []struct {
		name    string
		edit    func(*Letter)
		want    []string // in the extracted text, in this order
		window  bool     // read only the envelope window
		wantErr error
	}{
		{
			name: "all parts, umlauts and the date in Berlin",
			edit: func(*Letter) {},
			want: []string{"BKK Müller & Söhne", "Sicherer Versand", "Datum 24.11.2026",
				"Jürgen Groß-Lukasiewicz Königsallee 7 40212 Düsseldorf", "Ihr Code für Übungszwecke",
				"Guten Tag,", "bitte beachten Sie:", "Ihr Code ABCD-EFGH gültig bis einschließlich 31.12.2026",
				"Grüße über Straße – 5 €", "Mit freundlichen Grüßen Ihre BKK"},
		},
		{
			name: "optional parts left out",
			edit: func(l *Letter) { l.Tagline, l.Info, l.Code, l.After = "", nil, nil, nil },
			want: []string{"BKK Müller & Söhne", "Jürgen", "Ihr Code für Übungszwecke", "Guten Tag,", "Mit freundlichen Grüßen"},
		},
		{
			name:   "a long name wraps inside the window",
			edit:   func(l *Letter) { l.Recipient[0] = long },
			want:   []string{long, "Königsallee 7 40212 Düsseldorf"},
			window: true,
		},
		{
			name: "a long code shrinks instead of spilling",
			edit: func(l *Letter) { l.Code.Value = strings.Repeat("ABCDE-", 8) + "ABCDE" },
			want: []string{strings.Repeat("ABCDE-", 8) + "ABCDE"},
		},
		{
			name:    "an address longer than the window is refused",
			edit:    func(l *Letter) { l.Recipient = append(l.Recipient, long, long) },
			wantErr: ErrAddressTooLong,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := base()
			tc.edit(&l)
			var buf bytes.Buffer
			err := Write(&buf, l)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got error %v, want %v", err, tc.wantErr)
				}
				if buf.Len() != 0 {
					t.Fatalf("a refused letter still wrote %d bytes", buf.Len())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var crop []string
			if tc.window { // DIN 5008 form B window: 20–105 mm from the left, 45–90 mm from the top
				mm := func(v float64) string { return strconv.Itoa(int(v * 72 / 25.4)) }
				crop = []string{"-x", mm(20), "-y", mm(45), "-W", mm(105 - 20), "-H", mm(90 - 45)}
			}
			got := text(t, buf.Bytes(), crop...)
			rest := got
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("text lacks %q (or it is out of order):\n%s", w, got)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

func TestCP1252KeepsGermanAndDropsOnlyAccents(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Grüße aus Köln – 5 €", "Gr\xfc\xdfe aus K\xf6ln \x96 5 \x80"},
		{"Łódź Şahin", "L\xf3dz Sahin"},
		{"日本", "??"},
	} {
		if got := cp1252(tc.in); got != tc.want {
			t.Errorf("cp1252(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
