// JupyterLab's own @jupyterlab/services client against kernel-host (REST + WebSocket channels).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import services from '@jupyterlab/services';
import WebSocket from 'ws';

import { startDaemon } from './daemon.mjs';

const { KernelManager, KernelSpecManager, ServerConnection } = services;

describe('@jupyterlab/services', () => {
  let daemon;
  let serverSettings;
  let manager;

  before(async () => {
    daemon = await startDaemon(['--python-pool', '0']);
    serverSettings = ServerConnection.makeSettings({
      baseUrl: `${daemon.url}/`,
      wsUrl: daemon.url.replace('http', 'ws') + '/',
      WebSocket,
      appendToken: false,
    });
    manager = new KernelManager({ serverSettings });
    await manager.ready;
  });

  after(async () => {
    manager.dispose();
    const { code } = await daemon.stop();
    assert.equal(code, 0);
  });

  test('KernelSpecManager lists the kernelspecs', async () => {
    const specs = new KernelSpecManager({ serverSettings });
    await specs.ready;
    assert.ok(specs.specs.kernelspecs.python3, 'python3 is listed');
    assert.ok(specs.specs.default in specs.specs.kernelspecs);
    specs.dispose();
  });

  test('start, execute with IOPub, display data, shutdown', async () => {
    const kernel = await manager.startNew({ name: 'python3' });
    const info = await kernel.info;
    assert.equal(info.language_info.name, 'python');
    const streams = [];
    const results = [];
    const future = kernel.requestExecute({ code: 'print("hello")\n6*7' });
    future.onIOPub = (msg) => {
      if (msg.header.msg_type === 'stream') streams.push(msg.content.text);
      if (msg.header.msg_type === 'execute_result') results.push(msg.content.data['text/plain']);
    };
    const reply = await future.done;
    assert.equal(reply.content.status, 'ok');
    assert.deepEqual(streams.join(''), 'hello\n');
    assert.deepEqual(results, ['42']);
    await kernel.shutdown();
    const res = await fetch(`${daemon.url}/api/kernels/${kernel.id}`);
    assert.equal(res.status, 404);
  });

  test('input over the stdin channel', async () => {
    const kernel = await manager.startNew({ name: 'python3' });
    const future = kernel.requestExecute({ code: 'name = input("who? ")\nprint("hi", name)', allow_stdin: true });
    const out = [];
    future.onIOPub = (msg) => {
      if (msg.header.msg_type === 'stream') out.push(msg.content.text);
    };
    future.onStdin = (msg) => {
      assert.equal(msg.content.prompt, 'who? ');
      kernel.sendInputReply({ status: 'ok', value: 'ada' }, msg.header);
    };
    await future.done;
    assert.equal(out.join(''), 'hi ada\n');
    await kernel.shutdown();
  });

  test('a context created by an agent opens as a kernel', async () => {
    const created = await (await fetch(`${daemon.url}/api/contexts`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ language: 'python', variables: { shared: 5 } }),
    })).json();
    const kernel = manager.connectTo({ model: { id: created.contextId, name: 'python3' } });
    const future = kernel.requestExecute({ code: 'shared * 2' });
    let value;
    future.onIOPub = (msg) => {
      if (msg.header.msg_type === 'execute_result') value = msg.content.data['text/plain'];
    };
    await future.done;
    assert.equal(value, '10');
    kernel.dispose();
    await fetch(`${daemon.url}/api/contexts/${created.contextId}`, { method: 'DELETE' });
  });
});

describe('@jupyterlab/services SessionManager', () => {
  let daemon;
  let serverSettings;

  before(async () => {
    daemon = await startDaemon(['--python-pool', '0']);
    serverSettings = ServerConnection.makeSettings({
      baseUrl: `${daemon.url}/`,
      wsUrl: daemon.url.replace('http', 'ws') + '/',
      WebSocket,
      appendToken: false,
    });
  });

  after(async () => {
    const { code } = await daemon.stop();
    assert.equal(code, 0);
  });

  test('start a session, execute, rename, shut down', async () => {
    const kernelManager = new KernelManager({ serverSettings });
    const sessions = new services.SessionManager({ serverSettings, kernelManager });
    await sessions.ready;
    const session = await sessions.startNew({ path: 'work/a.ipynb', name: 'a.ipynb', type: 'notebook', kernel: { name: 'python3' } });
    assert.equal(session.path, 'work/a.ipynb');
    const future = session.kernel.requestExecute({ code: '21*2' });
    let value;
    future.onIOPub = (msg) => {
      if (msg.header.msg_type === 'execute_result') value = msg.content.data['text/plain'];
    };
    await future.done;
    assert.equal(value, '42');
    await session.setPath('work/b.ipynb');
    const models = await (await fetch(`${daemon.url}/api/sessions`)).json();
    assert.equal(models.length, 1);
    assert.equal(models[0].path, 'work/b.ipynb');
    assert.equal(models[0].kernel.id, session.kernel.id);
    const kernelId = session.kernel.id;
    await session.shutdown();
    assert.equal((await fetch(`${daemon.url}/api/sessions`).then((r) => r.json())).length, 0);
    assert.equal((await fetch(`${daemon.url}/api/kernels/${kernelId}`)).status, 404);
    sessions.dispose();
    kernelManager.dispose();
  });
});
