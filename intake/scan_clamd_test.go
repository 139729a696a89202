//go:build integration && clamd

package intake

// Runs the real ClamAV daemon from Debian (apt-get install -y clamav-daemon)
// with a signature database made here, since no signatures can be
// downloaded: go test -tags 'integration clamd' ./intake -run RealClamd

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestRealClamd(t *testing.T) {
	bin, err := exec.LookPath("clamd")
	if err != nil {
		bin = "/usr/sbin/clamd"
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("clamd not installed (apt-get install -y clamav-daemon): %v", err)
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	if err := os.Mkdir(db, 0o755); err != nil {
		t.Fatal(err)
	}
	// An extended (.ndb) signature: the test string anywhere in any file.
	ndb := fmt.Sprintf("Postbox.Test-Signature:0:*:%s\n", hex.EncodeToString([]byte(testSignature)))
	if err := os.WriteFile(filepath.Join(db, "postbox.ndb"), []byte(ndb), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close()
	conf := fmt.Sprintf("Foreground yes\nTCPSocket %d\nTCPAddr 127.0.0.1\nDatabaseDirectory %s\nLogFile %s\nStreamMaxLength 64M\nBytecode no\n",
		addr.Port, db, filepath.Join(dir, "clamd.log"))
	confPath := filepath.Join(dir, "clamd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config-file="+confPath)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	scanner := &Clamd{Addr: addr.String(), Timeout: time.Minute}
	deadline := time.Now().Add(60 * time.Second)
	for scanner.Ping(context.Background()) != nil {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "clamd.log"))
			t.Fatalf("clamd did not answer PING: %s\n%s", out.String(), log)
		}
		time.Sleep(200 * time.Millisecond)
	}

	clean := bytes.Repeat([]byte("%PDF-1.7 Arztbrief, nichts Böses. "), 100000) // 3.4 MB
	infected := append(append([]byte(nil), clean[:2<<20]...), append([]byte(testSignature), clean[2<<20:]...)...)
	for _, tc := range []struct {
		name string
		data []byte
		want bool
	}{{"clean", clean, false}, {"infected in the middle", infected, true}} {
		res, err := scanner.Scan(context.Background(), bytes.NewReader(tc.data))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if res.Infected != tc.want || (tc.want && res.Signature != "Postbox.Test-Signature.UNOFFICIAL") {
			t.Fatalf("%s: %+v", tc.name, res)
		}
	}
}
