// Kernels that fail behind the daemon (tests/support/misbehaving_kernel.py and our own Python
// kernel): crashes mid-cell, at start and during shutdown; a kernel flooding IOPub; a kernel sending
// malformed and wrongly signed messages. The daemon answers each with a clear error, keeps serving,
// leaves no zombie, keeps its memory bounded, and a restarted context works.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';

import { startDaemon } from './daemon.mjs';
import { descendants, post, processSample, request, rssAllowance, runCode, SANITIZED, survivors, until } from './http_helpers.mjs';

// The daemon sees the test kernels (kh-test-*) besides the usual kernelspecs.
function daemonWithTestKernels(args = ['--python-pool', '0']) {
  const env = { ...process.env, KH_DATA_PATH: `${process.env.KH_TEST_DATA_PATH}:${process.env.KH_DATA_PATH}` };
  return startDaemon(args, { env });
}

async function createContext(daemon, body) {
  const r = await post(`${daemon.url}/api/contexts`, body);
  assert.equal(r.status < 300, true, `context creation: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.contextId;
}

const zombies = (daemon) => descendants(daemon.pid).filter((p) => p.state === 'Z');
const kernelPids = (daemon, marker) => descendants(daemon.pid).filter((p) => p.cmdline.includes(marker)).map((p) => p.pid);

async function pingOk(daemon) {
  const r = await request(`${daemon.url}/api/ping`, { method: 'GET' });
  assert.equal(r.status, 200);
  assert.equal(r.json.status, 'healthy');
}

describe('kernels that crash', () => {
  let daemon;
  before(async () => {
    assert.ok(process.env.KH_TEST_DATA_PATH, 'KH_TEST_DATA_PATH names the test kernels (set by ctest)');
    daemon = await daemonWithTestKernels();
  });
  after(async () => {
    assert.deepEqual(zombies(daemon), []);
    assert.equal((await daemon.stop()).code, 0);
  });

  for (const [mode, signal] of [['segv-mid-cell', 11], ['sigkill-mid-cell', 9]]) {
    test(`${mode}: the cell ends with KERNEL_DIED, the daemon serves, restart works, no zombie`, async () => {
      const id = await createContext(daemon, { kernel: `kh-test-${mode}` });
      const [pid] = kernelPids(daemon, `--mode ${mode}`);
      assert.ok(pid, 'the kernel process is a descendant of the daemon');
      const died = await runCode(daemon.url, { context_id: id, code: 'die' });
      assert.equal(died.status, 200);
      assert.equal(died.last.type, 'error');
      assert.equal(died.last.code, 'KERNEL_DIED');
      assert.equal(died.last.details.signal, signal);
      assert.equal(existsSync(`/proc/${pid}`), false, 'the dead kernel was reaped');
      assert.deepEqual(zombies(daemon), []);
      await pingOk(daemon);
      const state = await request(`${daemon.url}/api/contexts/${id}`, { method: 'GET' });
      assert.equal(state.json.context.state, 'dead');
      // a cell on the dead context is refused at once with a clear code, not hung
      const refused = await runCode(daemon.url, { context_id: id, code: '1' });
      assert.equal(refused.last?.code ?? refused.error?.code, 'KERNEL_NOT_RUNNING');

      const restarted = await post(`${daemon.url}/api/contexts/${id}/restart`, {});
      assert.equal(restarted.status, 200);
      const back = await runCode(daemon.url, { context_id: id, code: "print('back')" });
      assert.equal(back.text, 'back\n');
      assert.equal(back.last.type, 'execution_complete');
      const [newPid] = kernelPids(daemon, `--mode ${mode}`);
      assert.equal((await request(`${daemon.url}/api/contexts/${id}`, { method: 'DELETE' })).status, 200);
      assert.deepEqual(await survivors([newPid]), []);
    });
  }

  for (const [mode, signal] of [['sigkill-at-start', 9], ['segv-at-kernel-info', 11]]) {
    test(`${mode}: context creation fails with KERNEL_START_FAILED naming the signal; nothing is left`, async () => {
      const r = await post(`${daemon.url}/api/contexts`, { kernel: `kh-test-${mode}` });
      assert.equal(r.status >= 500, true, `status ${r.status}`);
      assert.equal(r.body.code, 'KERNEL_START_FAILED');
      assert.equal(r.body.context.signal, signal, JSON.stringify(r.body));
      assert.deepEqual(kernelPids(daemon, `--mode ${mode}`), []);
      assert.deepEqual(zombies(daemon), []);
      await pingOk(daemon);
    });
  }

  test('segv-during-shutdown: deleting the context answers; the crashed kernel is reaped', async () => {
    const id = await createContext(daemon, { kernel: 'kh-test-segv-during-shutdown' });
    const [pid] = kernelPids(daemon, '--mode segv-during-shutdown');
    assert.equal((await runCode(daemon.url, { context_id: id, code: 'print(1)' })).text, '1\n');
    // a restart runs the same ladder, then the final delete
    assert.equal((await post(`${daemon.url}/api/contexts/${id}/restart`, {})).status, 200);
    assert.equal(existsSync(`/proc/${pid}`), false);
    const [second] = kernelPids(daemon, '--mode segv-during-shutdown');
    assert.equal((await runCode(daemon.url, { context_id: id, code: 'print(2)' })).text, '2\n');
    assert.equal((await request(`${daemon.url}/api/contexts/${id}`, { method: 'DELETE' })).status, 200);
    assert.equal(existsSync(`/proc/${second}`), false);
    assert.deepEqual(zombies(daemon), []);
    await pingOk(daemon);
  });

  for (const signal of ['SIGKILL', 'SIGSEGV']) {
    // an AddressSanitizer build of kernel-host-python turns SIGSEGV into a report and exit code 1
    const skip = signal === 'SIGSEGV' && SANITIZED ? 'kernel-host-python handles SIGSEGV itself under ASan' : false;
    test(`our Python kernel killed from outside with ${signal} mid-cell: KERNEL_DIED, restart works`, { skip }, async () => {
      const id = await createContext(daemon, { language: 'python' });
      let killed;
      const code = 'import os, time\nprint(os.getpid(), flush=True)\nwhile True: time.sleep(0.01)';
      const died = await runCode(daemon.url, { context_id: id, code }, {
        onEvent: (e) => {
          if (killed || e.type !== 'stdout') return;
          killed = Number(e.text);
          // default contexts run on the host (no pid namespace): the pid is the kernel's own
          assert.ok(descendants(daemon.pid).some((p) => p.pid === killed), 'the pid is a kernel of the daemon');
          process.kill(killed, signal);
        },
      });
      assert.ok(killed);
      assert.equal(died.last.type, 'error');
      assert.equal(died.last.code, 'KERNEL_DIED');
      assert.equal(existsSync(`/proc/${killed}`), false);
      assert.deepEqual(zombies(daemon), []);
      assert.equal((await post(`${daemon.url}/api/contexts/${id}/restart`, {})).status, 200);
      const back = await runCode(daemon.url, { context_id: id, code: 'print(6 * 7)' });
      assert.equal(back.text, '42\n');
      assert.equal((await request(`${daemon.url}/api/contexts/${id}`, { method: 'DELETE' })).status, 200);
    });
  }
});

describe('a kernel that floods IOPub', () => {
  let daemon;
  let sampler;
  let maxRss = 0;
  before(async () => {
    daemon = await daemonWithTestKernels();
    sampler = setInterval(() => {
      maxRss = Math.max(maxRss, processSample(daemon.pid).rss);
    }, 20);
  });
  after(async () => {
    clearInterval(sampler);
    assert.equal((await daemon.stop()).code, 0);
  });

  // While `flood` streams, another context answers and the daemon's health route too.
  async function floodWhileServing(code) {
    const flooder = await createContext(daemon, { kernel: 'kh-test-normal' });
    const other = await createContext(daemon, { kernel: 'kh-test-normal' });
    let started;
    const firstOutput = new Promise((resolve) => { started = resolve; });
    const stderr = [];
    const flood = runCode(daemon.url, { context_id: flooder, code }, {
      keepText: false,
      onEvent: (e) => {
        started();
        if (e.type === 'stderr') stderr.push(e.text);
      },
    });
    await firstOutput;
    await pingOk(daemon);
    const meanwhile = await runCode(daemon.url, { context_id: other, code: 'print(6 * 7)' });
    assert.equal(meanwhile.text, '42\n');
    const flooded = await flood;
    maxRss = Math.max(maxRss, processSample(daemon.pid).rss);
    for (const id of [flooder, other]) await request(`${daemon.url}/api/contexts/${id}`, { method: 'DELETE' });
    return { ...flooded, stderr: stderr.join('') };
  }

  // What did not reach the client is said: a marker with the dropped bytes (the daemon bounds what
  // waits for a slow client), or nothing was dropped by the daemon.
  function droppedByDaemon(flooded) {
    const m = flooded.stderr.match(/\[kernel-host: (\d+) bytes of output in (\d+) messages were dropped/g) ?? [];
    return m.reduce((sum, line) => sum + Number(line.match(/(\d+) bytes/)[1]), 0);
  }

  test('1 GiB of stdout in 1 MiB messages: all of it streams, memory stays bounded', async () => {
    const flooded = await floodWhileServing('kh.flood_bytes(1 << 30)\nprint("end of flood")');
    assert.equal(flooded.last.type, 'execution_complete');
    const dropped = droppedByDaemon(flooded);
    console.log(`# 1 GiB flood: ${flooded.outputBytes} bytes streamed, ${dropped} bytes of events dropped with a marker, daemon peak RSS ${(maxRss / 2 ** 20).toFixed(0)} MiB`);
    // The kernel's PUB socket also drops messages when the daemon falls behind (ZeroMQ's
    // high-water mark, as with any Jupyter client): what arrives is whole messages.
    // (outputBytes counts stderr too: the daemon's drop marker, when the client fell behind)
    const stdoutBytes = flooded.outputBytes - Buffer.byteLength(flooded.stderr);
    assert.ok([0, 'end of flood\n'.length].includes(stdoutBytes % (1 << 20)), `${stdoutBytes} bytes`);
    assert.ok(flooded.outputBytes > 0);
    assert.ok(maxRss < rssAllowance(500), `daemon RSS peaked at ${maxRss} bytes`);
  });

  test('a million small messages: memory stays bounded, the cell completes', async () => {
    const flooded = await floodWhileServing('kh.flood_messages(1_000_000)\nprint("end of flood")');
    assert.equal(flooded.last.type, 'execution_complete');
    console.log(`# 1e6-message flood: ${flooded.outputBytes} bytes (2 a message) streamed, ${droppedByDaemon(flooded)} bytes of events dropped with a marker, daemon peak RSS ${(maxRss / 2 ** 20).toFixed(0)} MiB`);
    assert.ok(flooded.outputBytes > 0);
    assert.ok(maxRss < rssAllowance(500), `daemon RSS peaked at ${maxRss} bytes`);
  });

  test('a client that stops reading: what waits for it is bounded, the rest is dropped with a marker', async () => {
    const id = await createContext(daemon, { kernel: 'kh-test-normal' });
    let held = false;
    const stderr = [];
    const flooded = await runCode(daemon.url, { context_id: id, code: 'kh.flood_bytes(256 << 20)' }, {
      keepText: false,
      onEvent: (e) => e.type === 'stderr' && stderr.push(e.text),
      // after the first chunk, read nothing more until the kernel has finished the cell
      hold: async () => {
        if (held) return;
        held = true;
        await until(async () => (await request(`${daemon.url}/api/contexts/${id}`, { method: 'GET' })).json.context.state === 'idle');
      },
    });
    assert.equal(flooded.last.type, 'execution_complete');
    const marker = stderr.join('').match(/\[kernel-host: (\d+) bytes of output in (\d+) messages were dropped: the client read slower/);
    assert.ok(marker, 'a marker says what was dropped');
    assert.ok(Number(marker[1]) > 0 && Number(marker[2]) > 0);
    console.log(`# slow client: ${flooded.outputBytes} bytes streamed, ${marker[1]} bytes in ${marker[2]} messages dropped, daemon peak RSS ${(maxRss / 2 ** 20).toFixed(0)} MiB`);
    assert.ok(flooded.outputBytes < 256 << 20);
    assert.ok(maxRss < rssAllowance(500), `daemon RSS peaked at ${maxRss} bytes`);
    await request(`${daemon.url}/api/contexts/${id}`, { method: 'DELETE' });
  });

  test('an interrupt stops a flooding cell; the context keeps working', async () => {
    const id = await createContext(daemon, { kernel: 'kh-test-normal' });
    let interrupted;
    const flood = runCode(daemon.url, { context_id: id, code: 'kh.flood_messages(10 ** 9)' }, {
      keepText: false,
      onEvent: () => {
        interrupted ??= post(`${daemon.url}/api/contexts/${id}/interrupt`, {});
      },
    });
    const flooded = await flood;
    assert.equal((await interrupted).status, 200);
    assert.equal(flooded.last.type, 'error');
    assert.equal(flooded.last.ename, 'KeyboardInterrupt');
    const next = await runCode(daemon.url, { context_id: id, code: 'print("still here")' });
    assert.equal(next.text, 'still here\n');
    assert.ok(maxRss < rssAllowance(500), `daemon RSS peaked at ${maxRss} bytes`);
    await request(`${daemon.url}/api/contexts/${id}`, { method: 'DELETE' });
  });
});

describe('a kernel that sends garbage', () => {
  test('malformed and wrongly signed messages never reach the client; the next good message works', async () => {
    const daemon = await daemonWithTestKernels();
    try {
      const id = await createContext(daemon, { kernel: 'kh-test-normal' });
      for (let i = 0; i < 3; ++i) {
        const r = await runCode(daemon.url, { context_id: id, code: `kh.send_garbage()\nprint("good ${i}")` });
        assert.equal(r.text, `good ${i}\n`);
        assert.ok(!JSON.stringify(r.events).includes('FORGED'));
        assert.equal(r.last.type, 'execution_complete');
        assert.equal(r.last.execution_count, i + 1);  // not the forged reply's 999999
        await pingOk(daemon);
      }
      const again = await runCode(daemon.url, { context_id: id, code: 'print(6 * 7)' });
      assert.equal(again.text, '42\n');
    } finally {
      assert.equal((await daemon.stop()).code, 0);
    }
  });
});
