// The sandbox-container routes timed from Node over keep-alive HTTP, the same code for every server.
//
//   node bench/http/sandbox_routes.mjs BASE_URL [--n 500] [--raw-mib 256] [--sandboxes 30] [--workdir /workspace]
//                                      [--skip raw,sandboxes] [--tag NAME]
//
// BASE_URL is a server speaking the Cloudflare Sandbox container contract (kernel-host serve, or
// Cloudflare's own runtime). Client: node:http with http.Agent({keepAlive:true}) (one connection for
// the sequential measures, one per session for the parallel ones); a request is timed from
// http.request() to the last byte of the response body. Prints one JSON line:
//   session_true / sessionless_true: POST /api/execute {command:"true"} in a session / "__DISABLE_SESSION__"
//   write_1mib / read_1mib: POST /api/write and /api/read of 1 MiB of text
//   write_1mib_prebuilt / read_1mib_raw: the same without the client's JSON encode/decode of 1 MiB
//   raw_put / raw_get: PUT and GET /api/files/raw?path= of --raw-mib MiB (MB/s, 1 MB = 10^6 bytes)
//   read_stream: POST /api/read/stream (SSE) of the same file (the route both servers have)
//   sandbox_create: POST /api/sandboxes {} until its 201 (each deleted afterwards, untimed)
//   parallel_sleep: 50 sessions each running `sleep 0.1` at once: wall time from the first request to
//                   the last answer; parallel_true: 50 sessions x 20 `true` each, all at once: execs/s
// Routes that answer 404 are reported as {unsupported: status}; errors are counted, never hidden.
import http from 'node:http';

const args = process.argv.slice(2);
const base = new URL(args[0] ?? 'http://127.0.0.1:3000');
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const N = Number(opt('n', 500));
const RAW_MIB = Number(opt('raw-mib', 256));
const SANDBOXES = Number(opt('sandboxes', 30));
const WORKDIR = opt('workdir', '/workspace');
const SECTIONS = ['exec', 'files', 'raw', 'sandboxes', 'parallel_sleep', 'parallel_true'];
const ONLY = new Set(String(opt('only', SECTIONS.join(','))).split(',').filter(Boolean));
const SKIP = new Set(String(opt('skip', '')).split(',').filter(Boolean));
const want = (s) => ONLY.has(s) && !SKIP.has(s);
const TAG = opt('tag', base.host);
const PARALLEL = 50;

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function request(method, path, body, { agentFor = agent, contentType = 'application/json', sink = false, timeoutMs = 120000 } = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined
      : Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const headers = payload ? { 'content-type': contentType, 'content-length': payload.length } : {};
    const req = http.request({ host: base.hostname, port: base.port, method, path, headers, agent: agentFor }, (res) => {
      const chunks = [];
      let bytes = 0;
      res.on('data', (c) => { bytes += c.length; if (!sink) chunks.push(c); });
      res.on('end', () => resolve({ status: res.statusCode, bytes, body: sink ? null : Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    // a request that never answers (a wedged command) fails the section instead of hanging the run
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    if (payload) req.end(payload); else req.end();
  });
}

async function json(method, path, body, opts) {
  const r = await request(method, path, body, opts);
  let parsed = null;
  try { parsed = JSON.parse(r.body.toString()); } catch { /* not JSON */ }
  return { ...r, json: parsed };
}

function stats(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  const r3 = (x) => Math.round(x * 1000) / 1000;
  return { n: s.length, median_ms: r3(at(0.5)), p95_ms: r3(at(0.95)), min_ms: r3(s[0]), max_ms: r3(s[s.length - 1]) };
}

// Times `once()` n times after `warmup` untimed calls; once() returns true when the answer is right.
async function timed(n, warmup, once) {
  const samples = [];
  let errors = 0;
  let firstError = null;
  for (let i = 0; i < n + warmup; i++) {
    const t = performance.now();
    let ok;
    try { ok = await once(); } catch (e) { ok = false; firstError ??= String(e); }
    const dt = performance.now() - t;
    if (ok !== true) { errors++; if (ok && typeof ok === 'string') firstError ??= ok; }
    if (i >= warmup) samples.push(dt);
  }
  return { ...stats(samples), errors, ...(firstError ? { first_error: firstError.slice(0, 300) } : {}) };
}

const execOk = (r) => (r.status === 200 && r.json?.exitCode === 0) || `HTTP ${r.status} ${r.body.toString().slice(0, 200)}`;

async function createSession(id, agentFor = agent) {
  const r = await json('POST', '/api/session/create', { id, cwd: WORKDIR }, { agentFor });
  if (r.status !== 200) throw new Error(`session/create ${id}: HTTP ${r.status} ${r.body.toString().slice(0, 200)}`);
}

const out = { tag: TAG, base: base.href, n: N };
const run = `b${process.pid}`;

// Runs one section; a failure (a dead server, a reset connection) is recorded in out.errors and the
// next sections still run.
async function section(name, body) {
  if (!want(name)) return;
  process.stderr.write(`${TAG}: ${name}\n`);
  try { await body(); } catch (e) { (out.errors ??= {})[name] = String(e?.stack ?? e).slice(0, 400); }
}

const sid = `${run}-s`;
try { await createSession(sid); } catch (e) { (out.errors ??= {}).session = String(e); }

// ---- exec ---------------------------------------------------------------------------------
await section('exec', async () => {
out.session_true = await timed(N, 20, async () =>
  execOk(await json('POST', '/api/execute', { command: 'true', sessionId: sid })));
out.sessionless_true = await timed(Math.max(100, Math.floor(N * 0.6)), 10, async () =>
  execOk(await json('POST', '/api/execute', { command: 'true', sessionId: '__DISABLE_SESSION__' })));
});

// ---- 1 MiB write / read ---------------------------------------------------------------------
await section('files', async () => {
  const line = 'the quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ\n';
  const content = line.repeat(Math.ceil((1 << 20) / line.length)).slice(0, 1 << 20);
  const path = `${WORKDIR}/${run}-1mib.txt`;
  const n = Math.max(50, Math.floor(N * 0.4));
  out.write_1mib = await timed(n, 5, async () => {
    const r = await json('POST', '/api/write', { path, content, sessionId: sid });
    return r.status === 200 || `HTTP ${r.status} ${r.body.toString().slice(0, 200)}`;
  });
  out.read_1mib = await timed(n, 5, async () => {
    const r = await json('POST', '/api/read', { path, sessionId: sid });
    return (r.status === 200 && r.json?.content?.length === content.length) || `HTTP ${r.status} ${r.body.toString().slice(0, 200)}`;
  });
  // The same exchanges without the client's own JSON work on 1 MiB (JSON.stringify + UTF-8 encode
  // of the request, JSON.parse of the answer: ~1.5-2 ms each in Node, the same for any server): the
  // request body is built once, the answer is read to its last byte and checked after the timing.
  const writeBody = Buffer.from(JSON.stringify({ path, content, sessionId: sid }));
  out.write_1mib_prebuilt = await timed(n, 5, async () => {
    const r = await request('POST', '/api/write', writeBody);
    return r.status === 200 || `HTTP ${r.status} ${r.body.toString().slice(0, 200)}`;
  });
  const readBody = Buffer.from(JSON.stringify({ path, sessionId: sid }));
  let lastRead = null;
  out.read_1mib_raw = await timed(n, 5, async () => {
    lastRead = await request('POST', '/api/read', readBody);
    return lastRead.status === 200 || `HTTP ${lastRead.status} ${lastRead.body.toString().slice(0, 200)}`;
  });
  if (JSON.parse(lastRead.body.toString()).content !== content) out.read_1mib_raw.errors += 1;
  await json('POST', '/api/delete', { path, sessionId: sid });
});

// ---- large file: raw PUT / GET, and the SSE read stream ------------------------------------
await section('raw', async () => {
  const bytes = RAW_MIB << 20;
  const path = `${WORKDIR}/${run}-raw.bin`;
  const q = `/api/files/raw?path=${encodeURIComponent(path)}&sessionId=${sid}`;
  const data = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
  const reps = 5;
  const mbps = (ms) => Math.round((bytes / 1e6) / (ms / 1000));
  const put = [], get = [];
  // probe with one byte first: a server without the route may drop the connection on a big body
  const probe = await request('PUT', q, Buffer.from('x'), { contentType: 'application/octet-stream' });
  const unsupported = probe.status === 200 ? null : probe.status;
  for (let i = 0; i < reps && !unsupported; i++) {
    let t = performance.now();
    const w = await request('PUT', q, data, { contentType: 'application/octet-stream' });
    const putMs = performance.now() - t;
    if (w.status !== 200) throw new Error(`PUT raw: HTTP ${w.status} ${w.body.toString().slice(0, 200)}`);
    put.push(putMs);
    t = performance.now();
    const r = await request('GET', q, undefined, { sink: true });
    const getMs = performance.now() - t;
    if (r.status !== 200 || r.bytes !== bytes) throw new Error(`GET raw: HTTP ${r.status}, ${r.bytes} bytes`);
    get.push(getMs);
  }
  if (unsupported) {
    out.raw_put = out.raw_get = { unsupported };
    // make the file another way for the stream measure (the peer has no raw route)
    const r = await json('POST', '/api/execute', { command: `head -c ${bytes} /dev/urandom > ${path}`, sessionId: sid });
    if (execOk(r) !== true) throw new Error(`making ${path}: ${execOk(r)}`);
  } else {
    const sp = stats(put), sg = stats(get);
    out.raw_put = { mib: RAW_MIB, reps, median_ms: sp.median_ms, MBps: mbps(sp.median_ms), best_MBps: mbps(sp.min_ms) };
    out.raw_get = { mib: RAW_MIB, reps, median_ms: sg.median_ms, MBps: mbps(sg.median_ms), best_MBps: mbps(sg.min_ms) };
  }
  // SSE read stream of the same file: both servers have it (chunks base64 for binary files)
  const rs = [];
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    const r = await request('POST', '/api/read/stream', { path, sessionId: sid }, { sink: true });
    if (r.status !== 200) { rs.length = 0; out.read_stream = { unsupported: r.status }; break; }
    rs.push(performance.now() - t);
  }
  if (rs.length) {
    const s = stats(rs);
    out.read_stream = { mib: RAW_MIB, reps: rs.length, median_ms: s.median_ms, MBps: mbps(s.median_ms) };
  }
  await json('POST', '/api/delete', { path, sessionId: sid });
});

// ---- sandbox creation -----------------------------------------------------------------------
await section('sandboxes', async () => {
  const probe = await json('GET', '/api/sandboxes');
  if (probe.status === 404) {
    out.sandbox_create = { unsupported: 404 };
  } else {
    const samples = [];
    let errors = 0;
    for (let i = 0; i < SANDBOXES + 2; i++) {
      const t = performance.now();
      const r = await json('POST', '/api/sandboxes', {});
      const dt = performance.now() - t;
      if (r.status !== 201) { errors++; continue; }
      if (i >= 2) samples.push(dt);
      const id = r.json?.sandbox?.id;
      if (id) await json('DELETE', `/api/sandboxes/${encodeURIComponent(id)}`);
    }
    out.sandbox_create = { ...stats(samples), errors };
  }
});

// ---- 50 sessions in parallel ----------------------------------------------------------------
if (want('parallel_sleep') || want('parallel_true')) {
  const ids = Array.from({ length: PARALLEL }, (_, i) => `${run}-p${i}`);
  const agents = ids.map(() => new http.Agent({ keepAlive: true, maxSockets: 1 }));
  const each = (command) => Promise.all(ids.map((id, i) =>
    json('POST', '/api/execute', { command, sessionId: id }, { agentFor: agents[i], timeoutMs: 20000 })));
  let ready = false;
  await section(want('parallel_sleep') ? 'parallel_sleep' : 'parallel_true', async () => {
    const t = performance.now();
    await Promise.all(ids.map((id, i) => createSession(id, agents[i])));
    out.parallel_create_sessions_ms = Math.round((performance.now() - t) * 10) / 10;
    await each('true'); // warm each session's connection and shell
    ready = true;
  });
  if (ready) {
    await section('parallel_sleep', async () => {
      const walls = [];
      let errors = 0;
      for (let round = 0; round < 7; round++) {
        const t = performance.now();
        const rs = await each('sleep 0.1');
        walls.push(performance.now() - t);
        errors += rs.filter((r) => execOk(r) !== true).length;
      }
      out.parallel_sleep = { sessions: PARALLEL, rounds: walls.length, ...stats(walls), errors };
    });
    await section('parallel_true', async () => {
      const per = 20;
      const tputs = [];
      let errors = 0;
      for (let round = 0; round < 3; round++) {
        const t = performance.now();
        await Promise.all(ids.map(async (id, i) => {
          for (let k = 0; k < per; k++) {
            const r = await json('POST', '/api/execute', { command: 'true', sessionId: id }, { agentFor: agents[i], timeoutMs: 20000 });
            if (execOk(r) !== true) errors++;
          }
        }));
        tputs.push((PARALLEL * per) / ((performance.now() - t) / 1000));
      }
      tputs.sort((a, b) => a - b);
      out.parallel_true = { sessions: PARALLEL, execs: PARALLEL * per, rounds: 3, median_per_s: Math.round(tputs[1]), errors };
    });
  }
  await Promise.allSettled(ids.map((id, i) => json('POST', '/api/session/delete', { sessionId: id }, { agentFor: agents[i], timeoutMs: 10000 })));
  agents.forEach((a) => a.destroy());
}
await json('POST', '/api/session/delete', { sessionId: sid }, { timeoutMs: 10000 }).catch(() => {});
agent.destroy();
console.log(JSON.stringify(out));
