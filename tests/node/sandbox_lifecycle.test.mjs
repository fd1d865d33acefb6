// Sandbox lifecycle over HTTP: idle sandboxes sleep and wake transparently with their workspace,
// keepAlive ones never sleep, an open stream keeps a sandbox awake, and a daemon restart keeps
// workspaces, sessions lists and reports the processes and contexts that ended with it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { startDaemon } from './daemon.mjs';
import { post } from './http_helpers.mjs';

// The state of a sandbox as GET /api/sandboxes lists it (listing does not wake anything).
async function stateOf(base, id) {
  const list = await (await fetch(`${base}/api/sandboxes`)).json();
  return list.sandboxes.find((s) => s.id === id)?.state;
}

// Polls (bounded) until the sandbox reaches the state; returns the last state seen.
async function waitForState(base, id, wanted, ms = 15000) {
  const deadline = Date.now() + ms;
  let state;
  while (Date.now() < deadline) {
    state = await stateOf(base, id);
    if (state === wanted) return state;
    await new Promise((r) => setTimeout(r, 100));
  }
  return state;
}

describe('idle sandboxes sleep and wake', () => {
  let daemon;
  before(async () => {
    daemon = await startDaemon(['--python-pool', '0', '--sleep-after', '1s']);
  });
  after(async () => {
    assert.equal((await daemon.stop()).code, 0);
  });

  test('a sleeping sandbox wakes on the next request with its workspace and sessions', async () => {
    const sb = `${daemon.url}/sandboxes/sleepy`;
    await post(`${sb}/api/session/create`, { id: 's1', env: { FLAVOR: 'mint' } });
    assert.equal((await post(`${sb}/api/write`, { path: '/workspace/kept.txt', content: 'kept' })).status, 200);
    await post(`${sb}/api/process/start`, { command: 'sleep 300', processId: 'long' });
    const kernel = await post(`${sb}/api/contexts`, { language: 'python' });
    assert.equal(kernel.status, 200, JSON.stringify(kernel.body));
    // a running process alone does not keep a sandbox awake: only requests and open streams do
    assert.equal(await waitForState(daemon.url, 'sleepy', 'sleeping'), 'sleeping');
    const read = await post(`${sb}/api/read`, { path: '/workspace/kept.txt' });
    assert.equal(read.body.content, 'kept');
    assert.equal(await stateOf(daemon.url, 'sleepy'), 'running');
    const proc = await (await fetch(`${sb}/api/process/long`)).json();
    assert.equal(proc.process.status, 'killed');
    assert.equal(proc.process.endReason, 'sandbox_slept');
    const sessions = await (await fetch(`${sb}/api/session/list`)).json();
    assert.ok(sessions.data.includes('s1'));
    // its kernel stopped with it, and its id says so
    const gone = await fetch(`${sb}/api/contexts/${kernel.body.contextId}`);
    assert.equal(gone.status, 404);
    const goneBody = await gone.json();
    assert.equal(goneBody.code, 'CONTEXT_NOT_FOUND');
    assert.equal(goneBody.context.reason, 'sandbox_slept');
    assert.match(goneBody.message, /ended when its sandbox went to sleep/);
    const env = await post(`${sb}/api/execute`, { command: 'echo $FLAVOR; pgrep -c -f "^sleep 300" || true', sessionId: 's1' });
    assert.equal(env.body.stdout, 'mint\n0\n');
  });

  test('keepAlive sandboxes never sleep; sleepAfter 0 never sleeps', async () => {
    assert.equal((await post(`${daemon.url}/api/sandboxes`, { id: 'awake', keepAlive: true })).status, 201);
    assert.equal((await post(`${daemon.url}/api/sandboxes`, { id: 'forever', sleepAfter: 0 })).status, 201);
    assert.equal((await post(`${daemon.url}/api/sandboxes`, { id: 'quick', sleepAfter: '1s' })).status, 201);
    assert.equal(await waitForState(daemon.url, 'quick', 'sleeping'), 'sleeping');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await stateOf(daemon.url, 'awake'), 'running');
    assert.equal(await stateOf(daemon.url, 'forever'), 'running');
    const info = await (await fetch(`${daemon.url}/api/sandboxes/awake`)).json();
    assert.equal(info.sandbox.keepAlive, true);
    assert.equal((await post(`${daemon.url}/api/sandboxes`, { sleepAfter: 'soon' })).status, 400);
  });

  test('an open stream keeps its sandbox awake until it ends', async () => {
    const sb = `${daemon.url}/sandboxes/streaming`;
    const res = await fetch(`${sb}/api/execute/stream`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ command: 'sleep 3; echo finished' }),
    });
    const text = await res.text(); // 3 s of silence: longer than sleepAfter
    assert.match(text, /finished/);
    assert.match(text, /"type":"complete"/);
    // it did not sleep under the command: the session still has the stream's shell
    const started = await fetch(`${sb}/api/process/list`);
    assert.equal(started.status, 200);
  });
});

describe('a daemon restart', () => {
  test('keeps sessions lists and reports processes that ended with the host', async () => {
    const first = await startDaemon(['--python-pool', '0']);
    const sb1 = `${first.url}/sandboxes/restarted`;
    await post(`${sb1}/api/session/create`, { id: 'kept-session', cwd: '/tmp' });
    await post(`${sb1}/api/process/start`, { command: 'sleep 300', processId: 'bg' });
    await post(`${sb1}/api/process/start`, { command: 'echo done', processId: 'quick' });
    const kept = await post(`${first.url}/api/contexts`, { language: 'python' });
    const deleted = await post(`${first.url}/api/contexts`, { language: 'python' });
    assert.equal(kept.status, 200, JSON.stringify(kept.body));
    assert.equal((await fetch(`${first.url}/api/contexts/${deleted.body.contextId}`, { method: 'DELETE' })).status, 200);
    const deletedNow = await (await fetch(`${first.url}/api/contexts/${deleted.body.contextId}`)).json();
    assert.equal(deletedNow.context.reason, 'deleted');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await first.stop()).code, 0);

    const second = await startDaemon(['--python-pool', '0'], { dataDir: first.dataDir });
    try {
      const sb2 = `${second.url}/sandboxes/restarted`;
      const listed = await (await fetch(`${second.url}/api/sandboxes`)).json();
      assert.ok(listed.sandboxes.some((s) => s.id === 'restarted'), 'a sandbox on disk is listed before it is woken');
      const bg = await (await fetch(`${sb2}/api/process/bg`)).json();
      assert.equal(bg.process.status, 'killed');
      assert.equal(bg.process.endReason, 'host_stopped');
      const quick = await (await fetch(`${sb2}/api/process/quick/logs`)).json();
      assert.equal(quick.stdout, 'done\n');
      const sessions = await (await fetch(`${sb2}/api/session/list`)).json();
      assert.ok(sessions.data.includes('kept-session'));
      const pwd = await post(`${sb2}/api/execute`, { command: 'pwd', sessionId: 'kept-session' });
      assert.equal(pwd.body.stdout, '/tmp\n');
      // a context of the first run: ended with the host, said so by its id and by a cell sent to it
      const ctx = await fetch(`${second.url}/api/contexts/${kept.body.contextId}`);
      assert.equal(ctx.status, 404);
      const ctxBody = await ctx.json();
      assert.equal(ctxBody.code, 'CONTEXT_NOT_FOUND');
      assert.equal(ctxBody.context.reason, 'host_stopped');
      const cell = await post(`${second.url}/api/execute/code`, { context_id: kept.body.contextId, code: '1' });
      assert.equal(cell.status, 404);
      assert.match(JSON.stringify(cell.body), /ended when the host stopped/);
      const unknown = await (await fetch(`${second.url}/api/contexts/never-was`)).json();
      assert.equal(unknown.context.reason, undefined);
    } finally {
      assert.equal((await second.stop()).code, 0);
    }
  });
});
