// The peer of the upload benchmark: the reference tus server in Node.js
// (@tus/server with @tus/s3-store) writing to the same MinIO as postbox,
// with 5 MiB parts (default 8 MiB) so a 5 MiB chunk is one part, as in
// postbox. Started by "postbox bench" with its settings in env;
// answers /healthz for the start check.
import http from 'node:http';
import { Server } from '@tus/server';
import { S3Store } from '@tus/s3-store';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

const store = new S3Store({
  partSize: 5 * 1024 * 1024,
  s3ClientConfig: {
    bucket: env('PEER_S3_BUCKET'),
    region: 'us-east-1',
    endpoint: 'http://' + env('PEER_S3_ENDPOINT'),
    forcePathStyle: true,
    credentials: { accessKeyId: env('PEER_S3_ACCESS_KEY'), secretAccessKey: env('PEER_S3_SECRET_KEY') },
  },
});
const tus = new Server({ path: '/files', datastore: store });

http
  .createServer((req, res) => {
    if (req.url === '/healthz') {
      res.end('ok');
      return;
    }
    tus.handle(req, res);
  })
  .listen(Number(env('PEER_PORT')), '127.0.0.1');
