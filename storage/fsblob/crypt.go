package fsblob

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// On-disk format of one blob (object or multipart part):
//
//	header: magic "PBXBLOB" | version 1 | salt (32) | nonce prefix (7) | plaintext size (uint64 BE)
//	then the plaintext in segments of segSize bytes, each sealed with AES-256-GCM.
//
// This is the STREAM construction: the nonce of segment i is
// prefix | i (uint32 BE) | last-flag, so dropping, reordering or truncating
// segments fails authentication. The AES key of each blob is derived with
// HKDF from the store key, the random salt and the blob's identity (object
// key or upload ID and part number), so nonces never repeat across blobs
// and a file copied over another key's file does not decrypt.
//
// The header itself is not in the AAD: a changed salt or prefix yields the
// wrong key or nonces, and the size is pinned by the file length, which is
// a function of the size, together with the last-flag of the final segment.
const (
	segSize    = 64 << 10
	tagSize    = 16
	saltSize   = 32
	prefixSize = 7
	headerSize = len(magic) + saltSize + prefixSize + 8
	sizeOffset = headerSize - 8
)

var magic = [8]byte{'P', 'B', 'X', 'B', 'L', 'O', 'B', 1}

// ErrCorrupt is returned when a stored blob fails authentication or does
// not have the length its header promises: it was truncated, altered or
// written with another key.
var ErrCorrupt = errors.New("fsblob: stored blob is corrupt or was tampered with")

// numSegments is how many segments hold size plaintext bytes. The final
// segment holds size%segSize bytes and may be empty: then a writer can seal
// every full segment at once without knowing whether more data follows.
func numSegments(size int64) int64 {
	return size/segSize + 1
}

func fileLen(size int64) int64 {
	return int64(headerSize) + size + numSegments(size)*tagSize
}

type header struct {
	salt   [saltSize]byte
	prefix [prefixSize]byte
	size   int64
}

// etag is opaque and changes with every write, like an S3 ETag; it is
// derived from the random salt so it reveals nothing about the content.
func (h *header) etag() string { return hex.EncodeToString(h.salt[:16]) }

func (h *header) marshal() []byte {
	b := make([]byte, headerSize)
	copy(b, magic[:])
	copy(b[len(magic):], h.salt[:])
	copy(b[len(magic)+saltSize:], h.prefix[:])
	binary.BigEndian.PutUint64(b[sizeOffset:], uint64(h.size))
	return b
}

func parseHeader(b []byte) (header, error) {
	var h header
	if len(b) != headerSize || [8]byte(b[:8]) != magic {
		return h, fmt.Errorf("%w: bad header", ErrCorrupt)
	}
	copy(h.salt[:], b[len(magic):])
	copy(h.prefix[:], b[len(magic)+saltSize:])
	size := binary.BigEndian.Uint64(b[sizeOffset:])
	if size > math.MaxInt64/2 {
		return h, fmt.Errorf("%w: bad size in header", ErrCorrupt)
	}
	h.size = int64(size)
	return h, nil
}

// blobAEAD derives the per-blob key. ident names what the blob is, so a
// blob only decrypts under the identity it was written for.
func blobAEAD(secret []byte, salt []byte, ident string) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, secret, salt, "postbox fsblob v1 blob\x00"+ident, 32)
	if err != nil {
		return nil, fmt.Errorf("derive blob key: %w", err)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func segNonce(dst []byte, prefix [prefixSize]byte, i uint32, last bool) []byte {
	dst = append(dst[:0], prefix[:]...)
	dst = binary.BigEndian.AppendUint32(dst, i)
	if last {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// sealer encrypts a stream into f. Full segments are sealed as they fill;
// finish seals the rest, possibly nothing, as the final segment.
type sealer struct {
	f     *os.File
	aead  cipher.AEAD
	hdr   header
	buf   []byte // pending plaintext, at most segSize
	out   []byte
	nonce []byte
	ctr   uint32
}

func newSealer(f *os.File, secret []byte, ident string) (*sealer, error) {
	w := &sealer{f: f, buf: make([]byte, 0, segSize), out: make([]byte, 0, segSize+tagSize), nonce: make([]byte, 0, 12)}
	if _, err := rand.Read(w.hdr.salt[:]); err != nil {
		return nil, err
	}
	if _, err := rand.Read(w.hdr.prefix[:]); err != nil {
		return nil, err
	}
	aead, err := blobAEAD(secret, w.hdr.salt[:], ident)
	if err != nil {
		return nil, err
	}
	w.aead = aead
	// The size is patched in by finish; until then the file is not valid.
	if _, err := f.Write(w.hdr.marshal()); err != nil {
		return nil, err
	}
	return w, nil
}

// ReadFrom reads r into the segment buffer directly, avoiding io.Copy's
// intermediate buffer.
func (w *sealer) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		if len(w.buf) == segSize {
			if err := w.seal(false); err != nil {
				return total, err
			}
		}
		n, err := r.Read(w.buf[len(w.buf):segSize])
		w.buf = w.buf[:len(w.buf)+n]
		total += int64(n)
		w.hdr.size += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (w *sealer) seal(last bool) error {
	if !last && w.ctr == math.MaxUint32 {
		return errors.New("fsblob: blob too large")
	}
	w.nonce = segNonce(w.nonce, w.hdr.prefix, w.ctr, last)
	w.out = w.aead.Seal(w.out[:0], w.nonce, w.buf, nil)
	if _, err := w.f.Write(w.out); err != nil {
		return err
	}
	w.buf = w.buf[:0]
	w.ctr++
	return nil
}

// finish seals the final segment and records the plaintext size.
func (w *sealer) finish() error {
	// A reader that hands over its last bytes together with io.EOF can leave
	// a full buffer behind; the format wants it sealed as a middle segment,
	// followed by an empty final one (see numSegments).
	if len(w.buf) == segSize {
		if err := w.seal(false); err != nil {
			return err
		}
	}
	if err := w.seal(true); err != nil {
		return err
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(w.hdr.size))
	_, err := w.f.WriteAt(b[:], int64(sizeOffset))
	return err
}

// openBlob reads and checks the header of an open blob file. It rejects a
// file whose length does not match the header, which catches truncation
// before any plaintext is handed out.
func openBlob(f *os.File) (header, error) {
	b := make([]byte, headerSize)
	if _, err := io.ReadFull(f, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return header{}, fmt.Errorf("%w: short header", ErrCorrupt)
		}
		return header{}, err
	}
	h, err := parseHeader(b)
	if err != nil {
		return h, err
	}
	fi, err := f.Stat()
	if err != nil {
		return h, err
	}
	if fi.Size() != fileLen(h.size) {
		return h, fmt.Errorf("%w: length %d does not match header (want %d)", ErrCorrupt, fi.Size(), fileLen(h.size))
	}
	return h, nil
}

// verifyLast authenticates the final segment, which pins the size in the
// header: a blob cut at a segment boundary with a rewritten size fails here.
func verifyLast(f *os.File, aead cipher.AEAD, h header) error {
	n := numSegments(h.size)
	plainLen := h.size - (n-1)*segSize
	buf := make([]byte, plainLen+tagSize)
	if _, err := f.ReadAt(buf, int64(headerSize)+(n-1)*(segSize+tagSize)); err != nil {
		return fmt.Errorf("%w: read last segment: %v", ErrCorrupt, err)
	}
	nonce := segNonce(nil, h.prefix, uint32(n-1), true)
	if _, err := aead.Open(buf[:0], nonce, buf, nil); err != nil {
		return fmt.Errorf("%w: last segment: %v", ErrCorrupt, err)
	}
	return nil
}

// opener decrypts a blob file segment by segment. Errors are sticky: after
// a failed segment no further plaintext is returned.
type opener struct {
	ctx   context.Context
	f     *os.File
	aead  cipher.AEAD
	hdr   header
	nseg  int64
	i     int64
	in    []byte
	plain []byte
	nonce []byte
	err   error
}

func newOpener(ctx context.Context, f *os.File, aead cipher.AEAD, h header) *opener {
	return &opener{
		ctx: ctx, f: f, aead: aead, hdr: h, nseg: numSegments(h.size),
		in: make([]byte, segSize+tagSize), nonce: make([]byte, 0, 12),
	}
}

func (r *opener) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for len(r.plain) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.err = r.next()
	}
	n := copy(p, r.plain)
	r.plain = r.plain[n:]
	return n, nil
}

func (r *opener) next() error {
	if r.i == r.nseg {
		return io.EOF
	}
	if err := r.ctx.Err(); err != nil {
		return err
	}
	last := r.i == r.nseg-1
	n := segSize + tagSize
	if last {
		n = int(r.hdr.size-r.i*segSize) + tagSize
	}
	if _, err := io.ReadFull(r.f, r.in[:n]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: segment %d truncated", ErrCorrupt, r.i)
		}
		return fmt.Errorf("fsblob: read segment %d: %w", r.i, err)
	}
	r.nonce = segNonce(r.nonce, r.hdr.prefix, uint32(r.i), last)
	plain, err := r.aead.Open(r.in[:0], r.nonce, r.in[:n], nil)
	if err != nil {
		return fmt.Errorf("%w: segment %d: %v", ErrCorrupt, r.i, err)
	}
	r.plain = plain
	r.i++
	return nil
}
