// Request bodies of 64 KiB and more with a Content-Length are read by the daemon in big pieces
// straight into the request (http_server.cpp, read_sized_body). These tests drive that path over
// raw TCP: a body that arrives in slow pieces, a request pipelined right behind a big body, a
// body cut short, and the body limit.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { startDaemon } from './daemon.mjs';

const LIMIT = 4 * 1024 * 1024;

// Raw HTTP/1.1 over one socket: write pieces (with pauses), collect what comes back until
// `responses` whole answers (Content-Length framed) are in, or the socket closes.
function exchange(url, pieces, { responses = 1, pauseMs = 0 } = {}) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(u.port), u.hostname);
    let data = Buffer.alloc(0);
    const answers = [];
    const parse = () => {
      for (;;) {
        const end = data.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = data.subarray(0, end).toString();
        const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (data.length < end + 4 + length) return;
        answers.push({ status: Number(head.split(' ')[1]), head, body: data.subarray(end + 4, end + 4 + length).toString() });
        data = data.subarray(end + 4 + length);
        if (answers.length === responses) { socket.end(); resolve(answers); }
      }
    };
    socket.on('data', (c) => { data = Buffer.concat([data, c]); parse(); });
    socket.on('close', () => resolve(answers));
    socket.on('error', reject);
    (async () => {
      for (const piece of pieces) {
        if (piece === null) { socket.end(); return; }
        socket.write(piece);
        if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
      }
    })().catch(reject);
  });
}

const request = (path, body) => Buffer.concat([
  Buffer.from(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`),
  Buffer.from(body),
]);

// Sends a request head with `Expect: 100-continue` and waits for the server's go-ahead (or its
// final answer) before the body, as curl does for bodies above 1 MiB. Resolves with what came
// before the body was sent and the final answer.
function expectContinue(url, method, path, body, timeoutMs = 20000) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(u.port), u.hostname);
    const timer = setTimeout(() => { socket.destroy(); reject(new Error('no answer to the request head')); }, timeoutMs);
    let data = '';
    let first = null;
    socket.on('data', (c) => {
      data += c.toString('latin1');
      if (first === null && data.includes('\r\n\r\n')) {
        first = data.slice(0, data.indexOf('\r\n'));
        if (first.includes(' 100 ')) { data = data.slice(data.indexOf('\r\n\r\n') + 4); socket.write(body); }
      }
      const end = data.indexOf('\r\n\r\n');
      if (first !== null && !first.includes(' 100 ') || (first?.includes(' 100 ') && end >= 0)) {
        const head = data.slice(0, end);
        const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? -1);
        if (end >= 0 && length >= 0 && data.length >= end + 4 + length) {
          clearTimeout(timer);
          socket.destroy();
          resolve({ first, status: Number(head.split(' ')[1]), body: data.slice(end + 4, end + 4 + length) });
        }
      }
    });
    socket.on('error', reject);
    socket.write(`${method} ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`);
  });
}

describe('large request bodies', () => {
  let daemon;
  before(async () => { daemon = await startDaemon(['--python-pool', '0', '--body-limit', String(LIMIT)]); });
  after(async () => { if (daemon) assert.equal((await daemon.stop()).code, 0); });

  const content = 'line of text with "quotes" and \\ backslashes, é and 💡\n'.repeat(20000);  // ~1.2 MB

  test('a 1 MiB write whose body arrives in slow pieces, then read back whole', async () => {
    const whole = request('/api/write', JSON.stringify({ path: '/workspace/slow.txt', content }));
    const pieces = [];
    for (let i = 0; i < whole.length; i += 300000) pieces.push(whole.subarray(i, i + 300000));
    const [w] = await exchange(daemon.url, pieces, { pauseMs: 50 });
    assert.equal(w.status, 200, w.body);
    assert.equal(JSON.parse(w.body).bytesWritten, Buffer.byteLength(content));
    const [r] = await exchange(daemon.url, [request('/api/read', JSON.stringify({ path: '/workspace/slow.txt' }))]);
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).content, content);
  });

  test('a request pipelined behind a big body in the same write is answered after it', async () => {
    const big = request('/api/write', JSON.stringify({ path: '/workspace/piped.txt', content: content.slice(0, 200000) }));
    const next = request('/api/exists', JSON.stringify({ path: '/workspace/piped.txt' }));
    const answers = await exchange(daemon.url, [Buffer.concat([big, next])], { responses: 2 });
    assert.equal(answers.length, 2);
    assert.equal(answers[0].status, 200, answers[0].body);
    assert.equal(JSON.parse(answers[0].body).bytesWritten, Buffer.byteLength(content.slice(0, 200000)));
    assert.equal(answers[1].status, 200, answers[1].body);
    assert.equal(JSON.parse(answers[1].body).exists, true);
  });

  test('Expect: 100-continue gets the go-ahead before the body (JSON and raw uploads); too big gets 413 instead', async () => {
    const json = Buffer.from(JSON.stringify({ path: '/workspace/expect.txt', content: 'y'.repeat(300000) }));
    const w = await expectContinue(daemon.url, 'POST', '/api/write', json);
    assert.equal(w.first, 'HTTP/1.1 100 Continue');
    assert.equal(w.status, 200, w.body);
    assert.equal(JSON.parse(w.body).bytesWritten, 300000);
    const raw = Buffer.alloc(3 * 1024 * 1024, 7);
    const put = await expectContinue(daemon.url, 'PUT', '/api/files/raw?path=/workspace/expect.bin', raw);
    assert.equal(put.first, 'HTTP/1.1 100 Continue');
    assert.equal(put.status, 200, put.body);
    assert.equal(JSON.parse(put.body).bytesWritten, raw.length);
    const tooBig = await expectContinue(daemon.url, 'POST', '/api/write', Buffer.alloc(LIMIT + 1, 0x20));
    assert.equal(tooBig.status, 413);
    assert.match(tooBig.first, / 413 /);
  });

  test('a body cut short gets no answer and harms nothing; above the limit is a 413', async () => {
    const whole = request('/api/write', JSON.stringify({ path: '/workspace/cut.txt', content }));
    const cut = await exchange(daemon.url, [whole.subarray(0, 500000), null]);
    assert.equal(cut.length, 0);
    const exists = await fetch(`${daemon.url}/api/exists`, { method: 'POST', body: JSON.stringify({ path: '/workspace/cut.txt' }) });
    assert.equal((await exists.json()).exists, false);
    const tooBig = Buffer.from(`POST /api/write HTTP/1.1\r\nHost: x\r\nContent-Length: ${LIMIT + 1}\r\n\r\n`);
    const [r] = await exchange(daemon.url, [tooBig, Buffer.alloc(100000, 0x20)]);
    assert.equal(r.status, 413);
    assert.equal(JSON.parse(r.body).code, 'PAYLOAD_TOO_LARGE');
    const ping = await fetch(`${daemon.url}/api/ping`);
    assert.equal(ping.status, 200);
  });
});
