// A full disk: a write that does not fit gives NO_SPACE and leaves the old file intact (writes go
// to a temporary file renamed over the old one). A 64 KiB tmpfs is mounted in the sandbox's
// workspace folder before the sandbox starts (bwrap binds the workspace recursively). Needs root.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { startDaemon } from './daemon.mjs';
import { post } from './http_helpers.mjs';

describe('a full disk', () => {
  let daemon;
  let small;
  before(async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'kh-diskfull-'));
    small = join(dataDir, 'sandboxes', 'full', 'workspace', 'small');
    mkdirSync(small, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0777', 'tmpfs', small]);
    daemon = await startDaemon(['--python-pool', '0'], { dataDir });
  });
  after(async () => {
    assert.equal((await daemon.stop()).code, 0);
    execFileSync('umount', ['-l', small]);
  });

  test('NO_SPACE, and the old file stays whole', async () => {
    const sb = `${daemon.url}/sandboxes/full`;
    const old = 'old contents\n'.repeat(100);
    assert.equal((await post(`${sb}/api/write`, { path: '/workspace/small/data.txt', content: old })).status, 200);
    const big = await post(`${sb}/api/write`, { path: '/workspace/small/data.txt', content: 'x'.repeat(200 * 1024) });
    assert.equal(big.status, 500);
    assert.equal(big.body.code, 'NO_SPACE');
    assert.equal((await post(`${sb}/api/read`, { path: '/workspace/small/data.txt' })).body.content, old);
    // no temporary file is left behind to fill the disk further
    const list = await post(`${sb}/api/list-files`, { path: '/workspace/small', options: { includeHidden: true } });
    assert.deepEqual(list.body.files.map((f) => f.name), ['data.txt']);
    // raw uploads fail the same way
    const raw = await fetch(`${sb}/api/files/raw?path=/workspace/small/data.txt`, { method: 'PUT', body: Buffer.alloc(300 * 1024) });
    assert.equal(raw.status, 500);
    assert.equal((await raw.json()).code, 'NO_SPACE');
    assert.equal((await post(`${sb}/api/read`, { path: '/workspace/small/data.txt' })).body.content, old);
  });
});
