// Soak: mixed load from several concurrent clients for KH_SOAK_SECONDS (60 by default; 30 minutes
// on demand, see README) — session and sessionless commands, file write/read/list/delete, Python
// cells drawing matplotlib images, background processes started and killed, contexts created and
// deleted, sandboxes created and destroyed. The daemon's resident memory, open fds, threads and
// descendant processes are sampled every second. Every answer is classified: no unexpected one is
// allowed. After the warm-up (first 20%) memory stays flat, and at the end fds, threads and
// processes return to their pre-load baseline. Samples go to <build>/soak-samples.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { startDaemon } from './daemon.mjs';
import { descendants, MIB, post, processSample, request, runCode, SANITIZED } from './http_helpers.mjs';

const SECONDS = Number(process.env.KH_SOAK_SECONDS ?? 60);
const WORKERS = 6;
// An elastic pool's idle thread leaves after 30 s: the end-of-run settle waits longer than that.
const SETTLE_MS = 45_000;

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
};

function sampleDaemon(pid, t0) {
  const s = processSample(pid);
  return { t: (Date.now() - t0) / 1000, ...s, processes: descendants(pid).length };
}

// Polls (bounded) until every resource is at most its baseline; returns the last sample.
async function settleToBaseline(pid, baseline, t0) {
  const deadline = Date.now() + SETTLE_MS;
  let s = sampleDaemon(pid, t0);
  while (Date.now() < deadline && !(s.fds <= baseline.fds && s.threads <= baseline.threads && s.processes <= baseline.processes)) {
    await new Promise((r) => setTimeout(r, 250));
    s = sampleDaemon(pid, t0);
  }
  return s;
}

test(`soak: ${WORKERS} clients of mixed load for ${SECONDS} s; no unexpected answer; resources flat`, { timeout: (SECONDS * 2 + 240) * 1000 }, async () => {
  const daemon = await startDaemon(['--python-pool', '0']);
  const sb = `${daemon.url}/sandboxes/soak`;
  const unexpected = [];
  const counts = {};
  const expect = (cond, op, detail) => {
    if (!cond) throw new Error(`${op}: ${typeof detail === 'string' ? detail : JSON.stringify(detail).slice(0, 500)}`);
  };

  // ---- set-up: what lives for the whole run (part of the baseline) ----
  assert.equal((await post(`${sb}/api/execute`, { command: 'mkdir -p /workspace/soak' })).status, 200);
  for (let w = 0; w < WORKERS; ++w) {
    assert.equal((await post(`${sb}/api/session/create`, { id: `w${w}` })).status, 200);
    assert.equal((await post(`${sb}/api/execute`, { command: 'true', sessionId: `w${w}` })).status, 200);
  }
  const plotContext = (await post(`${sb}/api/contexts`, { language: 'python' })).body.contextId;
  assert.ok(plotContext);
  const warm = await runCode(sb, { context_id: plotContext, code: 'import matplotlib.pyplot as plt\nprint("ready")' });
  assert.equal(warm.text, 'ready\n');

  // ---- the operations; each throws on an answer it does not expect ----
  const ops = {
    async sessionExec(w, i) {
      const r = await post(`${sb}/api/execute`, { command: `echo $((${i} * 2))`, sessionId: `w${w}` });
      expect(r.status === 200 && r.body.stdout === `${i * 2}\n` && r.body.exitCode === 0, 'session exec', r);
    },
    async sessionlessExec(w, i) {
      // (the default session's shell: `exit` would end it, a subshell's exit code does not)
      const r = await post(`${sb}/api/execute`, { command: `printf '%s' w${w}-${i}; (exit 3)` });
      expect(r.status === 200 && r.body.stdout === `w${w}-${i}` && r.body.exitCode === 3, 'sessionless exec', r);
    },
    async files(w, i) {
      const dir = `/workspace/soak/w${w}`;
      const path = `${dir}/f${i}.txt`;
      const content = `worker ${w} iteration ${i}\n`.repeat(50);
      let r = await post(`${sb}/api/write`, { path, content });
      expect(r.status === 200, 'write', r);
      r = await post(`${sb}/api/read`, { path });
      expect(r.status === 200 && r.body.content === content, 'read', r);
      r = await post(`${sb}/api/list-files`, { path: dir });
      expect(r.status === 200 && r.body.files.some((f) => f.name === `f${i}.txt`), 'list', r);
      r = await post(`${sb}/api/delete`, { path });
      expect(r.status === 200, 'delete', r);
      r = await post(`${sb}/api/read`, { path });
      expect(r.status === 404 && r.body.code === 'FILE_NOT_FOUND', 'read deleted', r);
    },
    async plot(w, i) {
      const code = `fig, ax = plt.subplots(figsize=(2, 2))\nax.plot([0, 1, 2], [${w}, ${i % 7}, 1])\nplt.show()\nprint("drawn")`;
      const r = await runCode(sb, { context_id: plotContext, code });
      const png = r.events.find((e) => e.type === 'result' && e.png);
      expect(r.status === 200 && r.text === 'drawn\n' && png && r.last?.type === 'execution_complete', 'plot',
        { text: r.text, events: r.events.map((e) => e.type), last: r.last, error: r.error });
      expect(Buffer.from(png.png, 'base64').subarray(1, 4).toString() === 'PNG', 'plot png', png.png.slice(0, 40));
    },
    async process(w, i) {
      const id = `p${w}-${i}`;
      let r = await post(`${sb}/api/process/start`, { command: 'sleep 30', processId: id });
      expect(r.status === 200 && r.body.processId === id, 'process start', r);
      r = await request(`${sb}/api/process/${id}`, { method: 'GET' });
      expect(r.status === 200 && r.json.process.status === 'running', 'process get', r.json);
      r = await request(`${sb}/api/process/${id}`, { method: 'DELETE' });
      expect(r.status === 200, 'process kill', r.json);
      const quick = `q${w}-${i}`;
      r = await post(`${sb}/api/process/start`, { command: `echo ${quick}`, processId: quick });
      expect(r.status === 200, 'quick process start', r);
      for (;;) {  // a process that ends by itself: poll its status (bounded by the test's timeout)
        r = await request(`${sb}/api/process/${quick}`, { method: 'GET' });
        expect(r.status === 200, 'quick process get', r.json);
        if (r.json.process.status !== 'running') break;
        await new Promise((res) => setTimeout(res, 20));
      }
      expect(r.json.process.status === 'completed' && r.json.process.exitCode === 0, 'quick process end', r.json);
      r = await request(`${sb}/api/process/${quick}/logs`, { method: 'GET' });
      expect(r.status === 200 && r.json.stdout === `${quick}\n`, 'quick process logs', r.json);
    },
    async context(w, i) {
      const r = await post(`${sb}/api/contexts`, { language: 'python' });
      expect(r.status < 300 && r.body.contextId, 'context create', r);
      const out = await runCode(sb, { context_id: r.body.contextId, code: `print(${i} + ${w})` });
      expect(out.text === `${i + w}\n`, 'context run', { text: out.text, last: out.last });
      const del = await request(`${sb}/api/contexts/${r.body.contextId}`, { method: 'DELETE' });
      expect(del.status === 200, 'context delete', del.json);
    },
    async sandbox(w, i) {
      const id = `soak-${w}-${i}`;
      let r = await post(`${daemon.url}/api/sandboxes`, { id });
      expect(r.status === 201, 'sandbox create', r);
      r = await post(`${daemon.url}/sandboxes/${id}/api/execute`, { command: 'echo inside' });
      expect(r.status === 200 && r.body.stdout === 'inside\n', 'sandbox exec', r);
      r = await request(`${daemon.url}/api/sandboxes/${id}`, { method: 'DELETE' });
      expect(r.status === 200, 'sandbox destroy', r.json);
    },
  };
  const names = Object.keys(ops);

  // ---- sampling ----
  const t0 = Date.now();
  const baseline = sampleDaemon(daemon.pid, t0);
  const samples = [];
  const sampler = setInterval(() => samples.push(sampleDaemon(daemon.pid, t0)), 1000);

  // ---- load ----
  const stopAt = t0 + SECONDS * 1000;
  const worker = async (w) => {
    for (let i = 0; Date.now() < stopAt; ++i) {
      const name = names[(w + i) % names.length];
      try {
        await ops[name](w, i);
        counts[name] = (counts[name] ?? 0) + 1;
      } catch (e) {
        unexpected.push({ worker: w, iteration: i, op: name, error: String(e?.message ?? e) });
      }
    }
  };
  await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
  clearInterval(sampler);

  // ---- end: what the run left must go away ----
  await fetch(`${sb}/api/process/kill-all`, { method: 'DELETE' });
  const final = await settleToBaseline(daemon.pid, baseline, t0);

  const warmupEnd = SECONDS * 0.2;
  const after = samples.filter((s) => s.t >= warmupEnd);
  const lastQuarter = samples.filter((s) => s.t >= SECONDS * 0.75);
  const summary = {};
  for (const key of ['rss', 'fds', 'threads', 'processes']) {
    const xs = samples.map((s) => s[key]);
    summary[key] = { min: Math.min(...xs), median: median(xs), max: Math.max(...xs), baseline: baseline[key], final: final[key] };
  }
  // what the fds above the baseline are, to diagnose a leak
  const fdKinds = {};
  for (const fd of readdirSync(`/proc/${daemon.pid}/fd`)) {
    let target;
    try {
      target = readlinkSync(`/proc/${daemon.pid}/fd/${fd}`).replace(/\d+/g, 'N');
    } catch {
      continue;
    }
    fdKinds[target] = (fdKinds[target] ?? 0) + 1;
  }
  const report = { seconds: SECONDS, workers: WORKERS, operations: counts, unexpected, baseline, final, fdKinds, summary, samples };
  writeFileSync(join(process.env.KH_BUILD_DIR ?? '.', 'soak-samples.json'), JSON.stringify(report, null, 1));
  console.log(`# soak ${SECONDS} s, ${WORKERS} clients, operations ${JSON.stringify(counts)}`);
  for (const [key, s] of Object.entries(summary))
    console.log(`# ${key}: baseline ${s.baseline} min ${s.min} median ${s.median} max ${s.max} final ${s.final}`);

  assert.equal((await daemon.stop()).code, 0);
  assert.deepEqual(unexpected, [], 'every answer was the expected one');
  for (const name of names) assert.ok(counts[name] > 0, `operation ${name} ran`);
  assert.ok(final.fds <= baseline.fds, `fds ${final.fds} > baseline ${baseline.fds}: ${JSON.stringify(fdKinds)}`);
  assert.ok(final.threads <= baseline.threads, `threads ${final.threads} > baseline ${baseline.threads}`);
  assert.ok(final.processes <= baseline.processes, `processes ${final.processes} > baseline ${baseline.processes}`);
  const settled = median(after.map((s) => s.rss));
  const late = median(lastQuarter.map((s) => s.rss));
  // (ASan's quarantine of freed blocks fills up to 256 MiB over a run: allowed for on top)
  const allowed = settled * 1.5 + 20 * MIB + (SANITIZED ? 300 * MIB : 0);
  assert.ok(late <= allowed, `RSS grew: post-warm-up median ${settled}, last-quarter median ${late}`);
});
