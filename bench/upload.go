package bench

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/encrypt"
	"github.com/minio/minio-go/v7/pkg/sse"
)

//go:embed peer/tus-s3.mjs
var peerScript []byte

const (
	kib = int64(1) << 10
	mib = int64(1) << 20
	gib = int64(1) << 30
)

// source hands out size bytes cycling through a 64 MiB random block that
// starts like a PDF: cheap to produce, the same for every contender, and
// not compressible.
type source struct {
	pos  int
	left int64
}

var (
	blockOnce sync.Once
	block     []byte
)

// Data is size bytes of upload data as every contender of the upload
// benchmark gets it.
func Data(size int64) io.Reader { return newSource(size) }

func newSource(size int64) *source {
	blockOnce.Do(func() {
		block = make([]byte, 64<<20)
		rand.NewChaCha8([32]byte{42}).Read(block)
		copy(block, "%PDF-1.7\n")
	})
	return &source{left: size}
}

// newSourceAt hands out the n bytes that a source of a larger file has at
// offset off: the parts of one file sent on several streams.
func newSourceAt(off, n int64) *source {
	s := newSource(n)
	s.pos = int(off % int64(len(block)))
	return s
}

func (s *source) Read(p []byte) (int, error) {
	if s.left == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), s.left)]
	n := copy(p, block[s.pos:])
	s.pos = (s.pos + n) % len(block)
	s.left -= int64(n)
	return n, nil
}

// workload is a set of files sent by some streams in parallel, each
// stream taking the next file until all are sent.
type workload struct {
	name    string
	files   int
	size    int64
	streams int
	chunk   int64
	// split > 1: the one file goes in split parts on as many streams (see
	// uploadPoint).
	split int
}

func (w workload) bytes() int64 { return int64(w.files) * w.size }

// The peer runs at 17–43 MiB/s with 1 MiB chunks; the full workloads would
// take it over 2.5 minutes per run, more than the 20 minutes allow. With
// chunks below minPeerFullChunk it sends 1/peerShare of the bytes: that
// share of the files, or of the file's size. Its throughput is a rate, so
// the ratio stays comparable; the smaller file, if anything, favours the
// peer (@tus/s3-store lists all parts on every PATCH).
const (
	minPeerFullChunk = 5 << 20
	peerShare        = 4
)

// share is the same workload with 1/n of its bytes, under the same name.
func (w workload) share(n int) workload {
	if w.files >= n {
		w.files /= n
	} else {
		w.size /= int64(n)
	}
	return w
}

// parallel sends w's files through send on w.streams goroutines and
// returns the wall time.
func parallel(ctx context.Context, w workload, send func(ctx context.Context, i int) error) (time.Duration, error) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		next int
		errs []error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t0 := time.Now()
	for range w.streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= w.files {
					return
				}
				if err := send(ctx, i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(t0)
	if len(errs) > 0 {
		return d, errs[0]
	}
	return d, ctx.Err()
}

// wholeFile as a chunk size sends each file in one PATCH, as tus-js-client
// and Uppy do unless told otherwise.
const wholeFile = 0

// noChunks keys the direct PutObject, which has no tus chunks.
const noChunks = -1

// chunkLabel names a tus chunk size.
func chunkLabel(c int64) string {
	switch c {
	case wholeFile:
		return "one PATCH per file"
	case noChunks:
		return "no chunks"
	}
	return "chunk " + sizeLabel(c)
}

// uploadPoint is one cell of the matrix: a workload (files, size,
// streams) sent in each of some chunk sizes by postbox and the peer, and
// once by the direct PutObject.
type uploadPoint struct {
	w      workload
	chunks []int64
	// directParts, when set, adds a direct PutObject with parts of this
	// size: what MinIO itself does with parts as small as the chunks.
	directParts int64
	// directObjects, when set, adds the direct writing of the same bytes
	// as objects of this size, one after the other: what any tus server
	// must at least do to store each chunk of this size before it answers
	// (S3 parts need 5 MiB, so smaller chunks cannot be parts).
	directObjects int64
}

// uploadPlan is the matrix; see the note it records for the choice.
type uploadPlan struct {
	points []uploadPoint
	huge   workload // postbox only, for the memory check
}

// bigSize is the largest single-file workload's size: its peak RSS is
// what the huge file's is compared with.
func (p uploadPlan) bigSize() int64 {
	var n int64
	for _, pt := range p.points {
		if pt.w.files == 1 {
			n = max(n, pt.w.size)
		}
	}
	return n
}

func (r *run) uploadPlan() uploadPlan {
	wl := func(files int, size int64, streams int) workload {
		w := workload{files: files, size: size, streams: streams}
		w.name = workloadLabel(w)
		return w
	}
	// One file on 8 streams: postbox gets it as 8 partial uploads joined
	// by tus concatenation (tus-js-client's parallelUploads), direct as one
	// multipart upload with 8 parts sent at once; the peer's store has no
	// concatenation, so it gets the same bytes as 8 files.
	split := func(size int64, parts int) workload {
		return workload{name: sizeLabel(size), files: 1, size: size, streams: parts, split: parts}
	}
	if r.opts.Quick {
		return uploadPlan{points: []uploadPoint{
			{w: wl(8, mib, 1), chunks: []int64{wholeFile, 5 * mib, mib / 2}},
			{w: wl(8, mib, 8), chunks: []int64{5 * mib, mib / 2}},
			{w: wl(1, 12*mib, 1), chunks: []int64{wholeFile, 5 * mib, mib}, directParts: 5 * mib, directObjects: mib},
			{w: split(12*mib, 2), chunks: []int64{5 * mib, mib}},
		}, huge: wl(1, 16*mib, 1)}
	}
	return uploadPlan{points: []uploadPoint{
		{w: wl(100, 10*mib, 1), chunks: []int64{wholeFile, 5 * mib, mib}},
		{w: wl(100, 10*mib, 8), chunks: []int64{5 * mib, mib}},
		{w: wl(1, gib, 1), chunks: []int64{wholeFile, 5 * mib, mib}, directParts: 5 * mib, directObjects: mib},
		{w: split(gib, 8), chunks: []int64{5 * mib, mib}},
	}, huge: wl(1, 4*gib, 1)}
}

// workloadLabel is "25 × 10 MiB" or "256 MiB".
func workloadLabel(w workload) string {
	if w.files > 1 {
		return fmt.Sprintf("%d × %s", w.files, sizeLabel(w.size))
	}
	return sizeLabel(w.size)
}

func sizeLabel(n int64) string {
	switch {
	case n >= gib && n%gib == 0:
		return strconv.FormatInt(n/gib, 10) + " GiB"
	case n >= mib && n%mib == 0:
		return strconv.FormatInt(n/mib, 10) + " MiB"
	}
	return strconv.FormatInt(n/kib, 10) + " KiB"
}

// stepUpload measures uploads through postbox (tus, real server on
// loopback, into MinIO), straight into MinIO with minio-go PutObject, and
// through the peer tus server (@tus/server + @tus/s3-store) into the same
// MinIO; and postbox's peak RSS while it does.
func stepUpload(ctx context.Context, r *run) error {
	plan := r.uploadPlan()
	newSource(0) // make the block before timing
	mc, err := r.minio()
	if err != nil {
		return err
	}

	// postbox
	pb, err := r.newPostbox(ctx, false)
	if err != nil {
		return err
	}
	srv, addr, err := pb.start(ctx)
	if err != nil {
		return err
	}
	k, persons, err := pb.kasse(ctx, 1, false)
	if err != nil {
		return err
	}
	pin, err := pb.issuePIN(ctx, k.ID, persons[0].KVNR)
	if err != nil {
		return err
	}
	hc := newHTTPClient(16)
	cookie, err := pinLogin(ctx, hc, addr, k.ID, persons[0].KVNR, pin)
	if err != nil {
		return err
	}
	postbox := &tusClient{base: "http://" + addr, path: "/api/uploads/", cookie: cookie, hc: hc}

	// direct and peer write to a bucket of their own with default
	// encryption, as postbox's objects are encrypted (SSE-S3).
	bucket, err := r.freshBucket(ctx, true)
	if err != nil {
		return err
	}
	if err := mc.SetBucketEncryption(ctx, bucket, sse.NewConfigurationSSES3()); err != nil {
		return fmt.Errorf("bucket encryption: %w", err)
	}
	peerAddr, err := r.startPeer(ctx, bucket)
	if err != nil {
		return err
	}
	peer := &tusClient{base: "http://" + peerAddr, path: "/files", hc: newHTTPClient(16)}

	empty := func(b string) {
		if err := emptyBucket(ctx, mc, b); err != nil {
			r.logf("empty bucket: %v", err)
		}
	}
	// directObjects is the contender that writes a file's bytes as objects
	// of w.chunk bytes each (uploadPoint.directObjects).
	const directObjects = "direct-objects"
	// send transfers w once; for the direct PutObject w.chunk is the part
	// size (noChunks: minio-go's default).
	send := func(ctx context.Context, who string, w workload) (time.Duration, error) {
		switch who {
		case "postbox":
			defer empty(pb.bucket)
			if w.split > 1 {
				return timed(func() error { return postbox.uploadSplit(ctx, w.size, w.split, w.chunk, "befund.pdf") })
			}
			return parallel(ctx, w, func(ctx context.Context, i int) error {
				return postbox.upload(ctx, w.size, w.chunk, "befund.pdf", newSource(w.size))
			})
		case "peer":
			defer empty(bucket)
			if w.split > 1 {
				n := w.size / int64(w.split)
				return parallel(ctx, workload{files: w.split, streams: w.split}, func(ctx context.Context, i int) error {
					return peer.upload(ctx, n, w.chunk, "befund.pdf", newSourceAt(int64(i)*n, n))
				})
			}
			return parallel(ctx, w, func(ctx context.Context, i int) error {
				return peer.upload(ctx, w.size, w.chunk, "befund.pdf", newSource(w.size))
			})
		}
		defer empty(bucket)
		tag := randHex(4)
		opts := miniogo.PutObjectOptions{ServerSideEncryption: encrypt.NewSSE(), ContentType: "application/octet-stream"}
		switch {
		case who == directObjects:
			return parallel(ctx, w, func(ctx context.Context, i int) error {
				for off := int64(0); off < w.size; off += w.chunk {
					n := min(w.chunk, w.size-off)
					if _, err := mc.PutObject(ctx, bucket, fmt.Sprintf("direct/%s-%d-%d", tag, i, off), newSourceAt(off, n), n, opts); err != nil {
						return err
					}
				}
				return nil
			})
		case w.split > 1:
			return timed(func() error { return putSplit(ctx, mc, bucket, "direct/"+tag, w.size, w.split, opts) })
		}
		if w.chunk > 0 {
			opts.PartSize = uint64(w.chunk)
		}
		return parallel(ctx, w, func(ctx context.Context, i int) error {
			_, err := mc.PutObject(ctx, bucket, fmt.Sprintf("direct/%s-%d", tag, i), newSource(w.size), w.size, opts)
			return err
		})
	}

	type key struct {
		wl      string
		chunk   int64
		streams int
		who     string
	}
	rates := map[key][]float64{}
	var peakParallel, peakBig []float64
	measure := func(w workload, who string, run int) error {
		if who == "postbox" {
			if err := srv.resetPeakRSS(); err != nil {
				return err
			}
		}
		d, err := send(ctx, who, w)
		if err != nil {
			return fmt.Errorf("%s %s %s × %d streams: %w", who, w.name, chunkLabel(w.chunk), w.streams, err)
		}
		rate := float64(w.bytes()) / float64(mib) / d.Seconds()
		k := key{w.name, w.chunk, w.streams, who}
		rates[k] = append(rates[k], rate)
		r.logf("%-7s %s, %s, %d stream(s): %.0f MiB/s (%.1f s)", who, w.name, chunkLabel(w.chunk), w.streams, rate, d.Seconds())
		if who == "postbox" {
			peak, err := srv.peakRSS()
			if err != nil {
				return err
			}
			mb := float64(peak) / float64(mib)
			if w.streams > 1 {
				for len(peakParallel) <= run {
					peakParallel = append(peakParallel, 0)
				}
				peakParallel[run] = max(peakParallel[run], mb)
			}
			if w.files == 1 && w.size == plan.bigSize() {
				for len(peakBig) <= run {
					peakBig = append(peakBig, 0)
				}
				peakBig[run] = max(peakBig[run], mb)
			}
		}
		return nil
	}

	order := []string{"postbox", "direct", "peer"}
	deadline, _ := ctx.Deadline()
	var lastRun time.Duration
	for run := 0; run < r.runs(); run++ {
		// Bounded: a run that would not fit the step's limit (with the
		// 4 GiB check after it) is not started; the table says how many
		// values each figure has.
		if run > 0 && !deadline.IsZero() && time.Until(deadline) < lastRun*23/20+time.Minute {
			r.rep.note("Upload: only %d of %d runs fitted the step's time limit (a run took %v).", run, r.runs(), lastRun.Round(time.Second))
			break
		}
		runStart := time.Now()
		// Rotate the order per run: the machine is shared, and whoever
		// runs first should not always get the quiet moment.
		rot := slices.Concat(order[run%3:], order[:run%3])
		for _, p := range plan.points {
			for _, who := range rot {
				chunks := p.chunks
				if who == "direct" {
					chunks = []int64{noChunks}
					if p.directParts > 0 {
						chunks = append(chunks, p.directParts)
					}
				}
				for _, c := range chunks {
					w := p.w
					w.chunk = c
					if who == "peer" && c > 0 && c < minPeerFullChunk {
						w = w.share(peerShare)
					}
					if err := measure(w, who, run); err != nil {
						return err
					}
				}
				if who == "direct" && p.directObjects > 0 {
					w := p.w
					w.chunk = p.directObjects
					if err := measure(w, directObjects, run); err != nil {
						return err
					}
				}
			}
		}
		lastRun = time.Since(runStart)
	}

	// 4 GiB through postbox alone: does the peak RSS grow with the file?
	huge := plan.huge
	huge.chunk = wholeFile
	if err := srv.resetPeakRSS(); err != nil {
		return err
	}
	d, err := send(ctx, "postbox", huge)
	if err != nil {
		return fmt.Errorf("postbox %s: %w", huge.name, err)
	}
	peak, err := srv.peakRSS()
	if err != nil {
		return err
	}
	peakHuge := float64(peak) / float64(mib)
	r.logf("postbox %s, one PATCH: %.0f MiB/s, peak RSS %.0f MiB", huge.name, float64(huge.size)/float64(mib)/d.Seconds(), peakHuge)

	// Figures: throughput per point, ratios from the medians.
	for _, p := range plan.points {
		dR := rates[key{p.w.name, noChunks, p.w.streams, "direct"}]
		for _, c := range p.chunks {
			label := fmt.Sprintf("%s, %s, %s", p.w.name, plural(p.w.streams, "stream"), chunkLabel(c))
			pbR := rates[key{p.w.name, c, p.w.streams, "postbox"}]
			peR := rates[key{p.w.name, c, p.w.streams, "peer"}]
			pbNote, peNote := "", ""
			if p.w.split > 1 {
				pbNote = fmt.Sprintf("%d partial uploads at once, then joined (tus concatenation)", p.w.split)
				peNote = fmt.Sprintf("as %d files of %s at once: @tus/s3-store has no concatenation", p.w.split, sizeLabel(p.w.size/int64(p.w.split)))
			}
			if c > 0 && c < minPeerFullChunk {
				sh := p.w.share(peerShare)
				if p.w.split > 1 {
					sh.size /= int64(p.w.split)
					sh.files = p.w.split
				}
				peNote = strings.TrimPrefix(peNote+"; ", "; ") + fmt.Sprintf("1/%d of the bytes to fit the time: %s", peerShare, workloadLabel(sh))
			}
			r.figure("postbox "+label, "MiB/s", pbR, "", nil, pbNote)
			r.figure("peer @tus/server "+label, "MiB/s", peR, "", nil, peNote)
			r.figure("ratio postbox/direct "+label, "×", ratios(pbR, dR), "≥ 0.9", func(m float64) bool { return m >= 0.9 }, "per run")
			r.figure("ratio postbox/peer "+label, "×", ratios(pbR, peR), "> 1", func(m float64) bool { return m > 1 }, "per run")
			if p.directParts > 0 && c == p.directParts {
				d5 := rates[key{p.w.name, c, p.w.streams, "direct"}]
				r.figure(fmt.Sprintf("ratio postbox/direct with %s parts %s", sizeLabel(c), label), "×", ratios(pbR, d5), "", nil,
					"the same part size for both: what is left is postbox's own cost")
			}
			if p.directObjects > 0 && c == p.directObjects {
				dO := rates[key{p.w.name, c, p.w.streams, directObjects}]
				r.figure(fmt.Sprintf("ratio postbox/direct as %s objects %s", sizeLabel(c), label), "×", ratios(pbR, dO), "", nil,
					"against the least a tus server must write for such chunks")
			}
			for who, v := range map[string][]float64{"postbox": pbR, "direct": dR, "peer": peR} {
				r.rep.Uploads = append(r.rep.Uploads, UploadPoint{Workload: p.w.name, Chunk: c, Streams: p.w.streams, Contender: who, MiBPerSec: v})
			}
		}
		label := fmt.Sprintf("%s, %s", p.w.name, plural(p.w.streams, "stream"))
		dNote := "minio-go defaults: one PUT up to 16 MiB, else 16 MiB parts"
		if p.w.split > 1 {
			dNote = fmt.Sprintf("one multipart upload, its %d parts of %s sent at once", p.w.split, sizeLabel(p.w.size/int64(p.w.split)))
		}
		r.figure("direct PutObject "+label, "MiB/s", dR, "", nil, dNote)
		if p.directObjects > 0 {
			r.figure(fmt.Sprintf("direct PutObject %s, as %s objects", label, sizeLabel(p.directObjects)), "MiB/s",
				rates[key{p.w.name, p.directObjects, p.w.streams, directObjects}], "", nil,
				"one object per "+sizeLabel(p.directObjects)+", one after the other: what storing each such chunk before answering costs at least")
		}
		if p.directParts > 0 {
			r.figure(fmt.Sprintf("direct PutObject %s, %s parts", label, sizeLabel(p.directParts)), "MiB/s",
				rates[key{p.w.name, p.directParts, p.w.streams, "direct"}], "", nil, "PartSize set to the tus chunk size")
		}
	}
	r.step = "memory"
	r.figure("postbox peak RSS, parallel uploads", "MiB", peakParallel,
		"< 150 MiB", func(m float64) bool { return m < 150 }, "VmHWM, max over the runs' 8-stream points")
	r.figure("postbox peak RSS, one "+sizeLabel(plan.bigSize())+" upload", "MiB", peakBig, "", nil, "VmHWM, max over its chunk sizes")
	_, bigMed, _ := stats(peakBig)
	r.figure("postbox peak RSS, one "+huge.name+" upload", "MiB", []float64{peakHuge}, "flat: ≤ 1.25 × the "+sizeLabel(plan.bigSize())+" value", func(m float64) bool { return m <= bigMed*1.25 },
		"1 run, one PATCH: flat means it does not grow with the file")
	r.step = "upload"
	r.rep.note("Upload: the issue's matrix, 100 × 10 MiB and 1 GiB, each on 1 and on 8 streams, with 5 MiB and 1 MiB chunks; "+
		"on 1 stream also with one PATCH per file (tus-js-client's and Uppy's default). 1 GiB on 8 streams is one file sent in 8 parts at "+
		"once: postbox gets 8 partial uploads of 128 MiB joined by tus concatenation (tus-js-client's parallelUploads), the direct "+
		"PutObject one multipart upload whose 8 parts go at once, the peer 8 files of 128 MiB (@tus/s3-store has no concatenation, so "+
		"its figure lacks the join). The direct PutObject has no chunks: minio-go sends up to 16 MiB in one PUT, larger files in 16 MiB "+
		"parts; on 1 GiB it also runs with 5 MiB parts (the part size 5 MiB chunks give both tus servers) and as 1 MiB objects one "+
		"after the other (S3 parts need 5 MiB, so a tus server must store each 1 MiB chunk as an object of its own before it answers; "+
		"both tus servers then read the chunks back for the part). Contenders run in rotating order per run; each transfer's objects "+
		"are deleted right after it. With 1 MiB chunks the peer sends a quarter of the bytes (it runs at 17–43 MiB/s there; the full "+
		"sizes would take it over 2.5 minutes per run); its figures are rates, so the ratios stay comparable. "+
		"The peer runs with @tus/s3-store's partSize set to 5 MiB (default 8 MiB); postbox writes parts of "+
		"up to 32 MiB. The %s file runs once, through postbox only, for the memory check.",
		huge.name)
	return nil
}

// plural is "1 stream", "8 streams".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

func ratios(a, b []float64) []float64 {
	var out []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			out = append(out, a[i]/b[i])
		}
	}
	return out
}

// emptyBucket removes every object version of the bucket (postbox's
// bucket is versioned).
func emptyBucket(ctx context.Context, mc *miniogo.Client, bucket string) error {
	objs := make(chan miniogo.ObjectInfo)
	go func() {
		defer close(objs)
		for o := range mc.ListObjects(ctx, bucket, miniogo.ListObjectsOptions{Recursive: true, WithVersions: true}) {
			if o.Err != nil {
				return
			}
			objs <- o
		}
	}()
	for e := range mc.RemoveObjects(ctx, bucket, objs, miniogo.RemoveObjectsOptions{}) {
		if e.Err != nil {
			return e.Err
		}
	}
	return nil
}

// startPeer writes the peer script next to the npm packages deploy/install
// put into the services dir (ES modules resolve from the script's folder),
// starts it on a free port and returns its address.
func (r *run) startPeer(ctx context.Context, bucket string) (string, error) {
	npm := filepath.Join(r.opts.Services.ServicesDir, "npm")
	if npmVersion(filepath.Join(npm, "node_modules"), "@tus/s3-store") == "" {
		return "", fmt.Errorf("the peer @tus/server + @tus/s3-store is not installed in %s (run ./deploy/install)", npm)
	}
	script := filepath.Join(npm, "postbox-bench-peer-"+randHex(4)+".mjs")
	if err := os.WriteFile(script, peerScript, 0o644); err != nil {
		return "", err
	}
	r.defer_(func() { os.Remove(script) })
	port, err := freePort()
	if err != nil {
		return "", err
	}
	s := r.opts.Services
	env := append(baseEnv(), "PEER_PORT="+strconv.Itoa(port), "PEER_S3_BUCKET="+bucket, "PEER_S3_ENDPOINT="+s.MinIOEndpoint,
		"PEER_S3_ACCESS_KEY="+s.MinIOAccessKey, "PEER_S3_SECRET_KEY="+s.MinIOSecretKey)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if _, err := r.startProc(ctx, "peer", env, "http://"+addr+"/healthz", "node", script); err != nil {
		return "", err
	}
	return addr, nil
}

// timed runs f and returns its wall time.
func timed(f func() error) (time.Duration, error) {
	t0 := time.Now()
	err := f()
	return time.Since(t0), err
}

// putSplit writes one object of size bytes as a multipart upload whose
// parts parts are sent at once, one stream each.
func putSplit(ctx context.Context, mc *miniogo.Client, bucket, key string, size int64, parts int, opts miniogo.PutObjectOptions) error {
	core := &miniogo.Core{Client: mc}
	id, err := core.NewMultipartUpload(ctx, bucket, key, opts)
	if err != nil {
		return err
	}
	n := size / int64(parts)
	done := make([]miniogo.CompletePart, parts)
	_, err = parallel(ctx, workload{files: parts, streams: parts}, func(ctx context.Context, i int) error {
		p, err := core.PutObjectPart(ctx, bucket, key, id, i+1, newSourceAt(int64(i)*n, n), n, miniogo.PutObjectPartOptions{})
		done[i] = miniogo.CompletePart{PartNumber: i + 1, ETag: p.ETag}
		return err
	})
	if err == nil {
		_, err = core.CompleteMultipartUpload(ctx, bucket, key, id, done, opts)
	}
	if err != nil {
		core.AbortMultipartUpload(context.WithoutCancel(ctx), bucket, key, id)
	}
	return err
}
