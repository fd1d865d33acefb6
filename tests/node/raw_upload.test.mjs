// PUT /api/files/raw streams its body to disk as it arrives (issue 6): no body limit for this route
// (the daemon runs with --body-limit 1MiB here, and JSON routes still answer 413 above it), byte
// for byte with Content-Length and with chunked encoding, two uploads on one keep-alive
// connection, the token checked first, and a cut upload leaves the old file and no temp file.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { connect } from 'node:net';

import { startDaemon } from './daemon.mjs';
import { request } from './http_helpers.mjs';

const TOKEN = 'upload-token-77';
const AUTH = { authorization: `Bearer ${TOKEN}` };
const sha = (b) => createHash('sha256').update(b).digest('hex');

describe('raw uploads stream past the body limit', () => {
  let daemon;
  let base;

  const getRaw = async (path) => {
    const res = await fetch(`${base}/api/files/raw?path=${path}`, { headers: AUTH });
    assert.equal(res.status, 200);
    return Buffer.from(await res.arrayBuffer());
  };

  before(async () => {
    daemon = await startDaemon(['--python-pool', '0', '--token', TOKEN, '--body-limit', '1MiB']);
    base = `${daemon.url}/sandboxes/up`;
  });

  after(async () => {
    if (daemon) await daemon.stop();
  });

  test('6 MiB with Content-Length, then 3 MiB chunked, on one keep-alive connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set();
    const put = (path, body, chunked) =>
      new Promise((resolve, reject) => {
        const headers = { ...AUTH, ...(chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': body.length }) };
        const req = http.request(`${base}/api/files/raw?path=${path}`, { method: 'PUT', agent, headers }, (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode, json: JSON.parse(text) }));
        });
        req.on('socket', (s) => sockets.add(s));
        req.on('error', reject);
        if (chunked) for (let at = 0; at < body.length; at += 100000) req.write(body.subarray(at, at + 100000));
        else req.write(body);
        req.end();
      });
    const big = randomBytes(6 << 20);
    const first = await put('/workspace/big.bin', big, false);
    assert.equal(first.status, 200, JSON.stringify(first.json));
    assert.equal(first.json.bytesWritten, big.length);
    assert.equal(first.json.path, '/workspace/big.bin');
    const chunked = randomBytes(3 << 20);
    const second = await put('/workspace/chunked.bin', chunked, true);
    assert.equal(second.status, 200, JSON.stringify(second.json));
    assert.equal(second.json.bytesWritten, chunked.length);
    assert.equal(sockets.size, 1, 'both uploads went over one connection');
    agent.destroy();
    assert.equal(sha(await getRaw('/workspace/big.bin')), sha(big));
    assert.equal(sha(await getRaw('/workspace/chunked.bin')), sha(chunked));
  });

  test('the limit still applies to JSON bodies; the token and the path are checked', async () => {
    const tooBig = await request(`${base}/api/write`, { body: { path: '/workspace/x.txt', content: 'x'.repeat(2 << 20) }, headers: AUTH });
    assert.equal(tooBig.status, 413, JSON.stringify(tooBig.json));
    const noToken = await fetch(`${base}/api/files/raw?path=/workspace/nope.bin`, { method: 'PUT', body: Buffer.alloc(1000) });
    assert.equal(noToken.status, 401);
    assert.equal((await noToken.json()).code, 'UNAUTHORIZED');
    const noPath = await fetch(`${base}/api/files/raw`, { method: 'PUT', body: Buffer.alloc(1000), headers: AUTH });
    assert.equal(noPath.status, 400);
    const listed = await request(`${base}/api/exists`, { body: { path: '/workspace/nope.bin' }, headers: AUTH });
    assert.equal(listed.json.exists, false);
  });

  test('a cut upload leaves the old file as it was and no temp file', async () => {
    const old = Buffer.from('the old content\n');
    const put = await fetch(`${base}/api/files/raw?path=/workspace/keep.txt`, { method: 'PUT', body: old, headers: AUTH });
    assert.equal(put.status, 200);
    const { hostname, port } = new URL(daemon.url);
    await new Promise((resolve) => {
      const sock = connect(Number(port), hostname, () => {
        sock.write(`PUT /sandboxes/up/api/files/raw?path=/workspace/keep.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n` +
          'Content-Length: 5000000\r\n\r\n');
        sock.write(randomBytes(2 << 20), () => setTimeout(() => { sock.destroy(); resolve(); }, 100));
      });
      sock.on('error', resolve);
    });
    let left = [];
    for (let i = 0; i < 100; ++i) {  // the upload notices the cut on its next read
      const list = await request(`${base}/api/list-files`, { body: { path: '/workspace', options: { includeHidden: true } }, headers: AUTH });
      left = list.json.files.map((f) => f.name).filter((n) => n.includes('.kh-'));
      if (!left.length) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(left, []);
    assert.deepEqual(await getRaw('/workspace/keep.txt'), old);
  });
});
