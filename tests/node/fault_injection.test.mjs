// Faults from the outside: clients that vanish mid-request and a daemon stopped under load. Nothing
// may crash, hang, leak a process or lose a workspace.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';

import { startDaemon } from './daemon.mjs';
import { post, survivors } from './http_helpers.mjs';

// Opens a raw TCP connection, writes `bytes`, reads for `readMs`, then drops it.
function rawExchange(url, bytes, readMs = 0) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const sock = connect(Number(port), hostname, () => {
      if (bytes) sock.write(bytes);
      setTimeout(() => { sock.destroy(); resolve(); }, readMs);
    });
    sock.on('error', () => resolve());
    sock.on('data', () => {});
  });
}

function childrenOf(pid) {
  const out = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

describe('clients that vanish', () => {
  test('1,000 connections opened and dropped, half-sent requests and bodies, mid-stream disconnects', async () => {
    const daemon = await startDaemon(['--python-pool', '0']);
    try {
      const sb = `${daemon.url}/sandboxes/faults`;
      assert.equal((await post(`${sb}/api/execute`, { command: 'true' })).status, 200);
      for (let round = 0; round < 10; ++round) {
        const drops = [];
        for (let i = 0; i < 100; ++i) {
          const kind = i % 4;
          if (kind === 0) drops.push(rawExchange(daemon.url, null));
          if (kind === 1) drops.push(rawExchange(daemon.url, 'POST /api/execute HTTP/1.1\r\nHost: x\r\n'));
          if (kind === 2) drops.push(rawExchange(daemon.url, 'PUT /sandboxes/faults/api/files/raw?path=/workspace/cut.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\npartial'));
          if (kind === 3) drops.push(rawExchange(daemon.url, 'POST /sandboxes/faults/api/execute/stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 29\r\n\r\n{"command":"sleep 0.2; yes"}', 50));
        }
        await Promise.all(drops);
      }
      // a cut upload never becomes a file (writes are whole or nothing)
      const cut = await post(`${sb}/api/exists`, { path: '/workspace/cut.bin' });
      assert.equal(cut.body.exists, false);
      // a client that leaves an SSE stream of code output: the cell is interrupted, the context stays usable
      const ctx = (await post(`${sb}/api/contexts`, { language: 'python' })).body.contextId;
      const ac = new AbortController();
      const res = await fetch(`${sb}/api/execute/code`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ context_id: ctx, code: 'import time\nfor i in range(600):\n    print(i, flush=True)\n    time.sleep(0.05)' }),
        signal: ac.signal,
      });
      const reader = res.body.getReader();
      await reader.read();
      ac.abort();
      let answer;
      for (let i = 0; i < 50 && !answer?.startsWith?.('data: {"isMainResult"'); ++i) {
        const again = await fetch(`${sb}/api/execute/code`, {
          method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ context_id: ctx, code: '6*7' }),
        });
        answer = (await again.text()).split('\n').find((l) => l.includes('"result"')) ?? '';
        if (answer.includes('"42"')) break;
      }
      assert.match(answer, /"text":"42"/);
      // and the daemon still answers everything
      const r = await post(`${sb}/api/execute`, { command: 'echo alive' });
      assert.equal(r.body.stdout, 'alive\n');
      // yes(1) of the dropped streams does not run forever: a command whose stream client left
      // finishes or is killed when its session is deleted; kill-all leaves nothing running
      await fetch(`${sb}/api/process/kill-all`, { method: 'DELETE' });
    } finally {
      const { code } = await daemon.stop();
      assert.equal(code, 0);
    }
  });
});

describe('SIGTERM under load', () => {
  test('in-flight requests get answers or clean errors; no child survives; workspaces stay; a restart serves', async () => {
    const daemon = await startDaemon(['--python-pool', '0']);
    const sb = `${daemon.url}/sandboxes/load`;
    await post(`${sb}/api/write`, { path: '/workspace/keep.txt', content: 'intact' });
    await post(`${sb}/api/process/start`, { command: 'sleep 300', processId: 'sleeper' });
    const children = childrenOf(daemon.pid);
    assert.ok(children.length > 0, 'the daemon has child processes (bwrap, nsenter)');
    // load: commands, file writes and streams in flight when SIGTERM arrives
    const inflight = [];
    for (let i = 0; i < 30; ++i) {
      inflight.push(fetch(`${sb}/api/execute`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ command: `sleep 0.${i % 5}; echo ${i}`, sessionId: `s${i % 6}` }),
      }).then(async (r) => ({ status: r.status, text: await r.text() }), (e) => ({ error: e })));
    }
    await new Promise((r) => setTimeout(r, 150));
    const stopped = daemon.stop();
    const results = await Promise.all(inflight);
    assert.equal((await stopped).code, 0);
    for (const r of results) {
      if (r.error) continue; // the connection was closed at the deadline: a clean network error, not a hang
      assert.ok(r.status === 200 || r.status >= 400, `status ${r.status}`);
      JSON.parse(r.text); // a complete JSON body, success or error
    }
    assert.ok(results.some((r) => r.status === 200), 'requests in flight were answered');
    assert.deepEqual(await survivors(children), [], 'no child of the daemon survives it');

    const again = await startDaemon(['--python-pool', '0'], { dataDir: daemon.dataDir });
    try {
      const read = await post(`${again.url}/sandboxes/load/api/read`, { path: '/workspace/keep.txt' });
      assert.equal(read.body.content, 'intact');
      const proc = await (await fetch(`${again.url}/sandboxes/load/api/process/sleeper`)).json();
      assert.equal(proc.process.status, 'killed');
    } finally {
      assert.equal((await again.stop()).code, 0);
    }
  });
});
