// Bucket mounts (POST /api/mount-bucket, /api/unmount-bucket) against a real S3 server on loopback:
// s3rver (npm) with a temp folder. s3fs runs in the sandbox's mount namespace; files written in the
// sandbox are read back through the S3 API and the reverse.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import S3rver from 's3rver';

import { startDaemon } from './daemon.mjs';
import { request } from './http_helpers.mjs';

const BUCKET = 'kh-data';
const SECRET = 'kh-test-secret-7f3a9c';  // s3rver does not check signatures: a marker to look for
const CREDS = { accessKeyId: 'S3RVER', secretAccessKey: SECRET };

// The daemon's environment without any S3 credentials.
function envWithoutCredentials(extra = {}) {
  const env = { ...process.env, ...extra };
  for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'R2_ACCESS_KEY_ID', 'R2_SECRET_ACCESS_KEY']) {
    if (!(k in extra)) delete env[k];
  }
  return env;
}

// Host pids of s3fs processes whose command line mentions every marker.
function s3fsPids(...markers) {
  const pids = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let cmd;
    try {
      cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    const line = cmd.join(' ');
    if (cmd.some((a) => a.endsWith('/s3fs') || a === 's3fs') && markers.every((m) => line.includes(m))) pids.push(Number(entry));
  }
  return pids;
}

describe('bucket mounts with s3fs against s3rver', () => {
  let s3rver;
  let s3;  // http://127.0.0.1:<port>
  let s3dir;
  let daemon;
  const sandbox = `buckets-${process.pid}`;

  const call = (method, path, body, base = daemon.url) => request(`${base}${path}`, { method, body });
  const api = (path, body, id = sandbox, base = daemon.url) => call('POST', `/sandboxes/${id}/api/${path}`, body, base);
  const mount = (body, id, base) => api('mount-bucket', { bucket: BUCKET, endpoint: s3, credentials: CREDS, ...body }, id, base);
  async function sh(command, id = sandbox, base = daemon.url) {
    const { status, json } = await api('execute', { command }, id, base);
    assert.equal(status, 200, JSON.stringify(json));
    return json;
  }

  before(async () => {
    s3dir = mkdtempSync(join(tmpdir(), 'kh-s3rver-'));
    s3rver = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: s3dir, configureBuckets: [{ name: BUCKET }] });
    const { port } = await s3rver.run();
    s3 = `http://127.0.0.1:${port}`;
    daemon = await startDaemon([], { env: envWithoutCredentials() });
  });

  after(async () => {
    if (daemon) {
      const { code } = await daemon.stop();
      assert.equal(code, 0, 'SIGTERM must stop the daemon with exit code 0');
      assert.deepEqual(s3fsPids(s3), [], 'no s3fs of the test survives the daemon');
      rmSync(daemon.dataDir, { recursive: true, force: true });
    }
    if (s3rver) await s3rver.close();
    rmSync(s3dir, { recursive: true, force: true });
  });

  test('a file written in the sandbox is in the bucket, and an object put in the bucket is read in the sandbox', async () => {
    const { status, json } = await mount({ mountPath: '/mnt/data' });
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(json.success, true);
    assert.equal(json.mountPath, '/mnt/data');
    assert.equal(json.provider, 'unknown');
    assert.equal(typeof json.mountMs, 'number');

    const w = await sh('printf "hello from the sandbox\\n" > /mnt/data/from-sandbox.txt && stat -c "%u %s" /mnt/data/from-sandbox.txt && id -u');
    assert.equal(w.exitCode, 0, w.stderr);
    const [owner, size, uid] = w.stdout.trim().split(/\s+/);
    assert.equal(owner, uid, 'the sandbox user owns what it writes');
    assert.equal(size, '23');
    const got = await fetch(`${s3}/${BUCKET}/from-sandbox.txt`);
    assert.equal(got.status, 200);
    assert.equal(await got.text(), 'hello from the sandbox\n');

    const body = 'from s3 ' + 'x'.repeat(100000) + '\n';
    const put = await fetch(`${s3}/${BUCKET}/dir/from-s3.txt`, { method: 'PUT', body });
    assert.equal(put.status, 200);
    const r = await sh('wc -c < /mnt/data/dir/from-s3.txt && head -c 8 /mnt/data/dir/from-s3.txt');
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout, `${body.length}\nfrom s3 `);

    const desc = await call('GET', `/api/sandboxes/${sandbox}`);
    assert.equal(desc.status, 200);
    const listed = desc.json.sandbox.mounts.find((m) => m.mountPath === '/mnt/data');
    assert.ok(listed, JSON.stringify(desc.json.sandbox.mounts));
    assert.equal(listed.bucket, BUCKET);
    assert.equal(listed.readOnly, false);
  });

  test('credentials are not visible inside the sandbox', async () => {
    // The pattern is assembled in the shell: the command's own text (kept in the session's files) lacks it.
    const pattern = `a=${SECRET.slice(0, 6)}; b=${SECRET.slice(6)}; p="$a$b"`;
    const r = await sh(`${pattern}; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c "$p"; grep -rls "$p" /tmp /run /home /workspace /etc; true`);
    assert.equal(r.stdout.trim(), '0');
    const ps = await sh('ps -eo comm');
    assert.ok(!ps.stdout.includes('s3fs'), ps.stdout);
  });

  test('a read-only mount reads but refuses writes', async () => {
    const { status, json } = await mount({ mountPath: '/mnt/ro', readOnly: true });
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(json.readOnly, true);
    const r = await sh('cat /mnt/ro/from-sandbox.txt');
    assert.equal(r.stdout, 'hello from the sandbox\n');
    const w = await sh('echo nope > /mnt/ro/refused.txt');
    assert.notEqual(w.exitCode, 0);
    assert.match(w.stderr, /Read-only file system/);
    assert.equal((await fetch(`${s3}/${BUCKET}/refused.txt`)).status, 404);
  });

  test('a prefix mounts one folder of the bucket', async () => {
    assert.equal((await fetch(`${s3}/${BUCKET}/team/a/q.txt`, { method: 'PUT', body: 'q' })).status, 200);
    const { status, json } = await mount({ mountPath: '/home/user/team-a', prefix: '/team/a' });
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(json.prefix, '/team/a');
    const r = await sh('cat /home/user/team-a/q.txt && echo p > /home/user/team-a/p.txt && ls /home/user/team-a');
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout, 'qp.txt\nq.txt\n');
    assert.equal(await (await fetch(`${s3}/${BUCKET}/team/a/p.txt`)).text(), 'p\n');
  });

  test('invalid configurations are refused with INVALID_MOUNT_CONFIG', async () => {
    for (const body of [
      { mountPath: 'mnt/relative' },
      { mountPath: '/mnt/../etc/x' },
      { mountPath: '/mnt/x/' },
      { mountPath: '/usr/local/b' },
      { mountPath: '/proc/b' },
      { mountPath: '/mnt/b', bucket: 'Bad_Bucket!' },
      { mountPath: '/mnt/b', endpoint: 'ftp://127.0.0.1' },
      { mountPath: '/mnt/b', provider: 'azure' },
      { mountPath: '/mnt/b', s3fsOptions: ['passwd_file=/etc/shadow'] },
      { mountPath: '/mnt/b', s3fsOptions: ['ro,allow_root'] },
      { mountPath: '/mnt/data' },  // in use
    ]) {
      const { status, json } = await mount(body);
      assert.equal(status, 400, JSON.stringify(body));
      assert.equal(json.code, 'INVALID_MOUNT_CONFIG', JSON.stringify(body));
      assert.equal(json.httpStatus, 400);
    }
    const missing = await api('mount-bucket', { bucket: BUCKET, mountPath: '/mnt/b', credentials: CREDS });
    assert.equal(missing.status, 400);
    assert.equal(missing.json.code, 'INVALID_MOUNT_CONFIG');
    assert.equal(missing.json.context.field, 'endpoint');
  });

  test('no credentials in the request nor the environment: MISSING_CREDENTIALS', async () => {
    const { status, json } = await api('mount-bucket', { bucket: BUCKET, mountPath: '/mnt/nocreds', endpoint: s3 });
    assert.equal(status, 400);
    assert.equal(json.code, 'MISSING_CREDENTIALS');
  });

  test('s3fs failures: S3FS_MOUNT_ERROR with the tail of its log, nothing left mounted', async () => {
    // One try instead of s3fs's five (4 s apart).
    const closed = await mount({ mountPath: '/mnt/bad-port', endpoint: 'http://127.0.0.1:1', s3fsOptions: ['retries=1'] });
    assert.equal(closed.status, 500, JSON.stringify(closed.json));
    assert.equal(closed.json.code, 'S3FS_MOUNT_ERROR');
    assert.equal(typeof closed.json.context.logTail, 'string');
    assert.match(closed.json.context.logTail, /\S/);
    assert.ok(!closed.json.context.logTail.includes(SECRET));

    const nobucket = await mount({ mountPath: '/mnt/bad-bucket', bucket: 'no-such-bucket' });
    assert.equal(nobucket.status, 500, JSON.stringify(nobucket.json));
    assert.equal(nobucket.json.code, 'S3FS_MOUNT_ERROR');
    assert.match(nobucket.json.context.logTail, /\S/);

    const r = await sh('for p in /mnt/bad-port /mnt/bad-bucket; do mountpoint -q $p && echo mounted || echo not; done');
    assert.equal(r.stdout, 'not\nnot\n');
    assert.deepEqual(s3fsPids('url=http://127.0.0.1:1,', '/mnt/bad-port'), []);
    assert.deepEqual(s3fsPids(s3, '/mnt/bad-bucket'), []);
    const desc = await call('GET', `/api/sandboxes/${sandbox}`);
    assert.ok(!desc.json.sandbox.mounts.some((m) => m.mountPath.startsWith('/mnt/bad-')));
  });

  test('unmount removes the mount and its s3fs', async () => {
    const { status, json } = await mount({ mountPath: '/mnt/unmount-me' });
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(s3fsPids(s3, '/mnt/unmount-me').length, 1);
    assert.equal((await sh('mountpoint -q /mnt/unmount-me && echo mounted || echo not')).stdout, 'mounted\n');
    const u = await api('unmount-bucket', { mountPath: '/mnt/unmount-me' });
    assert.equal(u.status, 200, JSON.stringify(u.json));
    assert.equal((await sh('mountpoint -q /mnt/unmount-me && echo mounted || echo not')).stdout, 'not\n');
    assert.deepEqual(s3fsPids(s3, '/mnt/unmount-me'), []);
    const again = await api('unmount-bucket', { mountPath: '/mnt/unmount-me' });
    assert.equal(again.status, 400);
    assert.equal(again.json.code, 'INVALID_MOUNT_CONFIG');
    const desc = await call('GET', `/api/sandboxes/${sandbox}`);
    assert.ok(!desc.json.sandbox.mounts.some((m) => m.mountPath === '/mnt/unmount-me'));
    // The path can be mounted again.
    const re = await mount({ mountPath: '/mnt/unmount-me' });
    assert.equal(re.status, 200, JSON.stringify(re.json));
    assert.equal((await sh('cat /mnt/unmount-me/from-sandbox.txt')).stdout, 'hello from the sandbox\n');
  });

  test('destroying the sandbox unmounts its buckets and ends their s3fs', async () => {
    const other = `${sandbox}-destroy`;
    const { status, json } = await mount({ mountPath: '/mnt/destroy-me' }, other);
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(s3fsPids(s3, '/mnt/destroy-me').length, 1);
    const d = await call('DELETE', `/api/sandboxes/${other}`);
    assert.equal(d.status, 200, JSON.stringify(d.json));
    assert.deepEqual(s3fsPids(s3, '/mnt/destroy-me'), []);
  });

  test('credentials from the daemon environment, network "none" sandbox', async () => {
    const second = await startDaemon([], { env: envWithoutCredentials({ AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: SECRET }) });
    try {
      const created = await call('POST', '/api/sandboxes', { id: 'envcreds', network: 'none' }, second.url);
      assert.equal(created.status, 201, JSON.stringify(created.json));
      const m = await api('mount-bucket', { bucket: BUCKET, mountPath: '/mnt/env', endpoint: s3 }, 'envcreds', second.url);
      assert.equal(m.status, 200, JSON.stringify(m.json));
      const r = await sh('cat /mnt/env/from-sandbox.txt', 'envcreds', second.url);
      assert.equal(r.stdout, 'hello from the sandbox\n');
    } finally {
      const { code } = await second.stop();
      assert.equal(code, 0);
      rmSync(second.dataDir, { recursive: true, force: true });
    }
    assert.deepEqual(s3fsPids(s3, '/mnt/env'), [], 'the daemon stop ended its s3fs');
  });
});
