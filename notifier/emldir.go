package notifier

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
)

// EMLDir is the embedded default's "mail server": each mail becomes a .eml
// file in a directory, named after its Message-ID, so sending the same
// notification twice leaves one file.
type EMLDir struct{ dir string }

// NewEMLDir creates the directory if needed.
func NewEMLDir(dir string) (*EMLDir, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mail dir: %w", err)
	}
	return &EMLDir{dir: dir}, nil
}

// Path is where the mail with this Message-ID is written.
func (d *EMLDir) Path(messageID string) string {
	sum := sha256.Sum256([]byte(messageID))
	return filepath.Join(d.dir, hex.EncodeToString(sum[:12])+".eml")
}

// Send writes the mail atomically (temp file + rename).
func (d *EMLDir) Send(ctx context.Context, m Mail) error {
	raw, err := m.Bytes()
	if err != nil {
		return err
	}
	dst := d.Path(m.MessageID)
	if _, err := os.Stat(dst); err == nil {
		return nil // already delivered
	}
	tmp, err := os.CreateTemp(d.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("write mail: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return fmt.Errorf("write mail: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write mail: %w", err)
	}
	return os.Rename(tmp.Name(), dst)
}

// Ping checks the directory is writable.
func (d *EMLDir) Ping(ctx context.Context) error {
	f, err := os.CreateTemp(d.dir, ".ping-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// Delivered reports whether the mail with this Message-ID was written, so
// a job interrupted after writing is not written again.
func (d *EMLDir) Delivered(ctx context.Context, m Mail) (bool, error) {
	_, err := os.Stat(d.Path(m.MessageID))
	if err == nil {
		return true, nil
	}
	if os.IsNotExist(err) {
		return false, nil
	}
	return false, err
}
