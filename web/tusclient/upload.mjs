// A real tus client against postbox: tus-js-client 4.3.1 in node.
// Driven by tusclient_test.go through environment variables:
//
//   TUS_ENDPOINT   upload collection, e.g. http://127.0.0.1:8080/api/uploads/
//   TUS_COOKIE     the PIN session cookie ("postbox_pin=...")
//   TUS_FILE       file to upload
//   TUS_CHUNK      chunk size in bytes
//   TUS_PARALLEL   parallelUploads (1: one upload, more: concatenation)
//   TUS_STORAGE    JSON file where tus-js-client keeps upload URLs for resuming
//   TUS_IDEMPOTENCY_KEY  sent as Idempotency-Key with the creation (POST),
//                  as the upload page does; empty: no key
//   TUS_PHASE      "start": abort once TUS_ABORT_AT bytes are confirmed;
//                  "resume": find the stored upload and finish it;
//                  "full": upload everything, retrying through server restarts
//
// It prints one JSON line: the upload URL, the partial URLs, and the offset
// of the first PATCH of each URL in this run (what "resume" started from).
import fs from 'node:fs';
import { Upload, FileUrlStorage } from 'tus-js-client';

const env = process.env;
const phase = env.TUS_PHASE;
const parallel = Number(env.TUS_PARALLEL || '1');
const abortAt = Number(env.TUS_ABORT_AT || '0');
const firstPatch = {};
let patches = 0;

const options = {
  endpoint: env.TUS_ENDPOINT,
  chunkSize: Number(env.TUS_CHUNK),
  parallelUploads: parallel,
  headers: { Cookie: env.TUS_COOKIE },
  metadata: { filename: 'befund.pdf', filetype: 'application/pdf' },
  urlStorage: new FileUrlStorage(env.TUS_STORAGE),
  storeFingerprintForResuming: true,
  removeFingerprintOnSuccess: true,
  // Long enough to outlast a server restart and the lease of a killed one.
  retryDelays: [0, 500, 1000, 2000, 3000, 5000, 5000, 5000, 5000, 5000, 5000, 5000, 5000],
  onBeforeRequest(req) {
    if (req.getMethod() === 'POST' && env.TUS_IDEMPOTENCY_KEY) {
      req.setHeader('Idempotency-Key', `"${env.TUS_IDEMPOTENCY_KEY}"`);
    }
    if (req.getMethod() === 'PATCH') {
      patches++;
      const url = req.getURL();
      if (!(url in firstPatch)) firstPatch[url] = Number(req.getHeader('Upload-Offset'));
    }
  },
};

function finish(upload, extra) {
  process.stdout.write(JSON.stringify({
    url: upload.url,
    partialUrls: upload._parallelUploadUrls || null,
    firstPatch,
    patches,
    ...extra,
  }) + '\n');
}

function fail(err) {
  process.stderr.write(`tus error: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
}

const upload = new Upload(fs.createReadStream(env.TUS_FILE), {
  ...options,
  onError: fail,
  onProgress(sent) {
    if (phase === 'start' && sent >= abortAt && !upload._aborting) {
      upload._aborting = true;
      // Abort without terminating: the server keeps what arrived.
      upload.abort(false).then(() => finish(upload, { aborted: true, sent }), fail);
    }
  },
  onSuccess() {
    finish(upload, { aborted: false });
  },
});

if (phase === 'resume') {
  const previous = await upload.findPreviousUploads();
  if (previous.length !== 1) fail(new Error(`want one stored upload to resume, found ${previous.length}`));
  upload.resumeFromPreviousUpload(previous[0]);
}
upload.start();
