package minio

import (
	"context"
	"fmt"
	"io"
)

// exactReader makes a declared size binding: a reader that ends early or
// has bytes beyond size fails the upload instead of storing a cut
// document. It checks for extra bytes as soon as the last declared byte is
// read, because minio-go stops reading at size on some paths. It also
// stops at once when ctx ends (minio-go fills a whole part buffer first).
type exactReader struct {
	ctx  context.Context
	r    io.Reader
	left int64 // -1: unknown size
	err  error // sticky once the size was violated
}

func newExactReader(ctx context.Context, r io.Reader, size int64) *exactReader {
	return &exactReader{ctx: ctx, r: r, left: size}
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if err := e.ctx.Err(); err != nil {
		return 0, err
	}
	if e.left < 0 {
		return e.r.Read(p)
	}
	if e.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case e.left > 0 && err == io.EOF:
		return n, fmt.Errorf("reader ended %d bytes before the declared size: %w", e.left, io.ErrUnexpectedEOF)
	case e.left == 0 && (err == nil || err == io.EOF):
		if perr := probeEOF(e.r); perr != nil {
			// Withhold the bytes: io.ReadFull drops an error that comes
			// with the last bytes it asked for.
			e.err = perr
			return 0, perr
		}
		return n, io.EOF
	}
	return n, err
}

// probeEOF reports an error unless r is at its end.
func probeEOF(r io.Reader) error {
	var one [1]byte
	n, err := io.ReadFull(r, one[:])
	if n > 0 {
		return fmt.Errorf("reader has more bytes than the declared size")
	}
	if err == io.EOF {
		return nil
	}
	return err
}
