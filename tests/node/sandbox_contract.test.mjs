// The real @cloudflare/sandbox client classes against kernel-host's sandbox routes: sessions,
// commands, streams, every file call, processes, logs, port watching; plus what the client cannot
// send (stdin, recursive delete, raw files, signals) with plain fetch, and isolation over HTTP.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';

import { SandboxClient, parseSSEStream } from '@cloudflare/sandbox';

import { startDaemon } from './daemon.mjs';
import { post, survivors } from './http_helpers.mjs';

const NO_SESSION = '__DISABLE_SESSION__';

// A command counting the sandbox's processes whose command line ends with `tail`, once at least
// one is there or after 5 s: a process just started may still be its launcher or `bash -c ...`
// (on a slow machine) before it execs the program.
const countOnceThere = (tail) =>
  `for i in $(seq 50); do n=$(pgrep -fc '${tail}$'); [ "$n" -ge 1 ] && break; sleep 0.1; done; echo $n`;

async function events(stream) {
  const out = [];
  for await (const ev of parseSSEStream(stream)) out.push(ev);
  return out;
}

// Host pids whose cgroup names the sandbox (every process of a sandbox joins kernel-host/<id>).
function sandboxHostPids(id) {
  const pids = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cgroup`, 'utf8').includes(`/kernel-host/${id}\n`)) pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

describe('@cloudflare/sandbox clients against the sandbox routes', () => {
  let daemon;
  let client; // sandbox "cf"
  let base;

  before(async () => {
    daemon = await startDaemon(['--python-pool', '0']);
    base = `${daemon.url}/sandboxes/cf`;
    client = new SandboxClient({ baseUrl: base, retryTimeoutMs: 5000 });
  });

  after(async () => {
    const { code } = await daemon.stop();
    assert.equal(code, 0);
  });

  test('sessions keep state, are isolated, and list and delete', async () => {
    await client.utils.createSession({ id: 's1', env: { GREETING: 'hello' }, cwd: '/workspace' });
    await client.utils.createSession({ id: 's2' });
    await assert.rejects(client.utils.createSession({ id: 's1' }), (e) => e.code === 'SESSION_ALREADY_EXISTS');
    await client.commands.execute("mkdir -p /workspace/sub && cd /workspace/sub && export X=42 && f() { echo fn-$X; }", 's1');
    const r = await client.commands.execute('pwd; echo $GREETING; f', 's1');
    assert.equal(r.stdout, '/workspace/sub\nhello\nfn-42\n');
    const other = await client.commands.execute('pwd; echo ${X-unset}; type f >/dev/null 2>&1 || echo nofn', 's2');
    assert.equal(other.stdout, '/workspace\nunset\nnofn\n');
    // (the client's listSessions needs its RPC transport: plain fetch)
    const ids = (await (await fetch(`${base}/api/session/list`)).json()).data;
    assert.ok(ids.includes('s1') && ids.includes('s2'), JSON.stringify(ids));
    await client.utils.deleteSession('s2');
    const after = await (await fetch(`${base}/api/session/list`)).json();
    assert.ok(!after.data.includes('s2'));
  });

  test('execute: exact bytes, exit codes, per-command env and cwd', async () => {
    const r = await client.commands.execute("printf 'a\\n\\n'; printf 'e\\n' >&2; exit_code() { return 7; }; exit_code", 's1');
    assert.equal(r.stdout, 'a\n\n');
    assert.equal(r.stderr, 'e\n');
    assert.equal(r.exitCode, 7);
    assert.equal(r.success, false);
    const scoped = await client.commands.execute('echo $ONLY; pwd', 's1', { env: { ONLY: 'once' }, cwd: '/tmp' });
    assert.equal(scoped.stdout, 'once\n/tmp\n');
    const back = await client.commands.execute('echo ${ONLY-gone}; pwd', 's1');
    assert.equal(back.stdout, 'gone\n/workspace/sub\n');
    // invalid UTF-8 comes back exactly in stdoutBase64
    const bin = await post(`${base}/api/execute`, { command: "printf 'x\\377\\000y'", sessionId: 's1' });
    assert.deepEqual([...Buffer.from(bin.body.stdoutBase64, 'base64')], [0x78, 0xff, 0x00, 0x79]);
  });

  test('stdin is fed to the command, and empty without it', async () => {
    const fed = await post(`${base}/api/execute`, { command: 'tr a-z A-Z', stdin: 'shout\n', sessionId: 's1' });
    assert.equal(fed.body.stdout, 'SHOUT\n');
    const none = await post(`${base}/api/execute`, { command: 'cat; echo end', sessionId: 's1' });
    assert.equal(none.body.stdout, 'end\n');
  });

  test('a timeout kills the command tree and the session stays usable', async () => {
    await assert.rejects(client.commands.execute('sleep 30 & sleep 30', 's1', { timeoutMs: 300 }),
      (e) => e.code === 'TIMEOUT' || e.httpStatus === 408);
    const r = await client.commands.execute('echo alive; pwd', 's1');
    assert.equal(r.stdout, 'alive\n/workspace/sub\n');
  });

  test('a shell that exits gives SESSION_TERMINATED, then a fresh shell', async () => {
    await client.utils.createSession({ id: 'quitter' });
    await client.commands.execute('export KEEP=1', 'quitter');
    await assert.rejects(client.commands.execute('exit 3', 'quitter'), (e) => {
      assert.equal(e.code, 'SESSION_TERMINATED');
      assert.equal((e.context ?? e.errorResponse?.context)?.exitCode, 3);
      return true;
    });
    const r = await client.commands.execute('echo ${KEEP-fresh}', 'quitter');
    assert.equal(r.stdout, 'fresh\n');
  });

  test('sessionless commands share nothing', async () => {
    await client.commands.execute('export Y=1; cd /tmp', NO_SESSION);
    const r = await client.commands.execute('echo ${Y-none}; pwd', NO_SESSION);
    assert.equal(r.stdout, 'none\n/workspace\n');
  });

  test('executeStream yields start, output as produced, and complete', async () => {
    const evs = await events(await client.commands.executeStream("echo one; sleep 0.2; echo two >&2; sh -c 'exit 4'", 's1'));
    assert.equal(evs[0].type, 'start');
    assert.equal(evs.at(-1).type, 'complete');
    assert.equal(evs.at(-1).exitCode, 4);
    const out = evs.filter((e) => e.type === 'stdout').map((e) => e.data).join('');
    const err = evs.filter((e) => e.type === 'stderr').map((e) => e.data).join('');
    assert.equal(out, 'one\n');
    assert.equal(err, 'two\n');
    assert.ok(evs.findIndex((e) => e.type === 'stdout') < evs.findIndex((e) => e.type === 'stderr'));
  });

  test('every file call, with the contract\'s results and errors', async () => {
    const f = client.files;
    await f.writeFile('/workspace/docs/a.txt', 'alpha\n', 's1');
    const text = await f.readFile('/workspace/docs/a.txt', 's1');
    assert.equal(text.content, 'alpha\n');
    assert.equal(text.encoding, 'utf-8');
    assert.equal(text.isBinary, false);
    // relative paths resolve against the session's cwd (/workspace/sub)
    await f.writeFile('rel.txt', 'relative', 's1');
    assert.equal((await client.commands.execute('cat /workspace/sub/rel.txt', 's1')).stdout, 'relative');
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0xff]);
    await f.writeFile('/workspace/docs/b.png', png.toString('base64'), 's1', { encoding: 'base64' });
    const bin = await f.readFile('/workspace/docs/b.png', 's1');
    assert.equal(bin.encoding, 'base64');
    assert.equal(bin.isBinary, true);
    assert.equal(bin.mimeType, 'image/png');
    assert.deepEqual(Buffer.from(bin.content, 'base64'), png);
    await f.mkdir('/workspace/docs/deep/er', 's1', { recursive: true });
    const listing = await f.listFiles('/workspace/docs', 's1', { recursive: true });
    const names = listing.files.map((x) => x.relativePath);
    assert.deepEqual(names, [...names].sort());
    assert.ok(names.includes('a.txt') && names.includes('deep/er'), names.join());
    const a = listing.files.find((x) => x.name === 'a.txt');
    assert.equal(a.type, 'file');
    assert.equal(a.size, 6);
    assert.match(a.modifiedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    assert.equal((await f.exists('/workspace/docs/a.txt', 's1')).exists, true);
    assert.equal((await f.exists('/workspace/docs/none', 's1')).exists, false);
    await f.renameFile('/workspace/docs/a.txt', '/workspace/docs/c.txt', 's1');
    await f.moveFile('/workspace/docs/c.txt', '/workspace/moved.txt', 's1');
    assert.equal((await f.readFile('/workspace/moved.txt', 's1')).content, 'alpha\n');
    await assert.rejects(f.readFile('/workspace/docs/a.txt', 's1'), (e) => e.code === 'FILE_NOT_FOUND');
    await assert.rejects(f.deleteFile('/workspace/docs', 's1'), (e) => e.code === 'IS_DIRECTORY');
    const rec = await post(`${base}/api/delete`, { path: '/workspace/docs', recursive: true });
    assert.equal(rec.status, 200);
    assert.equal((await f.exists('/workspace/docs', 's1')).exists, false);
    await f.deleteFile('/workspace/moved.txt', 's1');
    // read stream: metadata, chunks, complete, and the bytes add up
    const big = 'line\n'.repeat(40000);
    await f.writeFile('/workspace/big.txt', big, 's1');
    const evs = await events(await f.readFileStream('/workspace/big.txt', 's1'));
    assert.equal(evs[0].type, 'metadata');
    assert.equal(evs[0].size, big.length);
    assert.equal(evs.at(-1).type, 'complete');
    assert.equal(evs.filter((e) => e.type === 'chunk').map((e) => e.data).join(''), big);
  });

  test('paths never leave the sandbox: .., symlinks, /proc', async () => {
    for (const path of ['../../etc/shadow', '/workspace/../../../etc/shadow']) {
      const r = await post(`${base}/api/read`, { path });
      assert.ok([403, 404].includes(r.status), `${path}: ${r.status}`);
      assert.notEqual(r.body.content, readFileSync('/etc/shadow', 'utf8'));
    }
    await client.commands.execute('ln -sfn /etc /workspace/etc-link; ln -sfn /root /workspace/root-link', 's1');
    const viaLink = await post(`${base}/api/read`, { path: '/workspace/etc-link/shadow' });
    assert.equal(viaLink.status, 403);
    assert.equal(viaLink.body.code, 'PERMISSION_DENIED');
    const write = await post(`${base}/api/write`, { path: '/workspace/root-link/owned', content: 'x' });
    assert.equal(write.status, 403);
    const proc = await post(`${base}/api/read`, { path: '/proc/1/environ' });
    assert.equal(proc.status, 403);
    const usr = await post(`${base}/api/write`, { path: '/usr/bin/evil', content: 'x' });
    assert.ok(usr.status >= 400 && usr.status < 500, String(usr.status));
  });

  test('raw file streaming: PUT and GET 8 MiB byte for byte', async () => {
    const data = randomBytes(8 << 20);
    const put = await fetch(`${base}/api/files/raw?path=/workspace/raw.bin`, { method: 'PUT', body: data });
    assert.equal(put.status, 200);
    const res = await fetch(`${base}/api/files/raw?path=/workspace/raw.bin`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/octet-stream');
    const back = Buffer.from(await res.arrayBuffer());
    assert.equal(createHash('sha256').update(back).digest('hex'), createHash('sha256').update(data).digest('hex'));
    const missing = await fetch(`${base}/api/files/raw?path=/workspace/none.bin`);
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).code, 'FILE_NOT_FOUND');
  });

  test('processes: start, list, get, logs, stream, kill, kill-all, exit N', async () => {
    const p = client.processes;
    const started = await p.startProcess('echo ready; echo warn >&2; sleep 0.3; exit 5', 's1', { processId: 'quick' });
    assert.equal(started.processId, 'quick');
    const evs = await events(await p.streamProcessLogs('quick'));
    assert.equal(evs[0].type, 'process_info');
    const exit = evs.at(-1);
    assert.equal(exit.type, 'exit');
    assert.equal(exit.exitCode, 5); // a background `exit N` completes with N
    assert.equal(evs.filter((e) => e.type === 'stdout').map((e) => e.data).join(''), 'ready\n');
    const info = await p.getProcess('quick');
    assert.equal(info.process.status, 'failed');
    assert.equal(info.process.exitCode, 5);
    assert.ok(info.process.endTime);
    const logs = await p.getProcessLogs('quick');
    assert.equal(logs.stdout, 'ready\n');
    assert.equal(logs.stderr, 'warn\n');

    await p.startProcess('sleep 60 & sleep 60; echo never', 's1', { processId: 'tree' });
    await p.startProcess('sleep 60', NO_SESSION, { processId: 'other' });
    const all = await p.listProcesses();
    assert.ok(['quick', 'tree', 'other'].every((id) => all.processes.some((x) => x.id === id)));
    const mine = await (await fetch(`${base}/api/process/list?sessionId=s1`)).json();
    assert.ok(mine.processes.some((x) => x.id === 'tree') && !mine.processes.some((x) => x.id === 'other'));
    await p.killProcess('tree');
    const killed = await (await fetch(`${base}/api/process/tree`)).json();
    assert.equal(killed.process.status, 'killed');
    const after = await client.commands.execute(countOnceThere('sleep 60'), NO_SESSION);
    assert.equal(after.stdout.trim(), '1'); // only 'other' is left: the tree's background sleep died too
    const cleaned = await p.killAllProcesses();
    assert.equal(cleaned.cleanedCount, 1);
    await assert.rejects(p.getProcess('nope'), (e) => e.code === 'PROCESS_NOT_FOUND');
    // a signal of our choosing
    await p.startProcess("trap 'echo got-usr1; exit 0' USR1; while true; do sleep 0.05; done", 's1', { processId: 'sig' });
    await new Promise((r) => setTimeout(r, 200));
    const del = await fetch(`${base}/api/process/sig?signal=USR1`, { method: 'DELETE' });
    assert.equal(del.status, 200);
  });

  test('port watching: ready for a real server, process_exited for one that dies', async () => {
    await client.processes.startProcess('exec /usr/bin/python3 -m http.server 8765 --bind 127.0.0.1', 's1', { processId: 'web' });
    const evs = await events(await client.ports.watchPort({ port: 8765, mode: 'http', path: '/', processId: 'web', interval: 100 }));
    assert.equal(evs[0].type, 'watching');
    assert.equal(evs.at(-1).type, 'ready');
    assert.equal(evs.at(-1).statusCode, 200);
    const page = await client.commands.execute('exec 3<>/dev/tcp/127.0.0.1/8765; printf "GET / HTTP/1.0\\r\\n\\r\\n" >&3; head -1 <&3', NO_SESSION);
    assert.match(page.stdout, /^HTTP\/1\.0 200/);
    await client.processes.startProcess('sleep 0.2; exit 2', 's1', { processId: 'dies' });
    const gone = await events(await client.ports.watchPort({ port: 8766, mode: 'tcp', processId: 'dies', interval: 100 }));
    assert.equal(gone.at(-1).type, 'process_exited');
    assert.equal(gone.at(-1).exitCode, 2);
    await client.processes.killProcess('web');
  });

  test('sandboxes are separate: files, processes; destroy leaves no process', async () => {
    const a = new SandboxClient({ baseUrl: `${daemon.url}/sandboxes/iso-a`, retryTimeoutMs: 5000 });
    const b = new SandboxClient({ baseUrl: `${daemon.url}/sandboxes/iso-b`, retryTimeoutMs: 5000 });
    await a.files.writeFile('/workspace/secret.txt', 'a-only', 'default');
    await a.processes.startProcess('sleep 120', 'default', { processId: 'a-sleeper' });
    assert.equal((await b.files.exists('/workspace/secret.txt', 'default')).exists, false);
    const own = await a.commands.execute(countOnceThere('sleep 120'), 'default');
    assert.equal(own.stdout.trim(), '1');
    const seen = await b.commands.execute("pgrep -fc 'sleep 120$' || true", 'default');
    assert.equal(seen.stdout.trim(), '0');
    assert.equal((await b.processes.listProcesses()).processes.length, 0);
    const hostPids = sandboxHostPids('iso-a');
    assert.ok(hostPids.length > 0, 'the sandbox has processes on the host');
    const info = await (await fetch(`${daemon.url}/api/sandboxes/iso-a`)).json();
    assert.equal(info.sandbox.id, 'iso-a');
    assert.ok(info.sandbox.processList.some((p) => p.id === 'a-sleeper'));
    const del = await fetch(`${daemon.url}/api/sandboxes/iso-a`, { method: 'DELETE' });
    assert.equal(del.status, 200);
    assert.deepEqual(await survivors(hostPids), [], 'no process of the sandbox survives destroy');
    const again = await fetch(`${daemon.url}/api/sandboxes/iso-a`);
    assert.equal(again.status, 404);
  });

  test('POST /api/sandboxes: options, conflicts and bad input', async () => {
    const made = await post(`${daemon.url}/api/sandboxes`, { id: 'made', env: { TEAM: 'blue' }, limits: { maxProcesses: 64 } });
    assert.equal(made.status, 201);
    assert.equal(made.body.sandbox.limits.maxProcesses, 64);
    const r = await post(`${daemon.url}/sandboxes/made/api/execute`, { command: 'echo $TEAM; id -u' });
    assert.equal(r.body.stdout, 'blue\n1000\n');
    assert.equal((await post(`${daemon.url}/api/sandboxes`, { id: 'made' })).body.code, 'SANDBOX_ALREADY_EXISTS');
    assert.equal((await post(`${daemon.url}/api/sandboxes`, { id: '../x' })).status, 400);
    assert.equal((await post(`${daemon.url}/api/sandboxes`, { limits: 'lots' })).status, 400);
    const bad = await fetch(`${daemon.url}/api/execute`, { method: 'POST', body: '{oops' });
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).code, 'VALIDATION_FAILED');
  });
});

describe('a daemon restart keeps sandbox workspaces', () => {
  test('files written before a restart are there after it', async () => {
    const first = await startDaemon(['--python-pool', '0']);
    const c1 = new SandboxClient({ baseUrl: `${first.url}/sandboxes/keep`, retryTimeoutMs: 5000 });
    await c1.files.writeFile('/workspace/kept.txt', 'still here', 'default');
    await c1.processes.startProcess('sleep 300', 'default', { processId: 'sleeper' });
    const pids = sandboxHostPids('keep');
    assert.equal((await first.stop()).code, 0);
    assert.ok(pids.length > 0);
    assert.deepEqual(await survivors(pids), [], 'no sandbox process survives the daemon');
    const second = await startDaemon(['--python-pool', '0'], { dataDir: first.dataDir });
    try {
      const c2 = new SandboxClient({ baseUrl: `${second.url}/sandboxes/keep`, retryTimeoutMs: 5000 });
      assert.equal((await c2.files.readFile('/workspace/kept.txt', 'default')).content, 'still here');
    } finally {
      assert.equal((await second.stop()).code, 0);
    }
  });
});
