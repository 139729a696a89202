package intake

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// testSignature plays EICAR: ClamAV has no signature download here, so the
// fake (and the real clamd in the integration test) flag this string.
const testSignature = "POSTBOX-TEST-SIGNATURE-EICAR-5f1d"

// fakeClamd implements the server side of clamd's INSTREAM command. reply
// overrides the verdict; hangUp closes the connection after the command.
type fakeClamd struct {
	addr     string
	mu       sync.Mutex
	reply    string
	hangUp   bool
	received [][]byte // the stream of each scan
	maxChunk int
}

func newFakeClamd(t *testing.T) *fakeClamd {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c := &fakeClamd{addr: ln.Addr().String()}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go c.serve(conn)
		}
	}()
	return c
}

func (c *fakeClamd) serve(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	cmd, err := br.ReadString(0)
	if err != nil {
		return
	}
	c.mu.Lock()
	hangUp, reply := c.hangUp, c.reply
	c.mu.Unlock()
	if hangUp {
		return
	}
	if cmd == "zPING\x00" {
		conn.Write([]byte("PONG\x00"))
		return
	}
	if cmd != "zINSTREAM\x00" {
		conn.Write([]byte("UNKNOWN COMMAND\x00"))
		return
	}
	var data []byte
	for {
		var l [4]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(l[:])
		if n == 0 {
			break
		}
		chunk := make([]byte, n)
		if _, err := io.ReadFull(br, chunk); err != nil {
			return
		}
		c.mu.Lock()
		c.maxChunk = max(c.maxChunk, int(n))
		c.mu.Unlock()
		data = append(data, chunk...)
	}
	c.mu.Lock()
	c.received = append(c.received, data)
	c.mu.Unlock()
	switch {
	case reply != "":
		conn.Write([]byte(reply + "\x00"))
	case bytes.Contains(data, []byte(testSignature)):
		conn.Write([]byte("stream: Postbox.Test-Signature FOUND\x00"))
	default:
		conn.Write([]byte("stream: OK\x00"))
	}
}

func TestClamdVerdicts(t *testing.T) {
	c := newFakeClamd(t)
	scanner := &Clamd{Addr: c.addr, ChunkSize: 1000}
	doc := bytes.Repeat([]byte("%PDF-1.7 harmless content "), 500) // 13000 bytes, 14 chunks
	infected := append(append([]byte(nil), doc...), testSignature...)
	// The signature straddles a chunk border: clamd sees the stream whole.
	straddle := append(append(bytes.Repeat([]byte("x"), 990), testSignature...), doc...)

	for _, tc := range []struct {
		name     string
		data     []byte
		infected bool
	}{
		{"clean document", doc, false},
		{"signature at the end", infected, true},
		{"signature across two chunks", straddle, true},
		{"empty stream", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := scanner.Scan(context.Background(), bytes.NewReader(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			if res.Infected != tc.infected {
				t.Fatalf("infected = %v, want %v", res.Infected, tc.infected)
			}
			if tc.infected && res.Signature != "Postbox.Test-Signature" {
				t.Fatalf("signature %q", res.Signature)
			}
			c.mu.Lock()
			got := c.received[len(c.received)-1]
			c.mu.Unlock()
			if !bytes.Equal(got, tc.data) {
				t.Fatalf("clamd received %d bytes, not the %d sent", len(got), len(tc.data))
			}
		})
	}
	if c.maxChunk > 1000 {
		t.Fatalf("chunk of %d bytes sent, ChunkSize is 1000", c.maxChunk)
	}
}

func TestClamdFailuresAreNeverClean(t *testing.T) {
	c := newFakeClamd(t)
	for _, tc := range []struct {
		name  string
		reply string
		hang  bool
		addr  string
	}{
		{"size limit", "INSTREAM size limit exceeded. ERROR", false, ""},
		{"garbage", "hello", false, ""},
		{"empty FOUND", "stream:  FOUND", false, ""},
		{"hang up", "", true, ""},
		{"nobody listening", "", false, "127.0.0.1:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.mu.Lock()
			c.reply, c.hangUp = tc.reply, tc.hang
			c.mu.Unlock()
			addr := c.addr
			if tc.addr != "" {
				addr = tc.addr
			}
			res, err := (&Clamd{Addr: addr, Timeout: 5 * time.Second}).Scan(context.Background(), strings.NewReader("%PDF-1.7 data"))
			if !errors.Is(err, ErrScanFailed) {
				t.Fatalf("result %+v, err %v; want ErrScanFailed", res, err)
			}
		})
	}
}

func TestClamdTimeout(t *testing.T) {
	// A server that accepts and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
			io.Copy(io.Discard, conn)
		}
	}()
	start := time.Now()
	_, err = (&Clamd{Addr: ln.Addr().String(), Timeout: 300 * time.Millisecond}).Scan(context.Background(), strings.NewReader("x"))
	if !errors.Is(err, ErrScanFailed) || time.Since(start) > 5*time.Second {
		t.Fatalf("err %v after %v; want ErrScanFailed once the timeout passed", err, time.Since(start))
	}
}

func TestClamdPing(t *testing.T) {
	c := newFakeClamd(t)
	if err := (&Clamd{Addr: c.addr}).Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := (&Clamd{Addr: "127.0.0.1:1"}).Ping(context.Background()); err == nil {
		t.Fatal("ping of a closed port succeeded")
	}
}
