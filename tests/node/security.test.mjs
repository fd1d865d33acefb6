// Security checks (issue 8): what an attacker would try, from inside a sandbox (commands through
// /api/execute) and from the API, each asserting the refusal it must get (status and code, or the
// failing command and its error), with a positive control wherever "refused" could also mean
// "the test looked in the wrong place".
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';

import { startDaemon } from './daemon.mjs';
import { request } from './http_helpers.mjs';

const TOKEN = 'sec-token-4f1e';
const AUTH = { authorization: `Bearer ${TOKEN}` };

describe('security: sandbox escapes and API abuse are refused', () => {
  let daemon;
  let port;

  const call = (path, { method = 'POST', body, headers = AUTH } = {}) => request(`${daemon.url}${path}`, { method, body, headers });
  // A command in a sandbox: { exitCode, stdout, stderr }.
  const sh = async (box, command, timeoutMs = 30000) => {
    const r = await call(`/sandboxes/${box}/api/execute`, { body: { command, timeoutMs } });
    assert.equal(r.status, 200, `execute in ${box}: ${JSON.stringify(r.json)}`);
    return r.json;
  };
  const refused = (r, status, code, what) => {
    assert.equal(r.status, status, `${what}: ${JSON.stringify(r.json)}`);
    assert.equal(r.json.code, code, `${what}: ${JSON.stringify(r.json)}`);
  };

  before(async () => {
    daemon = await startDaemon(['--python-pool', '0', '--token', TOKEN]);
    port = Number(new URL(daemon.url).port);
    for (const [id, network] of [['sa', 'none'], ['sb', 'none'], ['sh', 'host']]) {
      const r = await call('/api/sandboxes', { body: { id, network } });
      assert.equal(r.status, 201, JSON.stringify(r.json));
    }
    const w = await call('/sandboxes/sb/api/write', { body: { path: '/workspace/secret-b.txt', content: 'SECRET-OF-B' } });
    assert.equal(w.status, 200, JSON.stringify(w.json));
  });

  after(async () => {
    if (daemon) await daemon.stop();
  });

  test('the API without a token is 401 UNAUTHORIZED, with a wrong one 403 PERMISSION_DENIED', async () => {
    refused(await call('/api/sandboxes', { method: 'GET', headers: {} }), 401, 'UNAUTHORIZED', 'no token');
    refused(await call('/sandboxes/sa/api/execute', { body: { command: 'id' }, headers: {} }), 401, 'UNAUTHORIZED', 'no token, execute');
    refused(await call('/api/sandboxes', { method: 'GET', headers: { authorization: 'Bearer wrong' } }), 403, 'PERMISSION_DENIED', 'wrong bearer');
    refused(await call(`/api/sandboxes?token=${TOKEN}x`, { method: 'GET', headers: {} }), 403, 'PERMISSION_DENIED', 'wrong ?token=');
    refused(await call('/api/sandboxes', { method: 'GET', headers: { authorization: `Bearer ${TOKEN.slice(0, -1)}` } }), 403,
      'PERMISSION_DENIED', 'a prefix of the token');
    assert.equal((await call('/api/sandboxes', { method: 'GET' })).status, 200, 'the right token works');
  });

  test('file API: ".." above the root, /proc and /sys are refused; host secrets are not there', async () => {
    for (const path of ['../../etc/shadow', '/workspace/../../etc/passwd', '../../../../../../../../root']) {
      refused(await call('/sandboxes/sa/api/read', { body: { path } }), 403, 'PERMISSION_DENIED', `read ${path}`);
    }
    for (const path of ['/proc/1/root/etc/shadow', '/proc/self/root/etc/passwd', '/proc/1/environ', '/sys/kernel/notes', '/proc']) {
      refused(await call('/sandboxes/sa/api/read', { body: { path } }), 403, 'PERMISSION_DENIED', `read ${path}`);
    }
    refused(await call('/sandboxes/sa/api/list-files', { body: { path: '/proc/1/root' } }), 403, 'PERMISSION_DENIED', 'list /proc/1/root');
    // the curated /etc has no shadow file, the sandbox no /root and no data dir
    for (const path of ['/etc/shadow', '/root/.bashrc', `${daemon.dataDir}/sandboxes/sb/workspace/secret-b.txt`]) {
      refused(await call('/sandboxes/sa/api/read', { body: { path } }), 404, 'FILE_NOT_FOUND', `read ${path}`);
    }
    // another sandbox's workspace is not reachable by path from this one
    refused(await call('/sandboxes/sa/api/read', { body: { path: '/workspace/../sandboxes/sb/workspace/secret-b.txt' } }), 404,
      'FILE_NOT_FOUND', 'B by path from A');
    const own = await call('/sandboxes/sb/api/read', { body: { path: '/workspace/secret-b.txt' } });
    assert.equal(own.json.content, 'SECRET-OF-B', 'positive control: B reads its own file');
  });

  test('symlinks made inside the sandbox do not lead the file API out', async () => {
    const made = await sh('sa', [
      'cd /workspace',
      'ln -s /etc/passwd abs_link',
      'ln -s ../../../../../../../etc/passwd rel_link',
      `ln -s ${daemon.dataDir}/sandboxes/sb/workspace/secret-b.txt host_link`,
      'ln -s /proc/1/root root_link',
      'ln -s . loop_dir',
      'echo ok',
    ].join(' && '));
    assert.equal(made.exitCode, 0, made.stderr);
    // RESOLVE_BENEATH below /workspace: a link leaving it is an escape
    for (const path of ['/workspace/abs_link', '/workspace/rel_link', '/workspace/host_link', '/workspace/root_link/etc/passwd']) {
      const r = await call('/sandboxes/sa/api/read', { body: { path } });
      assert.equal(r.status, 403, `read ${path}: ${JSON.stringify(r.json)}`);
      assert.equal(r.json.code, 'PERMISSION_DENIED');
      assert.equal(r.json.context.reason, 'path_escape');
    }
    // a write to a link replaces the link (temp file + rename), never the file it pointed to
    const w = await call('/sandboxes/sa/api/write', { body: { path: '/workspace/abs_link', content: 'pwned' } });
    assert.equal(w.status, 200, JSON.stringify(w.json));
    const after = await sh('sa', 'test -L /workspace/abs_link && echo link || cat /workspace/abs_link; echo; grep -c pwned /etc/passwd');
    assert.equal(after.stdout, 'pwned\n0\n');
    const loop = await call('/sandboxes/sa/api/read', { body: { path: '/workspace/loop_dir/loop_dir/../rel_link' } });
    assert.equal(loop.status, 403, JSON.stringify(loop.json));
  });

  test('hard links to system files cannot be made into the workspace', async () => {
    for (const target of ['/etc/shadow', '/etc/passwd', '/usr/bin/bash']) {
      const r = await sh('sa', `ln ${target} /workspace/hard_${target.split('/').pop()}`);
      assert.notEqual(r.exitCode, 0, `ln ${target} succeeded`);
      assert.match(r.stderr, /cross-device|No such file|Operation not permitted|Permission denied/, r.stderr);
    }
    const ls = await sh('sa', 'ls /workspace');
    assert.doesNotMatch(ls.stdout, /hard_/);
  });

  test('/proc inside shows only the sandbox: no host process, and /proc/1/root is its own root', async () => {
    const r = await sh('sa', `test -e /proc/${process.pid} && echo visible || echo hidden; ls /proc | grep -c '^[0-9]*$'; ` +
      'cat /proc/1/root/etc/hostname 2>&1; ls /proc/1/root/ 2>&1 | tr "\\n" " "');
    const [visible, count] = r.stdout.split('\n');
    assert.equal(visible, 'hidden', `the test runner (host pid ${process.pid}) is visible inside`);
    assert.ok(Number(count) < 50, `the sandbox sees ${count} processes`);
    assert.doesNotMatch(r.stdout, /\bhome\b|\broot\b.*\bhome\b/, 'no /home of the host through /proc/1/root');
  });

  test('no writes outside /workspace, neither through the API nor from inside', async () => {
    for (const path of ['/usr/evil', '/usr/bin/evil', '/etc/evil', '/etc/passwd', '/bin/evil']) {
      const r = await call('/sandboxes/sa/api/write', { body: { path, content: 'x' } });
      assert.equal(r.status, 403, `write ${path}: ${JSON.stringify(r.json)}`);
      assert.ok(['READ_ONLY', 'PERMISSION_DENIED'].includes(r.json.code), `write ${path}: ${JSON.stringify(r.json)}`);
    }
    const inside = await sh('sa', 'for p in /usr/evil /usr/bin/evil /etc/evil /bin/evil; do (echo x > $p) 2>/dev/null && echo "wrote $p"; done; ' +
      '(echo x >> /etc/passwd) 2>/dev/null && echo "wrote /etc/passwd"; echo done');
    assert.equal(inside.stdout, 'done\n');
  });

  test('signals cannot reach host processes; kill -9 1 inside harms nothing outside', async () => {
    const victim = spawn('sleep', ['120'], { stdio: 'ignore' });
    try {
      const r = await sh('sa', `kill -9 ${victim.pid}; echo "rc=$?"; kill -9 ${process.pid}; echo "rc=$?"`);
      assert.match(r.stdout, /rc=1\nrc=1\n/, `kill of host pids from inside: ${r.stdout} ${r.stderr}`);
      assert.match(r.stderr, /No such process/);
      // pid 1 inside is the sandbox's own init: killing it ends that sandbox's shell only
      const sk = await call('/api/sandboxes', { body: { id: 'sk', network: 'none' } });
      assert.equal(sk.status, 201, JSON.stringify(sk.json));
      const init = await call('/sandboxes/sk/api/execute', { body: { command: 'kill -9 -1; kill -9 1; echo "init=$?"', timeoutMs: 10000 } });
      assert.ok(init.status === 200 || init.json.code === 'SESSION_TERMINATED', JSON.stringify(init.json));
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(victim.exitCode, null, 'the host process survived');
      assert.equal(victim.signalCode, null, 'the host process got no signal');
      assert.equal((await call('/api/sandboxes', { method: 'GET' })).status, 200, 'the daemon still serves');
      // the other sandbox is untouched
      assert.equal((await sh('sb', 'cat /workspace/secret-b.txt')).stdout, 'SECRET-OF-B');
    } finally {
      victim.kill('SIGKILL');
    }
  });

  test('a network "none" sandbox cannot reach the daemon; a "host" one meets the token', async () => {
    const probe = `timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/${port}' 2>&1; echo "rc=$?"`;
    const none = await sh('sb', probe);
    assert.doesNotMatch(none.stdout, /rc=0/, `connected from a network-none sandbox: ${none.stdout}`);
    // network "host" shares the host's loopback: the daemon is reachable, and guarded by its token
    const script = [
      'import sys, json, urllib.request, urllib.error',
      `req = urllib.request.Request('http://127.0.0.1:${port}/api/sandboxes', headers=json.loads(sys.argv[1]))`,
      'try:',
      '    print(urllib.request.urlopen(req, timeout=10).status)',
      'except urllib.error.HTTPError as e:',
      '    print(e.code, e.read().decode())',
    ].join('\n');
    assert.equal((await call('/sandboxes/sh/api/write', { body: { path: '/workspace/probe.py', content: script } })).status, 200);
    const py = (headers) => `/usr/bin/python3 /workspace/probe.py '${JSON.stringify(headers)}'`;
    const control = await sh('sh', py({ Authorization: `Bearer ${TOKEN}` }));
    assert.equal(control.stdout, '200\n', `positive control: ${control.stdout}${control.stderr}`);
    const without = await sh('sh', py({}));
    assert.match(without.stdout, /^401 .*"code":"UNAUTHORIZED"/, without.stdout + without.stderr);
    const wrong = await sh('sh', py({ Authorization: 'Bearer guess' }));
    assert.match(wrong.stdout, /^403 .*"code":"PERMISSION_DENIED"/, wrong.stdout + wrong.stderr);
  });

  test('another sandbox\'s kernel connection file and HMAC key are not visible', async () => {
    const ctx = await call('/sandboxes/sb/api/contexts', { body: { language: 'python' } });
    assert.equal(ctx.status, 200, JSON.stringify(ctx.json));
    try {
      // positive control: inside B, the kernel's connection file is in B's private /tmp/.k/
      const inB = await sh('sb', 'ls /tmp/.k/ && cat /tmp/.k/*.json');
      assert.equal(inB.exitCode, 0, inB.stderr);
      const key = JSON.parse(inB.stdout.slice(inB.stdout.indexOf('{'))).key;
      assert.ok(key && key.length >= 16, 'B has a connection file with a key');
      // from A: no /tmp/.k of B, no process of B, the key nowhere in what A can read
      const fromA = await sh('sa', `ls -a /tmp/.k 2>&1; ls /proc | grep -c '^[0-9]*$'; ` +
        `grep -rls '${key}' /tmp /workspace /proc/*/cmdline /proc/*/environ 2>/dev/null | head -3; echo end`);
      assert.doesNotMatch(fromA.stdout, /\.json/, `A sees a connection file: ${fromA.stdout}`);
      assert.ok(!fromA.stdout.includes(key), 'the HMAC key appears in A');
      assert.match(fromA.stdout, /end\n$/);
      const read = await call('/sandboxes/sa/api/list-files', { body: { path: '/tmp/.k' } });
      assert.ok(read.status === 404 || (read.status === 200 && read.json.files.length === 0), JSON.stringify(read.json));
      // and through the API, B's context is unknown in A
      const other = await call(`/sandboxes/sa/api/contexts/${ctx.json.id}`, { method: 'GET' });
      refused(other, 404, 'CONTEXT_NOT_FOUND', 'B\'s context from A');
    } finally {
      await call(`/sandboxes/sb/api/contexts/${ctx.json.id}`, { method: 'DELETE' });
    }
  });

  test('a preview URL works only with its own sandbox id and token', async () => {
    const svc = 18095;
    const exposed = await call('/sandboxes/sa/api/expose-port', { body: { port: svc } });
    assert.equal(exposed.status, 200, JSON.stringify(exposed.json));
    const { token } = exposed.json;
    // node:http, since fetch does not let a caller set Host
    const get = (host, path = '/') => new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path, headers: { ...AUTH, ...(host ? { host } : {}) } }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          let json = {};
          try {
            json = JSON.parse(Buffer.concat(chunks).toString());
          } catch {}
          resolve({ status: res.statusCode, json });
        });
      });
      req.on('error', reject);
      req.end();
    });
    // A wrong sandbox id or token is never proxied: 404 (INVALID_TOKEN / PORT_NOT_EXPOSED from the
    // proxy, or NOT_FOUND where the host name is not taken as a preview at all).
    const wrong = token.slice(0, -1) + (token.endsWith('a') ? 'b' : 'a');
    for (const [what, host, path] of [
      ["A's token with B's id", `${svc}-sb-${token}.localhost:${port}`, '/'],
      ['a wrong token', `${svc}-sa-${wrong}.localhost:${port}`, '/'],
      ['a shorter token', `${svc}-sa-${token.slice(1)}.localhost:${port}`, '/'],
      ["path form, B's id", undefined, `/sandboxes/sb/preview/${svc}-${token}/`],
      ['path form, wrong token', undefined, `/sandboxes/sa/preview/${svc}-${wrong}/`],
    ]) {
      const r = await get(host, path);
      assert.equal(r.status, 404, `${what}: ${JSON.stringify(r.json)}`);
      assert.ok(['INVALID_TOKEN', 'PORT_NOT_EXPOSED', 'NOT_FOUND'].includes(r.json.code), `${what}: ${JSON.stringify(r.json)}`);
    }
    // positive control: the right URL reaches the proxy (nothing listens: 502)
    assert.equal((await get(`${svc}-sa-${token}.localhost:${port}`)).status, 502);
  });
});
