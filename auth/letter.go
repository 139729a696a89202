package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Letter is a letter to the address the Kasse has stored for a person (the
// Freischaltcode is never sent anywhere else).
type Letter struct {
	TenantID string
	PersonID string
	Kind     string // e.g. "freischaltcode"
	PDF      []byte
}

// LetterSink hands a letter over for printing and posting.
type LetterSink interface {
	SendLetter(ctx context.Context, l Letter) error
}

// LetterDir is the embedded default: each letter is a PDF in Dir
// (DATA_DIR/letters), the print shop's inbox.
type LetterDir struct{ Dir string }

// NewLetterDir creates the directory, readable by the service only.
func NewLetterDir(dir string) (*LetterDir, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("letter dir: %w", err)
	}
	return &LetterDir{Dir: dir}, nil
}

// SendLetter writes the PDF atomically; the name carries no personal data.
func (d *LetterDir) SendLetter(_ context.Context, l Letter) error {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	name := time.Now().UTC().Format("20060102T150405") + "-" + l.Kind + "-" + hex.EncodeToString(b[:]) + ".pdf"
	tmp := filepath.Join(d.Dir, "."+name)
	if err := os.WriteFile(tmp, l.PDF, 0o600); err != nil {
		return fmt.Errorf("write letter: %w", err)
	}
	return os.Rename(tmp, filepath.Join(d.Dir, name))
}
