package notifier_test

import (
	"bytes"
	"net/mail"
	"os"
	"path/filepath"
	"testing"

	"postbox/notifier"
	"postbox/storage/storagetest"
)

// The embedded default's mail path: .eml files in a directory.
func TestEMLDirContract(t *testing.T) {
	dir := t.TempDir()
	d, err := notifier.NewEMLDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	storagetest.TestMailSender(t, d, func(t *testing.T, recipient string) [][]byte {
		files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
		var out [][]byte
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if msg, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil && msg.Header.Get("To") == recipient {
				out = append(out, raw)
			}
		}
		return out
	})
}
