package intake

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"
	"sync"

	"postbox/audit"
	"postbox/kasse"
)

// How bytes travel from a PATCH body into the blob store:
//
// A multipart part must have at least MinPartSize bytes unless it is the
// last, but tus chunks have any size. Bytes that do not fill a part yet are
// written as staging segments (separate small blobs). The next piece that
// reaches MinPartSize becomes a part made of the staging segments followed
// by the new body bytes, streamed, never assembled in memory. A chunk of at
// least MinPartSize with no staging goes straight from the request body into
// PutPart. Large bodies are cut into parts of PartSize. The multipart upload
// is created with the first part; a file that arrives whole in one piece of
// at most PartSize is written as its object in one Put instead.
//
// After every piece the upload row is updated (offset, parts, staging and
// the SHA-256 state), so a broken connection or a crashed replica loses at
// most the piece in flight, and the next request may go to any replica.
// With Upload-Checksum the chunk must be applied whole or not at all: its
// pieces are written but the row is updated once, after the checksum
// matched; parts written for a refused chunk are overwritten by the retry
// and left out of the completion, its staging segments are deleted.

// bufPool holds the buffers for bodies of unknown length (chunked
// requests), the only case where a piece's size is not known in advance.
var bufPool = sync.Pool{New: func() any { b := make([]byte, MinPartSize); return &b }}

// bodyReader remembers whether reading the request body failed or ended
// before its declared length: the client went away, which is not a
// storage error.
type bodyReader struct {
	r    io.Reader
	want int64 // declared length, -1 unknown
	got  int64
	err  error
	eof  bool
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	n, err := b.r.Read(p)
	b.got += int64(n)
	// Hand out EOF on its own: fasthttp returns the last bytes together
	// with io.EOF, and a blob store must not have to handle that case
	// (fsblob's sealer miscounts its final segment when a read that fills a
	// segment also reports EOF).
	if n > 0 && err == io.EOF {
		if b.want >= 0 && b.got < b.want {
			err = io.ErrUnexpectedEOF
		} else {
			b.eof = true
			return n, nil
		}
	}
	if err == io.EOF && b.want >= 0 && b.got < b.want {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// writer applies one request body to a locked upload.
type writer struct {
	h        *TusHandler
	r        *TusRequest
	u        *Upload
	owner    string
	settings kasse.Settings
	ck       *checksum // nil: commit after every piece
	sum      hash.Hash
	body     *bodyReader
	src      io.Reader // body as read: through the hashes
	// newStaging are segments written by this request and not committed
	// (checksum mode); dropped are committed segments a part consumed.
	newStaging []StagingSegment
	dropped    []StagingSegment
	committed  Upload // u as the store has it
}

func restoreHash(state []byte) (hash.Hash, error) {
	s := sha256.New()
	if len(state) == 0 {
		return s, nil
	}
	if err := s.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		return nil, fmt.Errorf("restore sha-256 state: %w", err)
	}
	return s, nil
}

func marshalHash(s hash.Hash) []byte {
	b, err := s.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic(err) // crypto/sha256 always marshals
	}
	return b
}

// write applies r's body to u, which the caller holds under owner. It
// leaves u as committed: on return u.Offset is what the store recorded.
func (h *TusHandler) write(ctx context.Context, r *TusRequest, u *Upload, owner string, s kasse.Settings, ck *checksum) error {
	sum, err := restoreHash(u.HashState)
	if err != nil {
		return err
	}
	w := &writer{h: h, r: r, u: u, owner: owner, settings: s, ck: ck, sum: sum, body: &bodyReader{r: r.Body, want: r.ContentLength}}
	var body io.Reader = w.body
	n := r.ContentLength
	if n >= 0 {
		body = io.LimitReader(body, n)
	} else if u.Length >= 0 {
		// Chunked body: read at most what the upload still lacks plus one
		// byte, which tells a too long body apart.
		body = io.LimitReader(body, u.Length-u.Offset+1)
	} else {
		// Chunked body of an upload of deferred length: at most the
		// tenant's file size limit (plus one byte to notice more).
		body = io.LimitReader(body, s.MaxFileBytes-u.Offset+1)
	}
	if u.Kind != KindPartial && u.DetectedType == "" {
		br := bufio.NewReaderSize(body, 4096)
		body = br
		if err := w.detect(ctx, br, n); err != nil {
			return err
		}
	}
	if ck != nil {
		w.src = io.TeeReader(body, io.MultiWriter(sum, ck.h))
	} else {
		w.src = io.TeeReader(body, sum)
	}
	w.committed = *u
	err = w.pump(ctx, n)
	if err != nil {
		w.discard(ctx, w.committed)
		if w.body.err != nil {
			return errClientGone
		}
		return err
	}
	if ck != nil {
		if !bytes.Equal(ck.h.Sum(nil), ck.want) {
			w.discard(ctx, w.committed)
			return errChecksum
		}
		if err := w.commit(ctx); err != nil {
			return err
		}
	}
	if u.Length >= 0 && u.Offset == u.Length {
		return w.finish(ctx)
	}
	return nil
}

// discard forgets what this request wrote but did not commit. In checksum
// mode that is the whole chunk; otherwise only the piece in flight.
func (w *writer) discard(ctx context.Context, committed Upload) {
	if w.ck != nil {
		*w.u = committed
		for _, s := range w.newStaging {
			if err := w.h.cfg.Blobs.Delete(context.WithoutCancel(ctx), s.Key); err != nil {
				w.h.cfg.Logger.Warn("delete staging blob", "upload_id", w.u.ID, "err", err)
			}
		}
	}
}

// detect checks the type of the file once its first SniffLen bytes (or
// all of a shorter file) are there. Until then the bytes go to staging and
// the check waits for the next chunk.
func (w *writer) detect(ctx context.Context, br *bufio.Reader, n int64) error {
	u := w.u
	need := int64(SniffLen)
	if u.Length >= 0 && u.Length < need {
		need = u.Length
	}
	head, err := w.stagedHead(ctx)
	if err != nil {
		return err
	}
	want := need - int64(len(head))
	if n >= 0 && want > n {
		want = n
	}
	if want > 0 {
		peek, err := br.Peek(int(want))
		if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
			if w.body.err != nil {
				return errClientGone
			}
			return err
		}
		head = append(head, peek...)
	}
	if int64(len(head)) < need {
		return nil // not enough yet
	}
	return w.decide(ctx, head)
}

// stagedHead reads the bytes already staged while the type is undecided:
// fewer than SniffLen, all in staging (parts hold at least MinPartSize).
func (w *writer) stagedHead(ctx context.Context) ([]byte, error) {
	sr := stagingReader(ctx, w.h.cfg.Blobs, w.u.Staging)
	defer sr.close()
	head, err := io.ReadAll(io.LimitReader(sr, SniffLen))
	if err != nil {
		return nil, fmt.Errorf("read staging: %w", err)
	}
	return head, nil
}

// decide runs the content check; a refused file is rejected for good.
func (w *writer) decide(ctx context.Context, head []byte) error {
	mime, err := CheckContent(head, w.u.Filename, w.settings.AllowedFileTypes)
	var ce *ContentError
	if errors.As(err, &ce) {
		return w.h.reject(ctx, w.r, w.u, w.owner, ce)
	}
	if err != nil {
		return err
	}
	w.u.DetectedType = mime
	return nil
}

// reject drops a refused upload's bytes and marks it, so later requests
// answer 410 and the refusal is audited.
func (h *TusHandler) reject(ctx context.Context, r *TusRequest, u *Upload, owner string, ce *ContentError) error {
	if err := h.dropBlobs(ctx, u); err != nil {
		return err
	}
	u.Status = StatusRejected
	u.DetectedType = ce.Detected
	u.Staging = nil
	u.UpdatedAt = h.now()
	ev := h.event(r, "intake.upload.rejected", u, audit.OutcomeDenied, map[string]any{"reason": "content_type", "type": ce.Detected})
	if err := h.cfg.Store.SaveUpload(ctx, *u, owner, ev); err != nil {
		return err
	}
	return errFileType(ce)
}

// pump moves the body into parts and staging segments.
func (w *writer) pump(ctx context.Context, n int64) error {
	u := w.u
	if n >= 0 {
		left := n
		for left > 0 {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			staged := u.stagingSize()
			ends := u.Length >= 0 && u.Offset+left == u.Length
			total := staged + left
			var err error
			if total >= MinPartSize || ends {
				take := min(total, w.h.cfg.PartSize) - staged
				err = w.putPart(ctx, w.src, take)
				left -= take
			} else {
				err = w.putStaging(ctx, w.src, left)
				left = 0
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	// Unknown length: read a buffer's worth at a time.
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		k, rerr := io.ReadFull(w.src, buf)
		if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			return rerr
		}
		if k == 0 {
			return nil
		}
		eof := rerr != nil
		if u.Length >= 0 && u.Offset+int64(k) > u.Length {
			return errOverLength // nothing of this buffer is stored
		}
		if u.Length < 0 && u.Offset+int64(k) > w.settings.MaxFileBytes {
			return errFileTooLarge(w.settings.MaxFileBytes)
		}
		staged := u.stagingSize()
		ends := u.Length >= 0 && u.Offset+int64(k) == u.Length
		var err error
		if staged+int64(k) >= MinPartSize || ends {
			err = w.putPart(ctx, bytes.NewReader(buf[:k]), int64(k))
		} else {
			err = w.putStaging(ctx, bytes.NewReader(buf[:k]), int64(k))
		}
		if err != nil || eof {
			return err
		}
	}
}

// putPart writes the next part: all staging segments, then take bytes of src.
func (w *writer) putPart(ctx context.Context, src io.Reader, take int64) error {
	u := w.u
	staged := u.stagingSize()
	var r io.Reader = io.LimitReader(src, take)
	if u.MultipartID == "" && len(u.Parts) == 0 && staged == 0 && u.Offset == 0 && take == u.Length && take <= w.h.cfg.PartSize {
		return w.putWhole(ctx, r, take)
	}
	if len(u.Staging) > 0 {
		sr := stagingReader(ctx, w.h.cfg.Blobs, u.Staging)
		defer sr.close()
		r = io.MultiReader(sr, r)
	}
	if err := w.ensureMultipart(ctx); err != nil {
		return err
	}
	num := len(u.Parts) + 1
	p, err := w.h.cfg.Blobs.PutPart(ctx, u.BlobKey, u.MultipartID, num, r, staged+take)
	if err != nil {
		return fmt.Errorf("put part %d: %w", num, err)
	}
	u.Parts = append(u.Parts, StoredPart{Number: p.Number, ETag: p.ETag, Size: p.Size})
	w.dropped = append(w.dropped, u.Staging...)
	u.Staging = nil
	u.Offset += take
	return w.pieceDone(ctx)
}

// putWhole writes a file that arrives whole in one piece straight as its
// object: one PUT instead of creating, filling and completing a multipart
// upload (a round trip less per file, and the server has nothing to join).
func (w *writer) putWhole(ctx context.Context, r io.Reader, size int64) error {
	u := w.u
	info, err := w.h.cfg.Blobs.Put(ctx, u.BlobKey, r, size)
	if err != nil {
		return fmt.Errorf("put object: %w", err)
	}
	u.Parts = []StoredPart{{Number: 0, ETag: info.ETag, Size: size}}
	u.Offset += size
	// The file is complete: finish records it in one write (after the
	// checksum, if any). Until then the row still says offset 0, so a
	// failure in between makes the client send the file again.
	u.HashState = marshalHash(w.sum)
	return nil
}

// ensureMultipart creates the upload's multipart upload before its first
// part and records its ID at once, with the upload's committed state, so a
// crash before the part's commit leaves nothing the cleanup cannot find.
func (w *writer) ensureMultipart(ctx context.Context) error {
	if w.u.MultipartID != "" {
		return nil
	}
	id, err := w.h.cfg.Blobs.CreateMultipart(ctx, w.u.BlobKey)
	if err != nil {
		return fmt.Errorf("create multipart: %w", err)
	}
	c := w.committed
	c.MultipartID = id
	if err := w.h.cfg.Store.SaveUpload(context.WithoutCancel(ctx), c, w.owner); err != nil {
		if aerr := w.h.cfg.Blobs.AbortMultipart(context.WithoutCancel(ctx), w.u.BlobKey, id); aerr != nil {
			w.h.cfg.Logger.Warn("abort multipart upload", "upload_id", w.u.ID, "err", aerr)
		}
		return err
	}
	w.committed.MultipartID = id
	w.u.MultipartID = id
	return nil
}

// putStaging keeps k bytes of src as a staging segment; when there are
// many segments already they are merged into the new one.
func (w *writer) putStaging(ctx context.Context, src io.Reader, k int64) error {
	u := w.u
	var r io.Reader = io.LimitReader(src, k)
	size := k
	merge := len(u.Staging) >= maxStagingSegments
	if merge {
		sr := stagingReader(ctx, w.h.cfg.Blobs, u.Staging)
		defer sr.close()
		r = io.MultiReader(sr, r)
		size += u.stagingSize()
	}
	seq := u.StagingSeq + 1
	seg := StagingSegment{Key: StagingKey(u.TenantID, u.ID, seq), Size: size}
	if _, err := w.h.cfg.Blobs.Put(ctx, seg.Key, r, size); err != nil {
		return fmt.Errorf("put staging: %w", err)
	}
	u.StagingSeq = seq
	if merge {
		w.dropped = append(w.dropped, u.Staging...)
		u.Staging = nil
	}
	u.Staging = append(u.Staging, seg)
	w.newStaging = append(w.newStaging, seg)
	u.Offset += k
	return w.pieceDone(ctx)
}

func (w *writer) pieceDone(ctx context.Context) error {
	w.u.HashState = marshalHash(w.sum)
	if w.ck != nil {
		return nil // committed once the checksum matched
	}
	return w.commit(ctx)
}

// commit records the upload's state under the lock, then deletes the
// staging segments the new state no longer needs.
func (w *writer) commit(ctx context.Context, events ...audit.Event) error {
	u := w.u
	now := w.h.now()
	u.UpdatedAt = now
	if u.Status == StatusUploading {
		u.ExpiresAt = now.Add(w.h.lifetime(w.settings))
	}
	// Saving must not be skipped because the client left: the bytes are stored.
	if err := w.h.cfg.Store.SaveUpload(context.WithoutCancel(ctx), *u, w.owner, events...); err != nil {
		return err
	}
	w.committed = *u
	w.newStaging = nil
	for _, s := range w.dropped {
		if err := w.h.cfg.Blobs.Delete(context.WithoutCancel(ctx), s.Key); err != nil {
			w.h.cfg.Logger.Warn("delete staging blob", "upload_id", u.ID, "err", err)
		}
	}
	w.dropped = nil
	return nil
}

// finish turns a fully received upload into its object: flush staging as
// the last part, check the type if still undecided, record "completing"
// with the SHA-256, assemble, then scan.
func (w *writer) finish(ctx context.Context) error {
	u := w.u
	if u.Kind != KindPartial && u.DetectedType == "" {
		head, err := w.stagedHead(ctx)
		if err != nil {
			return err
		}
		if err := w.decide(ctx, head); err != nil {
			return err
		}
	}
	if len(u.Staging) > 0 {
		w.ck = nil // the chunk is committed; this piece commits itself
		if err := w.putPart(ctx, bytes.NewReader(nil), 0); err != nil {
			return err
		}
	}
	if len(u.Parts) == 0 {
		return errEmpty
	}
	u.SHA256 = hex.EncodeToString(w.sum.Sum(nil))
	if u.wholeObject() {
		// Nothing to assemble, so no "completing" state to recover from.
		return w.h.complete(ctx, w.r, u, w.owner, w.settings)
	}
	u.Status = StatusCompleting
	if err := w.commit(ctx); err != nil {
		return err
	}
	return w.h.complete(ctx, w.r, u, w.owner, w.settings)
}

// complete assembles the multipart upload of a "completing" upload and
// releases or quarantines it. It is idempotent: RecoverStalled calls it
// for uploads whose replica died here. s are the tenant's settings.
func (h *TusHandler) complete(ctx context.Context, r *TusRequest, u *Upload, owner string, s kasse.Settings) error {
	parts := make([]Part, len(u.Parts))
	var total int64
	for i, p := range u.Parts {
		parts[i] = Part{Number: p.Number, ETag: p.ETag, Size: p.Size}
		total += p.Size
	}
	if total != u.Length {
		return fmt.Errorf("upload %s: parts hold %d bytes, length is %d", u.ID, total, u.Length)
	}
	var info BlobInfo
	var err error
	if u.wholeObject() {
		info = BlobInfo{Key: u.BlobKey, Size: total}
	} else {
		info, err = h.cfg.Blobs.CompleteMultipart(ctx, u.BlobKey, u.MultipartID, parts)
	}
	if errors.Is(err, ErrBlobNotFound) {
		// Completed before a crash: the object is there.
		info, err = h.cfg.Blobs.Stat(ctx, u.BlobKey)
	}
	if err != nil {
		return fmt.Errorf("complete multipart: %w", err)
	}
	if info.Size != u.Length {
		return fmt.Errorf("upload %s: object has %d bytes, length is %d", u.ID, info.Size, u.Length)
	}
	u.CompletedAt = h.now()
	u.Parts, u.Staging = nil, nil
	u.HashState = nil
	switch {
	case u.Kind == KindPartial:
		u.Status = StatusComplete
	case h.cfg.Scanner == nil:
		u.Status, u.ScanStatus = StatusComplete, ScanNotScanned
	default:
		u.Status, u.ScanStatus = StatusQuarantined, ScanPending
	}
	// A completed upload waits for its submission as long as an unfinished one.
	u.UpdatedAt = u.CompletedAt
	u.ExpiresAt = u.CompletedAt.Add(h.lifetime(s))
	var events []audit.Event
	if u.Kind != KindPartial {
		events = append(events, h.event(r, "intake.upload.completed", u, audit.OutcomeSuccess,
			map[string]any{"size": u.Length, "type": u.DetectedType, "scan": string(u.ScanStatus)}))
	}
	if err := h.cfg.Store.SaveUpload(context.WithoutCancel(ctx), *u, owner, events...); err != nil {
		return err
	}
	if u.Status == StatusQuarantined {
		return h.scan(ctx, r, u, owner)
	}
	return nil
}

// scan runs the virus scan of a quarantined upload. A scanner failure
// leaves it quarantined (RecoverStalled retries); malware deletes the
// object and marks the upload infected.
func (h *TusHandler) scan(ctx context.Context, r *TusRequest, u *Upload, owner string) error {
	sctx, cancel := context.WithTimeout(ctx, h.cfg.ScanTimeout)
	defer cancel()
	rc, _, err := h.cfg.Blobs.Get(sctx, u.BlobKey)
	if err != nil {
		return fmt.Errorf("read for scan: %w", err)
	}
	res, err := h.cfg.Scanner.Scan(sctx, rc)
	rc.Close()
	if err != nil {
		h.cfg.Logger.Warn("virus scan failed; upload stays quarantined", "upload_id", u.ID, "err", err)
		return nil
	}
	u.UpdatedAt = h.now()
	if res.Infected {
		if err := h.cfg.Blobs.Delete(ctx, u.BlobKey); err != nil {
			return fmt.Errorf("delete infected object: %w", err)
		}
		u.Status, u.ScanStatus, u.ScanSignature = StatusInfected, ScanInfected, res.Signature
		ev := h.event(r, "intake.upload.infected", u, audit.OutcomeDenied, map[string]any{"signature": res.Signature})
		if err := h.cfg.Store.SaveUpload(context.WithoutCancel(ctx), *u, owner, ev); err != nil {
			return err
		}
		h.cfg.Logger.Warn("malware found in upload; object deleted", "upload_id", u.ID, "signature", res.Signature)
		return errInfected
	}
	u.Status, u.ScanStatus = StatusComplete, ScanClean
	ev := h.event(r, "intake.upload.scanned", u, audit.OutcomeSuccess, map[string]any{"result": "clean"})
	return h.cfg.Store.SaveUpload(context.WithoutCancel(ctx), *u, owner, ev)
}

// createFinal handles POST with "Upload-Concat: final;...": the partial
// uploads (complete, the caller's) are joined in order into a new upload,
// which is checked like any other file. The partials are consumed.
func (h *TusHandler) createFinal(ctx context.Context, r *TusRequest, s kasse.Settings, list string) (*TusResponse, error) {
	if r.Header("Upload-Length") != "" {
		return nil, errBadRequest("Eine zusammengesetzte Datei hat keine eigene „Upload-Length“.")
	}
	var ids []string
	for _, ref := range strings.Fields(list) {
		ref = strings.TrimRight(ref, "/")
		id := ref[strings.LastIndexByte(ref, '/')+1:]
		if !validID(id) {
			return nil, errNotFound
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil, errBadRequest("„Upload-Concat: final“ nennt keine Teil-Uploads.")
	}
	owner := newID()
	now := h.now()
	var partials []*Upload
	var total int64
	seen := map[string]bool{}
	for _, id := range ids {
		pr := *r
		pr.ID = id
		p, err := h.load(ctx, &pr)
		if err != nil {
			return nil, err
		}
		if p.Kind != KindPartial {
			return nil, errBadRequest("Nur Teil-Uploads („Upload-Concat: partial“) können zusammengesetzt werden.")
		}
		if p.Status != StatusComplete {
			return nil, problem(http.StatusBadRequest, "upload-teil-unvollstaendig", "Teil-Upload unvollständig",
				"Ein Teil der Datei ist noch nicht vollständig hochgeladen. Bitte warten Sie, bis alle Teile übertragen sind.")
		}
		total += p.Length
		if seen[id] {
			partials = append(partials, p) // same part twice is allowed; lock once
			continue
		}
		seen[id] = true
		locked, err := h.cfg.Store.LockUpload(ctx, p.TenantID, p.PersonID, p.ID, owner, now.Add(h.cfg.LockTTL), now)
		if errors.Is(err, ErrUploadLocked) {
			return nil, h.errLocked()
		}
		if err != nil {
			return nil, err
		}
		// Keep the partial's lease while its bytes are copied.
		_, rel := h.hold(ctx, id, owner)
		defer rel()
		if locked.Status != StatusComplete {
			return nil, errGone(&locked)
		}
		partials = append(partials, &locked)
	}
	if total > s.MaxFileBytes {
		return nil, errFileTooLarge(s.MaxFileBytes)
	}
	rawMeta := r.Header("Upload-Metadata")
	meta, err := ParseMetadata(rawMeta)
	if err != nil {
		return nil, errBadRequest("Die Kopfzeile „Upload-Metadata“ ist ungültig (Schlüssel und Base64-Werte, durch Kommas getrennt).")
	}
	filename := CleanFilename(meta["filename"])
	declared := cleanType(meta["filetype"])
	u := Upload{
		ID: newID(), TenantID: r.Principal.TenantID, PersonID: r.Principal.PersonID, Kind: KindFinal, Status: StatusUploading,
		Length: total, Metadata: rawMeta, Filename: filename, DeclaredType: declared, Concat: ids,
		IdempotencyKey: r.idemKey, IdempotencyDigest: r.idemDigest,
		CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(h.lifetime(s)), LockOwner: owner, LockUntil: now.Add(h.cfg.LockTTL),
	}
	u.BlobKey = BlobKey(u.TenantID, u.ID)
	if err := CheckDeclared(filename, declared, s.AllowedFileTypes); err != nil {
		var ce *ContentError
		if errors.As(err, &ce) {
			return nil, errFileType(ce)
		}
		return nil, err
	}
	q := UploadQuota{MaxSubmissionBytes: s.MaxSubmissionBytes, MaxFiles: s.MaxFilesPerUpload, Exclude: ids}
	created := h.event(r, "intake.upload.created", &u, audit.OutcomeSuccess, map[string]any{"length": total, "kind": string(KindFinal), "parts": len(ids)})
	if err := h.cfg.Store.CreateUpload(ctx, u, q, created); err != nil {
		h.abortBlobs(&u)
		if resp, ok, err := h.replayTaken(ctx, r, err); ok {
			return resp, err
		}
		var qe *QuotaError
		if errors.As(err, &qe) {
			return nil, errQuota(qe)
		}
		return nil, err
	}
	hctx, release := h.hold(ctx, u.ID, owner)
	defer release()
	joined, werr := h.joinInStore(hctx, r, &u, owner, s, partials)
	if !joined {
		cr := *r
		cr.Body = partialsReader(hctx, h.cfg.Blobs, partials)
		cr.ContentLength = total
		werr = h.write(hctx, &cr, &u, owner, s, nil)
	}
	if errors.Is(werr, errClientGone) {
		// The "body" is our own storage here, not a client.
		werr = errors.New("read partial uploads for concatenation")
	}
	var te *tusError
	if werr != nil && !(errors.As(werr, &te) && (te == errInfected || te.status == http.StatusUnsupportedMediaType)) {
		h.dropFailedJoin(ctx, r, &u, owner)
		return nil, werr
	}
	// Joined (or refused for good): the partials are used up either way.
	for id := range seen {
		for _, p := range partials {
			if p.ID != id || p.Status != StatusComplete {
				continue
			}
			if err := h.cfg.Blobs.Delete(hctx, p.BlobKey); err != nil {
				h.cfg.Logger.Warn("delete joined partial", "upload_id", p.ID, "err", err)
			}
			p.Status = StatusConsumed
			p.UpdatedAt = h.now()
			if err := h.cfg.Store.SaveUpload(context.WithoutCancel(ctx), *p, owner); err != nil {
				return nil, err
			}
			break
		}
	}
	if werr != nil {
		return nil, werr
	}
	resp := &TusResponse{Status: http.StatusCreated}
	resp.set("Location", h.location(u.ID))
	return resp, nil
}

// joinInStore joins the partials inside the blob store when it can copy
// parts and every partial but the last fills a part: each becomes one part
// of the final object by a server-side copy, and postbox reads the bytes
// once, for the type check and the SHA-256, instead of reading them and
// writing them again. joined is false when it did not apply (nothing was
// done; the caller streams the bytes instead).
func (h *TusHandler) joinInStore(ctx context.Context, r *TusRequest, u *Upload, owner string, s kasse.Settings, partials []*Upload) (joined bool, err error) {
	pc, ok := h.cfg.Blobs.(PartCopier)
	if !ok || u.Length < SniffLen {
		return false, nil
	}
	for i, p := range partials {
		if p.Length > MaxCopyPartSize || p.Length < 1 || i < len(partials)-1 && p.Length < MinPartSize {
			return false, nil
		}
	}
	w := &writer{h: h, r: r, u: u, owner: owner, settings: s, sum: sha256.New(), committed: *u}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr := partialsReader(ctx, h.cfg.Blobs, partials)
	defer pr.close()
	br := bufio.NewReaderSize(pr, 4096)
	head, err := br.Peek(SniffLen)
	if err != nil {
		return true, fmt.Errorf("read partial uploads: %w", err)
	}
	if err := w.decide(ctx, head); err != nil {
		return true, err
	}
	if err := w.ensureMultipart(ctx); err != nil {
		return true, err
	}
	// Hash while the store copies: both read the same partials.
	hashed := make(chan error, 1)
	go func() {
		n, err := io.Copy(w.sum, br)
		if err == nil && n != u.Length {
			err = fmt.Errorf("partial uploads hold %d bytes, recorded %d", n, u.Length)
		}
		hashed <- err
	}()
	// A few copies at once: the store copies each on one core.
	parts := make([]StoredPart, len(partials))
	errs := make([]error, len(partials))
	sem := make(chan struct{}, joinCopies)
	var wg sync.WaitGroup
	for i, p := range partials {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			part, err := pc.CopyPart(ctx, u.BlobKey, u.MultipartID, i+1, p.BlobKey, p.Length)
			if err != nil {
				errs[i] = fmt.Errorf("copy partial upload %s: %w", p.ID, err)
				cancel()
				return
			}
			parts[i] = StoredPart{Number: part.Number, ETag: part.ETag, Size: part.Size}
		}()
	}
	wg.Wait()
	copyErr := errors.Join(errs...)
	if herr := <-hashed; copyErr == nil && herr != nil {
		copyErr = fmt.Errorf("hash partial uploads: %w", herr)
	}
	if copyErr != nil {
		return true, copyErr
	}
	u.Parts = parts
	u.Offset = u.Length
	u.SHA256 = hex.EncodeToString(w.sum.Sum(nil))
	u.Status = StatusCompleting
	if err := w.commit(ctx); err != nil {
		return true, err
	}
	return true, h.complete(ctx, r, u, owner, s)
}

// dropFailedJoin ends a final upload whose join failed. It can never take
// bytes (a final upload is not PATCHed), so it would stand in the person's
// list at 0 % and count against the file limit until it expired. The
// partials stay complete; the client sends the join again. If its blobs
// cannot be dropped now (the store is down), the row stays for the expiry
// cleanup, which drops them later.
func (h *TusHandler) dropFailedJoin(ctx context.Context, r *TusRequest, u *Upload, owner string) {
	err := h.end(context.WithoutCancel(ctx), r, u, owner, audit.OutcomeFailure, map[string]any{"reason": "join_failed"})
	if err != nil {
		h.cfg.Logger.Warn("end a failed join", "upload_id", u.ID, "err", err)
	}
}

// joinCopies is how many partials joinInStore has the store copy at once.
const joinCopies = 4
