// The real @cloudflare/sandbox client classes against kernel-host (code-interpreter API).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { CodeInterpreter, SandboxClient, parseSSEStream } from '@cloudflare/sandbox';

import { startDaemon } from './daemon.mjs';

// A 1x1 PNG.
const PNG_B64 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

describe('@cloudflare/sandbox CodeInterpreter', () => {
  let daemon;
  let client;
  let ci;

  before(async () => {
    daemon = await startDaemon();
    client = new SandboxClient({ baseUrl: daemon.url, retryTimeoutMs: 5000 });
    ci = new CodeInterpreter(client.interpreter);
  });

  after(async () => {
    const { code } = await daemon.stop();
    assert.equal(code, 0, 'SIGTERM must stop the daemon with exit code 0');
  });

  test('ping', async () => {
    const res = await fetch(`${daemon.url}/api/ping`);
    assert.equal(res.status, 200);
    assert.equal((await res.json()).status, 'healthy');
  });

  test('python: stdout and the main result, with callbacks as they happen', async () => {
    const ctx = await ci.createCodeContext({ language: 'python' });
    assert.equal(ctx.language, 'python');
    const seen = [];
    const execution = await ci.runCode('print("hello")\n6*7', {
      context: ctx,
      onStdout: (o) => seen.push(['stdout', o.text]),
      onResult: (r) => seen.push(['result', r.text]),
    });
    // print() may reach the client as two stdout chunks ('hello', '\n') on a slow machine (seen
    // under ASan): check the joined text and that all stdout came before the result.
    assert.equal(execution.logs.stdout.join(''), 'hello\n');
    assert.equal(execution.results.length, 1);
    assert.equal(execution.results[0].text, '42');
    assert.equal(seen.filter(([k]) => k === 'stdout').map(([, t]) => t).join(''), 'hello\n');
    assert.deepEqual(seen.at(-1), ['result', '42']);
    assert.deepEqual(seen.filter(([k]) => k === 'result'), [['result', '42']]);
    assert.equal(execution.error, undefined);
    await ci.deleteCodeContext(ctx.id);
  });

  test('python: png and html results', async () => {
    const ctx = await ci.createCodeContext({ language: 'python' });
    const code = [
      'import base64',
      'class Pic:',
      `    def _repr_png_(self): return base64.b64decode("${PNG_B64}")`,
      'class Page:',
      '    def _repr_html_(self): return "<b>bold</b>"',
      'display(Pic())',
      'Page()',
    ].join('\n');
    const execution = await ci.runCode(code, { context: ctx });
    assert.equal(execution.error, undefined, JSON.stringify(execution.error));
    const png = execution.results.find((r) => r.png);
    const html = execution.results.find((r) => r.html);
    assert.ok(png, 'a png result');
    assert.equal(png.png, PNG_B64);
    assert.ok(html, 'an html result');
    assert.equal(html.html, '<b>bold</b>');
    assert.ok(png.formats().includes('png'));
    await ci.deleteCodeContext(ctx.id);
  });

  test('python: errors reach onError and the execution', async () => {
    const ctx = await ci.createCodeContext({ language: 'python' });
    let reported;
    const execution = await ci.runCode('1/0', { context: ctx, onError: (e) => (reported = e) });
    assert.equal(execution.error.name, 'ZeroDivisionError');
    assert.equal(reported.name, 'ZeroDivisionError');
    assert.ok(Array.isArray(execution.error.traceback));
    // The contract: the stream ends with `error` instead of `execution_complete`.
    const stream = await ci.runCodeStream('print("before")\nraise ValueError("bad")', { context: ctx });
    const events = [];
    for await (const ev of parseSSEStream(stream)) events.push(ev);
    // print() writes "before" and "\n" separately: a slow machine may stream them as two chunks.
    const types = events.map((e) => e.type);
    assert.deepEqual(types.filter((t, i) => t !== 'stdout' || types[i - 1] !== 'stdout'), ['stdout', 'error']);
    assert.equal(events.filter((e) => e.type === 'stdout').map((e) => e.text).join(''), 'before\n');
    const last = events.at(-1);
    assert.equal(last.ename, 'ValueError');
    assert.equal(last.evalue, 'bad');
    // runCode resolves (it does not wait for an execution_complete that never comes).
    const failed = await ci.runCode('raise KeyError("k")', { context: ctx });
    assert.equal(failed.error.name, 'KeyError');
    assert.deepEqual(failed.results, []);
    // The context stays usable.
    const next = await ci.runCode('2+2', { context: ctx });
    assert.equal(next.results[0].text, '4');
    await ci.deleteCodeContext(ctx.id);
  });

  test('javascript and typescript contexts', async () => {
    const js = await ci.createCodeContext({ language: 'javascript' });
    const jsRun = await ci.runCode('console.log("hi from js"); 6 * 7', { context: js });
    assert.deepEqual(jsRun.logs.stdout.join(''), 'hi from js\n');
    assert.equal(jsRun.results.at(-1).text, '42');
    const ts = await ci.createCodeContext({ language: 'typescript' });
    const tsRun = await ci.runCode('const n: number = 5;\nn * 2', { context: ts });
    assert.equal(tsRun.error, undefined, JSON.stringify(tsRun.error));
    assert.equal(tsRun.results.at(-1).text, '10');
    await ci.deleteCodeContext(js.id);
    await ci.deleteCodeContext(ts.id);
  });

  test('list and delete contexts; unknown ids are typed errors', async () => {
    const a = await ci.createCodeContext({ language: 'python' });
    const listed = await ci.listCodeContexts();
    assert.ok(listed.some((c) => c.id === a.id));
    await ci.deleteCodeContext(a.id);
    const after = await ci.listCodeContexts();
    assert.ok(!after.some((c) => c.id === a.id));
    await assert.rejects(ci.deleteCodeContext(a.id), (err) => err.code === 'CONTEXT_NOT_FOUND' && err.httpStatus === 404);
  });

  test('runCodeStream with parseSSEStream yields events in order', async () => {
    const ctx = await ci.createCodeContext({ language: 'python' });
    const stream = await ci.runCodeStream('print(1)\nprint(2)\n3', { context: ctx });
    const types = [];
    for await (const ev of parseSSEStream(stream)) types.push(ev.type);
    assert.equal(types.at(-1), 'execution_complete');
    assert.ok(types.indexOf('stdout') < types.indexOf('result'));
    await ci.deleteCodeContext(ctx.id);
  });

  test('a sandbox base URL runs the context inside that sandbox, invisible to others', async () => {
    const other = new SandboxClient({ baseUrl: `${daemon.url}/sandboxes/sb1`, retryTimeoutMs: 5000 });
    const oci = new CodeInterpreter(other.interpreter);
    const ctx = await oci.createCodeContext({ language: 'python' });
    assert.ok(ctx.id);
    const exec = await oci.runCode("import os, socket\nprint(os.getuid(), socket.gethostname(), os.getcwd())\nopen('/workspace/from-kernel.txt', 'w').write('k')", { context: ctx });
    assert.equal(exec.logs.stdout.join(''), '1000 sandbox /workspace\n');
    const shell = await other.commands.execute('cat /workspace/from-kernel.txt', 'default');
    assert.equal(shell.stdout, 'k');
    // the default sandbox neither lists nor reaches it
    assert.ok(!(await ci.listCodeContexts()).some((c) => c.id === ctx.id));
    await assert.rejects(ci.deleteCodeContext(ctx.id), (e) => e.code === 'CONTEXT_NOT_FOUND');
    // interrupts reach the kernel inside the sandbox, which survives them
    const slow = oci.runCode('import time\ntime.sleep(30)', { context: ctx });
    await new Promise((r) => setTimeout(r, 500));
    const intr = await fetch(`${daemon.url}/sandboxes/sb1/api/contexts/${ctx.id}/interrupt`, { method: 'POST' });
    assert.equal(intr.status, 200);
    assert.equal((await slow).error?.name, 'KeyboardInterrupt');
    assert.equal((await oci.runCode('6*7', { context: ctx })).results[0].text, '42');
    // Deno speaks only TCP: refused clearly in a network-"none" sandbox
    await assert.rejects(oci.createCodeContext({ language: 'javascript' }), (e) => /network "host"/.test(e.message));
    // destroying the sandbox takes its contexts
    assert.equal((await fetch(`${daemon.url}/api/sandboxes/sb1`, { method: 'DELETE' })).status, 200);
    const gone = await fetch(`${daemon.url}/sandboxes/sb1/api/contexts/${ctx.id}`);
    assert.equal(gone.status, 404);
  });
});
