package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"postbox/intake"
	"postbox/kasse"
	"postbox/storage/sqldb"
)

// pinEnv is a data dir with one Kasse and one insured person.
func pinEnv(t *testing.T) (map[string]string, kasse.Person) {
	t.Helper()
	ctx := context.Background()
	env := map[string]string{"POSTBOX_DATA_DIR": t.TempDir(), "POSTBOX_BASE_URL": "https://postfach.example"}
	cfg, _, err := parseConfig("test", nil, envFrom(env), nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := openApp(ctx, cfg, newLogger(io.Discard, cfg.LogLevel))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	p := kasse.Person{ID: uuid.NewString(), TenantID: "nordkasse", KVNR: kasse.CompleteKVNR("P12345678"), GivenName: "Paula", FamilyName: "Päßler",
		Street: "Am Markt 3", PostalCode: "20095", City: "Hamburg", EGKValidUntil: time.Now().AddDate(1, 0, 0)}
	if err := a.db.InTx(ctx, func(tx *sqldb.Tx) error {
		if err := tx.CreateKasse(ctx, kasse.Kasse{ID: "nordkasse", Name: "Nordkasse", Settings: kasse.DefaultSettings()}); err != nil {
			return err
		}
		return tx.CreatePerson(ctx, p)
	}); err != nil {
		t.Fatal(err)
	}
	return env, p
}

func TestPinIssueWritesTheLetterAndPrintsOnlyTheDate(t *testing.T) {
	env, p := pinEnv(t)
	out := filepath.Join(t.TempDir(), "brief.pdf")
	args := []string{"pin", "issue", "--kasse", "nordkasse", "--kvnr", p.KVNR, "--type", "krankengeld",
		"--text", "Bitte senden Sie uns Ihre Arbeitsunfähigkeitsbescheinigung.", "--out", out}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), args, envFrom(env), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "gültig bis einschließlich ") || regexp.MustCompile(`[A-Z2-9]{5}-[A-Z2-9]{5}`).MatchString(stdout.String()) {
		t.Fatalf("stdout = %q; want the valid-until date and no PIN", stdout.String())
	}
	st, err := os.Stat(out)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("letter file: %v %v", st, err)
	}
	text := letterText(t, out)
	pin := regexp.MustCompile(`[A-Z2-9]{5}-[A-Z2-9]{5}-[A-Z2-9]{5}`).FindString(text)
	date := regexp.MustCompile(`gültig bis einschließlich (\d\d\.\d\d\.\d{4})`).FindStringSubmatch(stdout.String())
	if pin == "" || date == nil || !strings.Contains(text, date[1]) || !strings.Contains(text, "Paula Päßler") ||
		!strings.Contains(text, "https://postfach.example/einmal-pin/nordkasse") {
		t.Fatalf("letter:\n%s\nstdout %s", text, stdout.String())
	}

	// --print-pin prints the PIN that the new letter carries; both PINs work.
	out2 := filepath.Join(t.TempDir(), "brief2.pdf")
	stdout.Reset()
	args[len(args)-1] = out2
	if code := run(context.Background(), append(args, "--print-pin"), envFrom(env), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	printed := regexp.MustCompile(`PIN: ([A-Z2-9-]{17})`).FindStringSubmatch(stdout.String())
	if printed == nil || !strings.Contains(letterText(t, out2), printed[1]) || printed[1] == pin {
		t.Fatalf("--print-pin: %q", stdout.String())
	}
	cfg, _, _ := parseConfig("test", nil, envFrom(env), nil)
	a, err := openApp(context.Background(), cfg, newLogger(io.Discard, cfg.LogLevel))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for _, typed := range []string{pin, printed[1]} {
		if _, err := newPINService(a).Login(context.Background(), intake.LoginRequest{TenantID: "nordkasse", KVNR: p.KVNR, PIN: typed}); err != nil {
			t.Fatalf("login with a PIN from the CLI: %v", err)
		}
	}
}

func TestPinIssueRefusesBadInput(t *testing.T) {
	env, p := pinEnv(t)
	out := filepath.Join(t.TempDir(), "brief.pdf")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing flags", []string{"--kasse", "nordkasse", "--out", out}, "--kvnr, --type, --text missing"},
		{"unknown type", []string{"--kasse", "nordkasse", "--kvnr", p.KVNR, "--type", "urlaub", "--text", "x", "--out", out}, `unknown --type "urlaub"`},
		{"unknown person", []string{"--kasse", "nordkasse", "--kvnr", kasse.CompleteKVNR("Q99999999"), "--type", "krankengeld", "--text", "x", "--out", out}, "no insured person"},
		{"malformed KVNR", []string{"--kasse", "nordkasse", "--kvnr", "123", "--type", "krankengeld", "--text", "x", "--out", out}, "Krankenversichertennummer ist nicht gültig"},
		{"unknown Kasse", []string{"--kasse", "nope", "--kvnr", p.KVNR, "--type", "krankengeld", "--text", "x", "--out", out}, "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"pin", "issue"}, tc.args...), envFrom(env), &stdout, &stderr)
			if code == 0 || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want it to say %q", code, stderr.String(), tc.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Fatal("a letter was written")
			}
		})
	}
}

func letterText(t *testing.T, path string) string {
	t.Helper()
	bin, err := exec.LookPath("pdftotext")
	if err != nil {
		t.Fatal("pdftotext not found: install the Debian package poppler-utils (deploy/install does)")
	}
	out, err := exec.Command(bin, "-enc", "UTF-8", path, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v %s", err, out)
	}
	return string(out)
}
