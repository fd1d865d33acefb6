// The kernel WebSocket (/api/kernels/{id}/channels) as jupyter_server serves it, through
// JupyterLab's own @jupyterlab/services client (and `ws` where the raw socket matters):
// buffering and replay for a returning session, restart/death announcements, interrupt,
// shutdown, IOPub rate limits with the standard notice, 404 before the upgrade.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import services from '@jupyterlab/services';
import WebSocket from 'ws';

import { startDaemon } from './daemon.mjs';

const { KernelManager, ServerConnection } = services;

function settingsFor(daemon) {
  return ServerConnection.makeSettings({
    baseUrl: `${daemon.url}/`,
    wsUrl: daemon.url.replace('http', 'ws') + '/',
    WebSocket,
    appendToken: false,
  });
}

// Waits (no deadline of its own: the test's timeout bounds it) until `check()` is truthy.
async function until(check, pauseMs = 20) {
  for (;;) {
    const value = await check();
    if (value) return value;
    await new Promise((r) => setTimeout(r, pauseMs));
  }
}

async function kernelState(daemon, id) {
  const res = await fetch(`${daemon.url}/api/kernels/${id}`);
  return res.status === 200 ? (await res.json()).execution_state : `http ${res.status}`;
}

// Every message a connection receives, from its creation on.
function record(kernel) {
  const seen = [];
  kernel.anyMessage.connect((_, args) => {
    if (args.direction === 'recv') seen.push(args.msg);
  });
  return seen;
}

const streamText = (msgs) => msgs.filter((m) => m.header.msg_type === 'stream').map((m) => m.content.text).join('');

describe('kernel WebSocket channels', () => {
  let daemon;
  let serverSettings;
  let manager;

  before(async () => {
    daemon = await startDaemon(['--python-pool', '0']);
    serverSettings = settingsFor(daemon);
    manager = new KernelManager({ serverSettings });
    await manager.ready;
  });

  after(async () => {
    manager.dispose();
    const { code } = await daemon.stop();
    assert.equal(code, 0);
  });

  test('an unknown kernel id is a 404 before the upgrade', async () => {
    const ws = new WebSocket(`${daemon.url.replace('http', 'ws')}/api/kernels/no-such-kernel/channels?session_id=x`);
    const status = await new Promise((resolve) => {
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode));
      ws.on('open', () => resolve(101));
      ws.on('error', () => {});
    });
    assert.equal(status, 404);
  });

  test('output produced while disconnected is replayed to the same session, not to another', async () => {
    const first = await manager.startNew({ name: 'python3' });
    await first.info;
    const clientId = first.clientId;
    const flag = join(daemon.dataDir, `flag-${Date.now()}`);
    const code = `import os, time\nwhile not os.path.exists(${JSON.stringify(flag)}): time.sleep(0.01)\nprint("while away")`;
    const future = first.requestExecute({ code });
    let started = false;
    future.onIOPub = (msg) => {
      if (msg.header.msg_type === 'execute_input') started = true;
    };
    await until(() => started);
    const model = { id: first.id, name: first.name };
    first.dispose(); // the socket closes; the cell keeps running
    await until(async () => (await fetch(`${daemon.url}/api/kernels/${model.id}`).then((r) => r.json())).connections === 0);
    writeFileSync(flag, '');
    await until(async () => (await kernelState(daemon, model.id)) === 'idle');

    const again = manager.connectTo({ model, clientId });
    const seen = record(again);
    await until(() => seen.some((m) => m.header.msg_type === 'execute_reply'));
    assert.equal(streamText(seen), 'while away\n');
    const reply = seen.find((m) => m.header.msg_type === 'execute_reply');
    assert.equal(reply.content.status, 'ok');
    assert.equal(reply.parent_header.session, clientId);

    // Another session does not get what was buffered for this one.
    again.dispose();
    await until(async () => (await fetch(`${daemon.url}/api/kernels/${model.id}`).then((r) => r.json())).connections === 0);
    const agent = await fetch(`${daemon.url}/api/execute/code`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ context_id: model.id, code: 'print("for the buffer")' }),
    });
    await agent.text();
    const other = manager.connectTo({ model });
    const otherSeen = record(other);
    const f = other.requestExecute({ code: '1+1' });
    await f.done;
    assert.ok(!streamText(otherSeen).includes('for the buffer'), 'another session got the buffered output');
    await other.shutdown();
  });

  test('a restart by someone else is announced as status restarting; the client reconnects and runs', async () => {
    const kernel = await manager.startNew({ name: 'python3' });
    await kernel.info;
    await kernel.requestExecute({ code: 'x = 1' }).done;
    const statuses = [];
    kernel.statusChanged.connect((_, s) => statuses.push(s));
    const res = await fetch(`${daemon.url}/api/contexts/${kernel.id}/restart`, { method: 'POST' });
    assert.equal(res.status, 200);
    await until(() => statuses.includes('autorestarting'));
    await until(() => kernel.connectionStatus === 'connected' && kernel.status === 'idle');
    const out = [];
    const future = kernel.requestExecute({ code: "print('x' in globals())" });
    future.onIOPub = (msg) => msg.header.msg_type === 'stream' && out.push(msg.content.text);
    await future.done;
    assert.equal(out.join(''), 'False\n');
    await kernel.shutdown();
  });

  test('the client\'s own restart (REST) still works', async () => {
    const kernel = await manager.startNew({ name: 'python3' });
    await kernel.info;
    await kernel.requestExecute({ code: 'y = 2' }).done;
    await kernel.restart();
    const out = [];
    const future = kernel.requestExecute({ code: "print('y' in globals())" });
    future.onIOPub = (msg) => msg.header.msg_type === 'stream' && out.push(msg.content.text);
    await future.done;
    assert.equal(out.join(''), 'False\n');
    await kernel.shutdown();
  });

  test('a kernel that dies is announced as status dead', async () => {
    const kernel = await manager.startNew({ name: 'python3' });
    await kernel.info;
    const statuses = [];
    kernel.statusChanged.connect((_, s) => statuses.push(s));
    kernel.requestExecute({ code: 'import os, signal\nos.kill(os.getpid(), signal.SIGKILL)' });
    await until(() => statuses.includes('dead'));
    assert.equal(await kernelState(daemon, kernel.id), 'dead');
    await fetch(`${daemon.url}/api/kernels/${kernel.id}`, { method: 'DELETE' });
  });

  test('interrupt stops a running cell; the kernel keeps its state', async () => {
    const kernel = await manager.startNew({ name: 'python3' });
    await kernel.info;
    await kernel.requestExecute({ code: 'kept = 7' }).done;
    const future = kernel.requestExecute({ code: 'import time\nwhile True: time.sleep(0.01)' });
    let running = false;
    future.onIOPub = (msg) => {
      if (msg.header.msg_type === 'execute_input') running = true;
    };
    await until(() => running);
    await kernel.interrupt();
    const reply = await future.done;
    assert.equal(reply.content.status, 'error');
    assert.equal(reply.content.ename, 'KeyboardInterrupt');
    const out = [];
    const next = kernel.requestExecute({ code: 'print(kept)' });
    next.onIOPub = (msg) => msg.header.msg_type === 'stream' && out.push(msg.content.text);
    await next.done;
    assert.equal(out.join(''), '7\n');
    await kernel.shutdown();
  });

  test('shutdown removes the kernel and closes its other sockets', async () => {
    const kernel = await manager.startNew({ name: 'python3' });
    await kernel.info;
    const raw = new WebSocket(`${daemon.url.replace('http', 'ws')}/api/kernels/${kernel.id}/channels?session_id=raw`);
    await new Promise((resolve, reject) => {
      raw.on('open', resolve);
      raw.on('error', reject);
    });
    const closed = new Promise((resolve) => raw.on('close', resolve));
    await kernel.shutdown();
    assert.equal(kernel.status, 'dead');
    await closed;
    assert.equal((await fetch(`${daemon.url}/api/kernels/${kernel.id}`)).status, 404);
  });

  test('a kernel deleted through the agent API closes its sockets too', async () => {
    const created = await (await fetch(`${daemon.url}/api/contexts`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ language: 'python' }),
    })).json();
    const raw = new WebSocket(`${daemon.url.replace('http', 'ws')}/api/kernels/${created.contextId}/channels?session_id=raw2`);
    await new Promise((resolve, reject) => {
      raw.on('open', resolve);
      raw.on('error', reject);
    });
    const closed = new Promise((resolve) => raw.on('close', resolve));
    const res = await fetch(`${daemon.url}/api/contexts/${created.contextId}`, { method: 'DELETE' });
    assert.equal(res.status, 200);
    await closed;
  });

  test('the legacy JSON protocol (no subprotocol) executes and sees IOPub', async () => {
    const kernel = await manager.startNew({ name: 'python3' });
    await kernel.info;
    const raw = new WebSocket(`${daemon.url.replace('http', 'ws')}/api/kernels/${kernel.id}/channels?session_id=legacy`);
    await new Promise((resolve, reject) => {
      raw.on('open', resolve);
      raw.on('error', reject);
    });
    const seen = [];
    raw.on('message', (data, isBinary) => {
      if (!isBinary) seen.push(JSON.parse(data.toString()));
    });
    const msgId = `legacy-${Date.now()}`;
    raw.send(JSON.stringify({
      header: { msg_id: msgId, msg_type: 'execute_request', session: 'legacy', username: 'u', version: '5.3', date: new Date().toISOString() },
      parent_header: {}, metadata: {}, channel: 'shell',
      content: { code: 'print(3*3)', silent: false, store_history: true, user_expressions: {}, allow_stdin: false },
    }));
    await until(() => seen.some((m) => m.msg_type === 'execute_reply' && m.parent_header.msg_id === msgId));
    const out = seen.filter((m) => m.channel === 'iopub' && m.msg_type === 'stream' && m.parent_header.msg_id === msgId);
    assert.equal(out.map((m) => m.content.text).join(''), '9\n');
    raw.close();
    await kernel.shutdown();
  });
});

describe('IOPub rate limits', () => {
  let daemon;
  let manager;

  before(async () => {
    // A long window and a low limit: the cells below exceed them whatever the machine's speed.
    daemon = await startDaemon(['--python-pool', '0', '--iopub-msg-rate-limit', '1', '--iopub-data-rate-limit', '1000',
      '--rate-limit-window', '30']);
    manager = new KernelManager({ serverSettings: settingsFor(daemon) });
    await manager.ready;
  });

  after(async () => {
    manager.dispose();
    const { code } = await daemon.stop();
    assert.equal(code, 0);
  });

  test('too many messages: output stops with the message-rate notice, the reply still arrives', async () => {
    const kernel = await manager.startNew({ name: 'python3' });
    await kernel.info;
    const seen = record(kernel);
    const reply = await kernel.requestExecute({ code: 'for i in range(200): display(i)' }).done;
    assert.equal(reply.content.status, 'ok');
    const displays = seen.filter((m) => m.header.msg_type === 'display_data').length;
    assert.ok(displays < 200, `all ${displays} displays were sent`);
    const notice = seen.find((m) => m.header.msg_type === 'stream' && m.content.name === 'stderr');
    assert.ok(notice, 'a notice was sent');
    assert.match(notice.content.text, /^IOPub message rate exceeded\.\nThe Jupyter server will temporarily stop sending output/);
    assert.match(notice.content.text, /ServerApp\.iopub_msg_rate_limit=1\.0 \(msgs\/sec\)\nServerApp\.rate_limit_window=30\.0 \(secs\)/);
    assert.equal(notice.parent_header.msg_id, reply.parent_header.msg_id);
    await kernel.shutdown();
  });

  test('too much data: the data-rate notice', async () => {
    const kernel = await manager.startNew({ name: 'python3' });
    await kernel.info;
    const seen = record(kernel);
    await kernel.requestExecute({ code: "print('x' * 100000)" }).done;
    const text = streamText(seen);
    assert.ok(!text.includes('x'.repeat(1000)), 'the big stream was sent');
    assert.match(text, /^IOPub data rate exceeded\./m);
    await kernel.shutdown();
  });
});
