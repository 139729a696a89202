package intake

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// ScanResult is the verdict of a virus scan.
type ScanResult struct {
	Infected  bool
	Signature string // name of what was found, e.g. "Eicar-Test-Signature"
}

// Scanner checks a document for malware. Completed uploads stay
// quarantined until a Scanner says they are clean. Without a Scanner
// (none configured) uploads are released with ScanNotScanned, which the
// list shows, so nobody mistakes them for checked files.
type Scanner interface {
	Scan(ctx context.Context, r io.Reader) (ScanResult, error)
}

// Clamd talks to a ClamAV daemon with the INSTREAM command: the document
// is sent in length-prefixed chunks, so clamd never needs file access.
type Clamd struct {
	// Addr is host:port for TCP or an absolute path for a Unix socket.
	Addr string
	// Timeout bounds the whole scan; 0 means 5 minutes.
	Timeout time.Duration
	// ChunkSize is the size of the INSTREAM chunks; 0 means 64 KiB.
	ChunkSize int
}

// ErrScanFailed wraps every error of the scanner; the upload then stays
// quarantined and is scanned again later.
var ErrScanFailed = errors.New("virus scan failed")

// Scan implements Scanner. clamd answers "stream: OK" or
// "stream: <signature> FOUND"; anything else ("... ERROR", for instance
// "INSTREAM size limit exceeded") is an error, never a clean verdict.
func (c *Clamd) Scan(ctx context.Context, r io.Reader) (ScanResult, error) {
	res, err := c.scan(ctx, r)
	if err != nil {
		return res, fmt.Errorf("%w: clamd: %w", ErrScanFailed, err)
	}
	return res, nil
}

func (c *Clamd) scan(ctx context.Context, r io.Reader) (ScanResult, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	network := "tcp"
	if strings.HasPrefix(c.Addr, "/") {
		network = "unix"
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, c.Addr)
	if err != nil {
		return ScanResult{}, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// Unblock reads and writes when the caller gives up early.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	chunk := c.ChunkSize
	if chunk <= 0 {
		chunk = 64 << 10
	}
	w := bufio.NewWriterSize(conn, chunk+4)
	if _, err := w.WriteString("zINSTREAM\x00"); err != nil {
		return ScanResult{}, err
	}
	buf := make([]byte, chunk)
	var lenBuf [4]byte
	// clamd may stop reading and answer early (size limit); the answer is
	// what counts then, so a write error falls through to reading it.
	var werr error
	for werr == nil {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			binary.BigEndian.PutUint32(lenBuf[:], uint32(n))
			if _, werr = w.Write(lenBuf[:]); werr == nil {
				_, werr = w.Write(buf[:n])
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return ScanResult{}, fmt.Errorf("read document: %w", rerr)
		}
	}
	if werr == nil {
		if _, werr = w.Write([]byte{0, 0, 0, 0}); werr == nil {
			werr = w.Flush()
		}
	}
	reply, rerr := bufio.NewReader(conn).ReadString(0)
	if rerr != nil && !(rerr == io.EOF && reply != "") {
		if werr != nil {
			return ScanResult{}, fmt.Errorf("send document: %w", werr)
		}
		if ctx.Err() != nil {
			return ScanResult{}, ctx.Err()
		}
		return ScanResult{}, fmt.Errorf("read reply: %w", rerr)
	}
	return parseClamdReply(reply)
}

func parseClamdReply(reply string) (ScanResult, error) {
	reply = strings.TrimRight(reply, "\x00\r\n")
	body, ok := strings.CutPrefix(reply, "stream: ")
	if !ok {
		return ScanResult{}, fmt.Errorf("unexpected reply %q", reply)
	}
	switch {
	case body == "OK":
		return ScanResult{}, nil
	case strings.HasSuffix(body, " FOUND"):
		sig := strings.TrimSuffix(body, " FOUND")
		if sig == "" {
			return ScanResult{}, fmt.Errorf("unexpected reply %q", reply)
		}
		return ScanResult{Infected: true, Signature: sig}, nil
	}
	return ScanResult{}, fmt.Errorf("clamd error %q", reply)
}

// Ping checks that clamd answers (for /readyz).
func (c *Clamd) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	network := "tcp"
	if strings.HasPrefix(c.Addr, "/") {
		network = "unix"
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, c.Addr)
	if err != nil {
		return fmt.Errorf("clamd: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if _, err := conn.Write([]byte("zPING\x00")); err != nil {
		return fmt.Errorf("clamd: %w", err)
	}
	reply, err := bufio.NewReader(conn).ReadBytes(0)
	if err != nil && !(err == io.EOF && len(reply) > 0) {
		return fmt.Errorf("clamd: %w", err)
	}
	if !bytes.Equal(bytes.TrimRight(reply, "\x00\n"), []byte("PONG")) {
		return fmt.Errorf("clamd: unexpected reply %q", reply)
	}
	return nil
}
