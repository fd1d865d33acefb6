// WebSocket clients that vanish (TCP reset, no close frame) while a cell runs and while output
// streams: the daemon frees each connection (its open fds return to the baseline), the kernel keeps
// running and finishes the cell, and a new WebSocket to the same kernel gets the next results. The
// same for the sandbox port WebSocket route (/api/ws-connect/<port>).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import WebSocket from 'ws';

import { startDaemon } from './daemon.mjs';
import { post, processSample, request, until } from './http_helpers.mjs';

// Polls (bounded) until `read()` returns `want` (a number: at most `want`); returns the last value.
async function settle(read, want, ms = 20000) {
  const done = (v) => (typeof want === 'number' ? v <= want : v === want);
  const deadline = Date.now() + ms;
  let value = await read();
  while (!done(value) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    value = await read();
  }
  return value;
}

// The value once it stopped changing (the same for 5 reads in a row): a baseline taken after
// closing connections have finished closing.
async function stable(read) {
  let last = read();
  for (let same = 0; same < 5;) {
    await new Promise((r) => setTimeout(r, 50));
    const value = read();
    same = value === last ? same + 1 : 0;
    last = value;
  }
  return last;
}

function openWs(url) {
  const ws = new WebSocket(url);
  return new Promise((resolve, reject) => {
    ws.on('open', () => resolve(ws));
    ws.on('error', reject);
  });
}

// A Jupyter message in the legacy JSON form (no subprotocol), as jupyter_server accepts it.
function executeRequest(session, code) {
  const msgId = `${session}-${Math.random().toString(16).slice(2)}`;
  return {
    msgId,
    text: JSON.stringify({
      header: { msg_id: msgId, msg_type: 'execute_request', session, username: 'u', version: '5.3', date: new Date().toISOString() },
      parent_header: {}, metadata: {}, channel: 'shell',
      content: { code, silent: false, store_history: true, user_expressions: {}, allow_stdin: false },
    }),
  };
}

function collect(ws) {
  const seen = [];
  ws.on('message', (data, isBinary) => {
    if (!isBinary) seen.push(JSON.parse(data.toString()));
  });
  return seen;
}

describe('WebSocket clients that vanish', () => {
  let daemon;
  let wsBase;
  const fds = () => processSample(daemon.pid).fds;

  before(async () => {
    daemon = await startDaemon(['--python-pool', '0']);
    wsBase = daemon.url.replace('http', 'ws');
  });
  after(async () => {
    assert.equal((await daemon.stop()).code, 0);
  });

  test('kernel channels: 20 sockets reset mid-output and mid-cell; fds back to baseline; the cell finishes; a new socket works', async () => {
    const kernel = (await post(`${daemon.url}/api/kernels`, { name: 'python3' })).body;
    assert.ok(kernel.id, JSON.stringify(kernel));
    const channels = (session) => `${wsBase}/api/kernels/${kernel.id}/channels?session_id=${session}`;
    const kernelInfo = async () => (await request(`${daemon.url}/api/kernels/${kernel.id}`, { method: 'GET' })).json;
    // warm up: one socket that executes and closes properly
    const warm = await openWs(channels('warm'));
    const warmSeen = collect(warm);
    const w = executeRequest('warm', '1 + 1');
    warm.send(w.text);
    await until(() => warmSeen.some((m) => m.msg_type === 'execute_reply' && m.parent_header.msg_id === w.msgId));
    warm.close();
    assert.equal(await settle(async () => (await kernelInfo()).connections, 0), 0);
    const baseline = await stable(fds);

    for (const phase of ['output', 'silent']) {
      const flag = join(daemon.dataDir, `finished-${phase}`);
      const code = phase === 'output'
        ? `import time\nfor i in range(150):\n    print(i, flush=True)\n    time.sleep(0.02)\nopen(${JSON.stringify(flag)}, 'w').write('done')`
        : `import time\ntime.sleep(2)\nopen(${JSON.stringify(flag)}, 'w').write('done')`;
      const sockets = await Promise.all(Array.from({ length: 20 }, (_, i) => openWs(channels(`${phase}-${i}`))));
      const seen = collect(sockets[0]);
      const req = executeRequest(`${phase}-0`, code);
      sockets[0].send(req.text);
      // reset them all once the cell runs (and, in the output phase, once its output flows)
      const wanted = phase === 'output' ? 'stream' : 'execute_input';
      await until(() => seen.some((m) => m.msg_type === wanted && m.parent_header.msg_id === req.msgId));
      assert.equal((await kernelInfo()).connections, 20);
      for (const s of sockets) s.terminate();
      assert.equal(existsSync(flag), false, 'the cell was still running when the clients left');

      assert.equal(await settle(async () => (await kernelInfo()).connections, 0), 0);
      assert.ok(await settle(fds, baseline) <= baseline, `daemon fds above the baseline ${baseline}`);
      await until(() => existsSync(flag));  // the kernel kept running and finished the cell
      assert.equal(readFileSync(flag, 'utf8'), 'done');
      assert.equal(await settle(async () => (await kernelInfo()).execution_state, 'idle'), 'idle');

      const again = await openWs(channels(`again-${phase}`));
      const got = collect(again);
      const next = executeRequest(`again-${phase}`, `print("next after ${phase}")`);
      again.send(next.text);
      await until(() => got.some((m) => m.msg_type === 'execute_reply' && m.parent_header.msg_id === next.msgId));
      const text = got.filter((m) => m.msg_type === 'stream' && m.parent_header.msg_id === next.msgId).map((m) => m.content.text).join('');
      assert.equal(text, `next after ${phase}\n`);
      assert.equal(got.find((m) => m.msg_type === 'execute_reply').content.status, 'ok');
      again.close();
      assert.equal(await settle(async () => (await kernelInfo()).connections, 0), 0);
      assert.ok(await settle(fds, baseline) <= baseline, `daemon fds above the baseline ${baseline}`);
    }
    assert.equal((await request(`${daemon.url}/api/kernels/${kernel.id}`, { method: 'DELETE' })).status, 204);
  });

  test('sandbox port WebSocket (ws-connect): 20 sockets reset mid-stream; fds back to baseline; a new socket echoes', async () => {
    const SANDBOX = 'wsdrop';
    const WS_PORT = 18092;
    const api = `${daemon.url}/sandboxes/${SANDBOX}`;
    const script = readFileSync(new URL('./fixtures/preview_server.py', import.meta.url), 'utf8');
    assert.equal((await post(`${api}/api/write`, { path: '/workspace/preview_server.py', content: script })).status, 200);
    const started = await post(`${api}/api/process/start`, { command: `exec /usr/bin/python3 /workspace/preview_server.py 18091 ${WS_PORT}` });
    assert.equal(started.status, 200, JSON.stringify(started.body));
    const watch = await fetch(`${api}/api/port-watch`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ port: WS_PORT, mode: 'tcp', timeoutMs: 30000 }),
    });
    assert.match(await watch.text(), /"type":"ready"/);
    const url = `${wsBase}/sandboxes/${SANDBOX}/api/ws-connect/${WS_PORT}`;
    const echoOnce = async () => {
      const ws = await openWs(url);
      const reply = new Promise((resolve) => ws.once('message', (d) => resolve(d.toString())));
      ws.send('ping');
      assert.equal(await reply, 'ping');
      ws.close();
      await new Promise((r) => ws.once('close', r));
    };
    await echoOnce();
    const baseline = await stable(fds);

    const sockets = await Promise.all(Array.from({ length: 20 }, () => openWs(url)));
    // each has 3 MiB in flight toward the echo when it is reset
    for (const ws of sockets) for (let i = 0; i < 50; ++i) ws.send('x'.repeat(64 * 1024));
    for (const ws of sockets) ws.terminate();
    assert.ok(await settle(fds, baseline) <= baseline, `daemon fds above the baseline ${baseline}`);
    await echoOnce();
    assert.ok(await settle(fds, baseline) <= baseline, `daemon fds above the baseline ${baseline}`);
    await fetch(`${api}/api/process/kill-all`, { method: 'DELETE' });
  });
});
