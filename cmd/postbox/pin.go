package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"postbox/audit"
	"postbox/auth"
	"postbox/intake"
	"postbox/web"
)

// newPINService wires the Einmal-PIN desk to the database, the PIN key and
// the blob store.
func newPINService(a *app) *intake.PINService {
	return &intake.PINService{Store: a.db.PINIntake(), Hasher: intake.NewPINHasher(a.keys.pin), Blobs: a.blobs, BaseURL: a.cfg.BaseURL, NotifyWindow: a.cfg.MailCoalesceWindow}
}

// mountPINIntake serves the PIN routes. Call it after UseSessions and
// before the upload routes (MountTus): its middleware turns the PIN cookie
// into the principal the upload routes need.
func mountPINIntake(srv *web.Server, a *app) *web.PINIntake {
	desk := web.NewPINIntake(web.PINIntakeOptions{Service: newPINService(a), BaseURL: a.cfg.BaseURL,
		SecureCookies: a.cfg.SecureCookies, ClientKey: a.keys.clientAddr})
	desk.Mount(srv.App())
	return desk
}

const pinUsage = `usage: postbox pin issue --kasse ID --kvnr KVNR --type ANLIEGEN --text "Bitte senden Sie uns …" --out brief.pdf [--print-pin]`

// cmdPin issues an Einmal-PIN as a batch would: the letter goes to --out,
// stdout tells only the valid-until date (the PIN only with --print-pin).
func cmdPin(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "issue" {
		return errors.New(pinUsage)
	}
	var (
		kasseID, kvnr, caseType, text, out string
		printPIN                           bool
	)
	cfg, _, err := parseConfig("pin issue", args[1:], getenv, func(fs *flag.FlagSet) {
		fs.StringVar(&kasseID, "kasse", "", "Kasse (tenant) id")
		fs.StringVar(&kvnr, "kvnr", "", "Krankenversichertennummer of the insured person")
		fs.StringVar(&caseType, "type", "", "Anliegen (case type), e.g. krankengeld")
		fs.StringVar(&text, "text", "", "what the letter asks for, printed on it")
		fs.StringVar(&out, "out", "", "file to write the PDF letter to")
		fs.BoolVar(&printPIN, "print-pin", false, "also print the PIN on stdout (it is on the letter anyway)")
	})
	if err != nil {
		return err
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"--kasse", kasseID}, {"--kvnr", kvnr}, {"--type", caseType}, {"--text", text}, {"--out", out}} {
		if strings.TrimSpace(f.v) == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("pin issue: %s missing\n%s", strings.Join(missing, ", "), pinUsage)
	}
	if !audit.CaseType(caseType).Valid() {
		var types []string
		for _, ct := range audit.CaseTypes {
			types = append(types, string(ct.Type))
		}
		sort.Strings(types)
		return fmt.Errorf("pin issue: unknown --type %q; one of %s", caseType, strings.Join(types, ", "))
	}
	a, err := openApp(ctx, cfg, newLogger(io.Discard, cfg.LogLevel))
	if err != nil {
		return err
	}
	defer a.Close()
	var rid [8]byte
	_, _ = rand.Read(rid[:])
	actor := intake.Actor{Principal: auth.Principal{TenantID: kasseID, Role: intake.RoleBatch}, RequestID: "cli-" + hex.EncodeToString(rid[:])}
	issued, err := newPINService(a).Issue(ctx, actor, intake.IssueRequest{KVNR: kvnr, CaseType: audit.CaseType(caseType), RequestText: text})
	var ie *intake.InputError
	switch {
	case errors.As(err, &ie):
		return fmt.Errorf("pin issue: %s", ie.Detail())
	case errors.Is(err, intake.ErrUnknownPerson):
		return fmt.Errorf("pin issue: Kasse %s has no insured person with this KVNR", kasseID)
	case err != nil:
		return fmt.Errorf("pin issue: %w", err)
	}
	var pdf bytes.Buffer
	if err := intake.RenderLetter(&pdf, issued.Letter(cfg.BaseURL)); err != nil {
		return err
	}
	if err := writePrivateFile(out, pdf.Bytes()); err != nil {
		return fmt.Errorf("pin issue: the PIN was issued but its letter could not be written (issue a new one): %w", err)
	}
	fmt.Fprintf(stdout, "Einmal-PIN ausgestellt, gültig bis einschließlich %s. Brief: %s\n", intake.LastValidDay(issued.Record.ExpiresAt), out)
	if printPIN {
		fmt.Fprintf(stdout, "PIN: %s\n", intake.FormatPIN(issued.PIN))
	}
	return nil
}

// writePrivateFile writes a file readable by the owner only, atomically:
// a letter carries a PIN.
func writePrivateFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".letter-*.pdf")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
