// Ports and preview URLs: services started in a sandbox (network "none") reached through the
// daemon's reverse proxy, by Host (<port>-<sandbox>-<token>.<domain>) and by path
// (/sandboxes/<id>/preview/<port>-<token>/...), with plain fetch, node:http and `ws`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';

import WebSocket from 'ws';

import { startDaemon } from './daemon.mjs';

const SANDBOX = 'pv';
const HTTP_PORT = 18080;  // python -m http.server (HTTP/1.0, closes after each answer)
const APP_PORT = 18081;   // fixtures/preview_server.py (HTTP/1.1 keep-alive)
const WS_PORT = 18082;    // its WebSocket echo
const IDLE_PORT = 18083;  // exposed, nothing listening
const BIG = randomBytes(50 * 1024 * 1024);

// One request by node:http to the daemon, with any Host header; the body may be a Buffer or an
// async iterable (then sent chunked).
function request(base, { method = 'GET', path = '/', host, headers = {}, body, agent } = {}) {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ agent, host: url.hostname, port: url.port, method, path, headers: { ...(host ? { host } : {}), ...headers } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body && typeof body[Symbol.asyncIterator] === 'function') {
      (async () => {
        for await (const piece of body) if (!req.write(piece)) await new Promise((r) => req.once('drain', r));
        req.end();
      })().catch(reject);
    } else {
      req.end(body);
    }
  });
}

async function* slices(buf, size = 1 << 20) {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

const sha256 = (b) => createHash('sha256').update(b).digest('hex');

describe('preview URLs and the reverse proxy', () => {
  let daemon;
  let api;
  let exposed = {};

  const post = async (path, body) => {
    const res = await fetch(`${api}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, json: await res.json() };
  };
  const waitPort = async (port) => {
    const res = await fetch(`${api}/api/port-watch`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ port, mode: 'tcp', timeoutMs: 30000 }),
    });
    const text = await res.text();
    assert.match(text, /"type":"ready"/, `port ${port} never became ready: ${text}`);
  };
  const hostOf = (port) => {
    const u = new URL(exposed[port].url);
    return u.host;
  };
  const pathOf = (port, rest = '') => `/sandboxes/${SANDBOX}/preview/${port}-${exposed[port].token}${rest}`;
  const startServices = async () => {
    let r = await post('/api/process/start', { command: `cd /workspace && exec /usr/bin/python3 -m http.server ${HTTP_PORT} --bind 127.0.0.1` });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    r = await post('/api/process/start', { command: `exec /usr/bin/python3 /workspace/preview_server.py ${APP_PORT} ${WS_PORT}` });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    for (const port of [HTTP_PORT, APP_PORT, WS_PORT]) await waitPort(port);
  };

  before(async () => {
    daemon = await startDaemon(['--python-pool', '0']);
    api = `${daemon.url}/sandboxes/${SANDBOX}`;
    const script = readFileSync(new URL('./fixtures/preview_server.py', import.meta.url), 'utf8');
    let r = await post('/api/write', { path: '/workspace/preview_server.py', content: script });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const put = await fetch(`${api}/api/files/raw?path=/workspace/big.bin`, { method: 'PUT', body: BIG });
    assert.equal(put.status, 200, await put.text());
    await startServices();
  });

  after(async () => {
    if (daemon) assert.equal((await daemon.stop()).code, 0);
  });

  test('expose-port: validation, then a URL per port', async () => {
    const ownPort = Number(new URL(daemon.url).port);
    for (const port of [80, 1023, 65536, ownPort]) {
      const r = await post('/api/expose-port', { port });
      assert.equal(r.status, 400, `port ${port}`);
      assert.equal(r.json.code, 'INVALID_PORT');
    }
    const bad = await post('/api/expose-port', { port: 12000, token: 'Not-Valid' });
    assert.equal(bad.status, 400);
    for (const port of [HTTP_PORT, APP_PORT, WS_PORT, IDLE_PORT]) {
      const r = await post('/api/expose-port', { port, name: `svc${port}`, ...(port === APP_PORT ? { token: 'app_token_1' } : {}) });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(r.json.success, true);
      assert.equal(r.json.port, port);
      assert.equal(r.json.name, `svc${port}`);
      assert.match(r.json.token, /^[a-z0-9_]{1,16}$/);
      if (port === APP_PORT) assert.equal(r.json.token, 'app_token_1');
      else assert.equal(r.json.token.length, 16);
      assert.equal(r.json.url, `http://${port}-${SANDBOX}-${r.json.token}.localhost:${ownPort}/`);
      exposed[port] = r.json;
    }
    const list = await (await fetch(`${api}/api/exposed-ports`)).json();
    assert.deepEqual(list.ports.map((p) => [p.port, p.status, p.url]).sort(),
      [HTTP_PORT, APP_PORT, WS_PORT, IDLE_PORT].map((p) => [p, 'active', exposed[p].url]).sort());
    const described = await (await fetch(`${daemon.url}/api/sandboxes/${SANDBOX}`)).json();
    assert.deepEqual(described.sandbox.exposedPorts.map((p) => p.port).sort(), [HTTP_PORT, APP_PORT, WS_PORT, IDLE_PORT].sort());
  });

  test('python http.server by Host and by path', async () => {
    for (let i = 0; i < 3; i++) {
      const byHost = await request(daemon.url, { path: '/preview_server.py', host: hostOf(HTTP_PORT) });
      assert.equal(byHost.status, 200);
      assert.equal(byHost.body.toString(), readFileSync(new URL('./fixtures/preview_server.py', import.meta.url), 'utf8'));
    }
    const byPath = await fetch(`${daemon.url}${pathOf(HTTP_PORT, '/preview_server.py')}`);
    assert.equal(byPath.status, 200);
    assert.match(await byPath.text(), /preview proxy/);
    // the directory listing of /workspace at the path form's root
    const root = await fetch(`${daemon.url}${pathOf(HTTP_PORT, '/')}`);
    assert.equal(root.status, 200);
    assert.match(await root.text(), /big\.bin/);
  });

  test('a 50 MB download streams through both forms byte for byte', async () => {
    const byHost = await request(daemon.url, { path: '/big.bin', host: hostOf(HTTP_PORT) });
    assert.equal(byHost.status, 200);
    assert.equal(byHost.body.length, BIG.length);
    assert.ok(byHost.body.equals(BIG), 'the bytes through the Host form');
    const byPath = await fetch(`${daemon.url}${pathOf(HTTP_PORT, '/big.bin')}`);
    const got = Buffer.from(await byPath.arrayBuffer());
    assert.equal(got.length, BIG.length);
    assert.ok(got.equals(BIG), 'the bytes through the path form');
  });

  test('a 50 MB upload streams through (chunked and with a length) and echoes back', async () => {
    const chunked = await request(daemon.url, { method: 'POST', path: '/upload', host: hostOf(APP_PORT), body: slices(BIG) });
    assert.equal(chunked.status, 200);
    assert.deepEqual(JSON.parse(chunked.body), { length: BIG.length, sha256: sha256(BIG) });
    const sized = await fetch(`${daemon.url}${pathOf(APP_PORT, '/upload')}`, { method: 'POST', body: BIG });
    assert.deepEqual(await sized.json(), { length: BIG.length, sha256: sha256(BIG) });
    const echo = await request(daemon.url, { method: 'POST', path: '/echo', host: hostOf(APP_PORT), body: slices(BIG, 300_000) });
    assert.equal(echo.status, 200);
    assert.equal(echo.headers['transfer-encoding'], 'chunked');
    assert.ok(echo.body.equals(BIG), 'the echoed bytes');
  });

  test('chunked answers, redirects untouched, X-Forwarded headers', async () => {
    const chunked = await request(daemon.url, { path: '/chunked', host: hostOf(APP_PORT) });
    assert.equal(chunked.headers['transfer-encoding'], 'chunked');
    assert.equal(chunked.body.toString(), 'part 0\npart 1\npart 2\npart 3\npart 4\n');

    const redirect = await fetch(`${daemon.url}${pathOf(APP_PORT, '/redirect')}`, { redirect: 'manual' });
    assert.equal(redirect.status, 307);
    assert.equal(redirect.headers.get('location'), '/target?x=1&y=%2F');
    const absolute = await request(daemon.url, { path: '/absolute-redirect', host: hostOf(APP_PORT) });
    assert.equal(absolute.status, 302);
    assert.equal(absolute.headers.location, 'http://example.invalid:9999/elsewhere');

    const seen = JSON.parse((await request(daemon.url, { path: '/headers?a=1', host: hostOf(APP_PORT), headers: { 'x-forwarded-for': '10.1.2.3' } })).body);
    assert.equal(seen.path, '/headers?a=1');
    assert.equal(seen.headers['x-forwarded-host'], hostOf(APP_PORT));
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.equal(seen.headers['x-forwarded-for'], '10.1.2.3, 127.0.0.1');
    assert.equal(seen.headers['x-original-url'], `http://${hostOf(APP_PORT)}/headers?a=1`);

    const byPath = await (await fetch(`${daemon.url}${pathOf(APP_PORT, '/headers?b=2')}`)).json();
    assert.equal(byPath.path, '/headers?b=2');
    assert.equal(byPath.headers['x-original-url'], `http://${new URL(daemon.url).host}${pathOf(APP_PORT, '/headers?b=2')}`);
  });

  test('wrong token, unexposed port and nothing listening', async () => {
    const wrong = await request(daemon.url, { path: '/', host: `${APP_PORT}-${SANDBOX}-wrongtoken.localhost` });
    assert.equal(wrong.status, 404);
    assert.equal(JSON.parse(wrong.body).code, 'INVALID_TOKEN');
    const wrongPath = await fetch(`${daemon.url}/sandboxes/${SANDBOX}/preview/${APP_PORT}-nope/`);
    assert.equal(wrongPath.status, 404);
    assert.equal((await wrongPath.json()).code, 'INVALID_TOKEN');
    const unexposed = await request(daemon.url, { path: '/', host: `19999-${SANDBOX}-abc.localhost` });
    assert.equal(unexposed.status, 404);
    assert.equal(JSON.parse(unexposed.body).code, 'PORT_NOT_EXPOSED');
    const idle = await request(daemon.url, { path: '/', host: hostOf(IDLE_PORT) });
    assert.equal(idle.status, 502);
    assert.equal(JSON.parse(idle.body).code, 'SERVICE_NOT_RESPONDING');
    // a daemon token does not apply to preview URLs, but still to /api (checked in its own test below)
  });

  test('16 keep-alive clients at once through both forms and two services: every answer whole and right', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    const client = async (n) => {
      for (let i = 0; i < 40; i++) {
        if (i % 5 === 4) {  // another service on the same connection, then back
          const other = await request(daemon.url, { agent, path: '/preview_server.py', host: hostOf(HTTP_PORT) });
          assert.equal(other.status, 200);
          assert.match(other.body.toString(), /preview proxy/);
        }
        const path = `/headers?client=${n}&i=${i}`;
        const r = i % 2 ? await request(daemon.url, { agent, path, host: hostOf(APP_PORT) })
          : await request(daemon.url, { agent, path: pathOf(APP_PORT, path) });
        assert.equal(r.status, 200, `client ${n} request ${i}: ${r.body}`);
        assert.equal(JSON.parse(r.body).path, path);
      }
    };
    await Promise.all(Array.from({ length: 16 }, (_, n) => client(n)));
    agent.destroy();
  });

  test('a pooled upstream connection the service closed: a request without a body goes again, one with a body gets a 502', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; i < 10; i++) {
      // leaves an idle upstream connection in the proxy's pool, which the next request takes
      const warm = await request(daemon.url, { agent, path: '/headers', host: hostOf(APP_PORT) });
      assert.equal(warm.status, 200);
      const r = await request(daemon.url, { agent, path: '/drop-if-reused', host: hostOf(APP_PORT) });
      assert.equal(r.status, 200, `round ${i}: ${r.body}`);
      assert.equal(JSON.parse(r.body).served, 1, 'answered on a fresh upstream connection');
    }
    const warm = await request(daemon.url, { agent, path: '/headers', host: hostOf(APP_PORT) });
    assert.equal(warm.status, 200);
    const post = await request(daemon.url, { agent, method: 'POST', path: '/drop-if-reused', host: hostOf(APP_PORT), body: Buffer.from('payload') });
    assert.equal(post.status, 502);
    assert.equal(JSON.parse(post.body).code, 'SERVICE_NOT_RESPONDING');
    const after = await request(daemon.url, { agent, path: '/headers', host: hostOf(APP_PORT) });
    assert.equal(after.status, 200);
    agent.destroy();
  });

  test('WebSocket through both preview forms and ws-connect: frames both ways, close code kept', async () => {
    const echo = (url, headers = {}) => new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers });
      const got = [];
      ws.on('open', () => {
        ws.send('hello');
        ws.send(Buffer.from([1, 2, 3, 255]));
        ws.send('x'.repeat(200_000));
      });
      ws.on('message', (data, isBinary) => {
        got.push(isBinary ? [...data] : data.toString());
        if (got.length === 3) ws.close(4321, 'bye');
      });
      ws.on('close', (code, reason) => resolve({ got, code, reason: reason.toString() }));
      ws.on('error', reject);
    });
    const wsBase = daemon.url.replace('http:', 'ws:');
    for (const r of [
      await echo(`${wsBase}/`, { Host: hostOf(WS_PORT) }),
      await echo(`${wsBase}${pathOf(WS_PORT, '/')}`),
      await echo(`${wsBase}/sandboxes/${SANDBOX}/api/ws-connect/${WS_PORT}`),
    ]) {
      assert.deepEqual(r.got, ['hello', [1, 2, 3, 255], 'x'.repeat(200_000)]);
      assert.equal(r.code, 4321);
      assert.equal(r.reason, 'bye');
    }
    const plain = await fetch(`${api}/api/ws-connect/${WS_PORT}`);
    assert.equal(plain.status, 400);
  });

  test('unexpose: 404 afterwards and for a second time', async () => {
    const del = await fetch(`${api}/api/exposed-ports/${IDLE_PORT}`, { method: 'DELETE' });
    assert.equal(del.status, 200);
    const again = await fetch(`${api}/api/exposed-ports/${IDLE_PORT}`, { method: 'DELETE' });
    assert.equal(again.status, 404);
    assert.equal((await again.json()).code, 'PORT_NOT_EXPOSED');
    const gone = await request(daemon.url, { path: '/', host: hostOf(IDLE_PORT) });
    assert.equal(JSON.parse(gone.body).code, 'PORT_NOT_EXPOSED');
  });

  test('a daemon restart keeps the exposed ports; the URLs work once the services run again', async () => {
    assert.equal((await daemon.stop()).code, 0);
    daemon = await startDaemon(['--python-pool', '0', '--token', 'daemon-secret'], { dataDir: daemon.dataDir });
    const auth = { authorization: 'Bearer daemon-secret' };
    api = `${daemon.url}/sandboxes/${SANDBOX}`;
    const listed = await (await fetch(`${api}/api/exposed-ports`, { headers: auth })).json();
    assert.deepEqual(listed.ports.map((p) => p.port).sort(), [HTTP_PORT, APP_PORT, WS_PORT].sort());
    // the daemon's port changed: the URLs say so, the tokens stayed
    for (const p of listed.ports) {
      assert.equal(new URL(p.url).hostname, new URL(exposed[p.port].url).hostname);
      exposed[p.port].url = p.url;
    }
    assert.equal((await fetch(`${api}/api/exposed-ports`)).status, 401, 'the daemon token still guards /api');
    const before = await request(daemon.url, { path: '/headers', host: hostOf(APP_PORT) });
    assert.equal(before.status, 502, 'no service runs in the sandbox after the restart');
    const origFetch = globalThis.fetch;
    globalThis.fetch = (url, init = {}) => origFetch(url, { ...init, headers: { ...(init.headers || {}), ...auth } });
    try {
      await startServices();
    } finally {
      globalThis.fetch = origFetch;
    }
    const byHost = await request(daemon.url, { path: '/headers', host: hostOf(APP_PORT) });
    assert.equal(byHost.status, 200, 'no daemon token needed for a preview URL');
    const byPath = await fetch(`${daemon.url}${pathOf(HTTP_PORT, '/preview_server.py')}`);
    assert.equal(byPath.status, 200);
  });
});
