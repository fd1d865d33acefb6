// Small helpers shared by the Node tests: JSON requests and waiting for processes to end.
import { readdirSync, readFileSync } from 'node:fs';

// One request with an optional JSON body; the answer as { status, json } (a non-JSON body as
// { text }), so a test can assert on error answers too.
export async function request(url, { method = 'POST', body, headers = {} } = {}) {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = { text };
  }
  return { status: res.status, json };
}

// POST a JSON body: { status, body }.
export async function post(url, body) {
  const { status, json } = await request(url, { body });
  return { status, body: json };
}

// Waits (bounded) until none of the pids exists; returns those still there. Killed processes
// need a moment to be reaped by their parents.
export async function survivors(pids, waitMs = 10000) {
  const deadline = Date.now() + waitMs;
  let left = pids;
  while (left.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    left = left.filter((pid) => readdirSync('/proc').includes(String(pid)));
  }
  return left;
}

// Waits (no deadline of its own: the test's timeout bounds it) until `check()` is truthy.
export async function until(check, pauseMs = 20) {
  for (;;) {
    const value = await check();
    if (value) return value;
    await new Promise((r) => setTimeout(r, pauseMs));
  }
}

// Every process below `pid` (children, grandchildren, ...), as [{ pid, state, cmdline }].
export function descendants(pid) {
  const parentOf = new Map();
  const info = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parentOf.set(Number(entry), Number(fields[1]));
      info.set(Number(entry), { pid: Number(entry), state: fields[0] });
    } catch {
      // gone meanwhile
    }
  }
  const out = [];
  const below = (p) => {
    for (;;) {
      const parent = parentOf.get(p);
      if (parent === undefined || parent <= 1) return false;
      if (parent === pid) return true;
      p = parent;
    }
  };
  for (const [p, i] of info) {
    if (!below(p)) continue;
    try {
      i.cmdline = readFileSync(`/proc/${p}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
    } catch {
      i.cmdline = '';
    }
    out.push(i);
  }
  return out;
}

// One sample of a process's resources from /proc: resident memory (bytes), open fds, threads.
export function processSample(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name) => Number(status.match(new RegExp(`^${name}:\\s+(\\d+)`, 'm'))?.[1] ?? 0);
  return {
    rss: kb('VmRSS') * 1024,
    fds: readdirSync(`/proc/${pid}/fd`).length,
    threads: readdirSync(`/proc/${pid}/task`).length,
  };
}

// POST /api/execute/code and read its SSE stream as it comes: each event goes to `onEvent`
// (stdout/stderr text is not kept unless `keepText`), the answer is { status, events, text,
// outputBytes, last } where `last` is the final event (execution_complete or error). `hold`, if
// given, is awaited after each chunk read: a slow client.
export async function runCode(base, body, { onEvent = () => {}, keepText = true, signal, hold } = {}) {
  const res = await fetch(`${base}/api/execute/code`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal,
  });
  if (res.headers.get('content-type')?.startsWith('application/json'))
    return { status: res.status, error: await res.json(), events: [], text: '', outputBytes: 0 };
  const out = { status: res.status, events: [], text: '', outputBytes: 0, last: undefined };
  const take = (line) => {
    if (!line.startsWith('data: ')) return;  // SSE: one JSON object per data line
    const event = JSON.parse(line.slice(6));
    if (event.type === 'stdout' || event.type === 'stderr') {
      out.outputBytes += Buffer.byteLength(event.text);
      if (keepText) out.text += event.text;
    } else {
      out.events.push(event);
    }
    out.last = event;
    onEvent(event);
  };
  let partial = [];  // pieces of the line not yet ended (a line may span many chunks)
  for await (const chunk of res.body) {
    const buf = Buffer.from(chunk);
    let start = 0;
    for (let nl = buf.indexOf(10); nl >= 0; nl = buf.indexOf(10, start)) {
      partial.push(buf.subarray(start, nl));
      take(Buffer.concat(partial).toString('utf8'));
      partial = [];
      start = nl + 1;
    }
    if (start < buf.length) partial.push(buf.subarray(start));
    if (hold) await hold(out);
  }
  return out;
}

// Memory bounds in tests: a sanitizer build (KH_SANITIZE, set by ctest) adds shadow memory and
// ASan's quarantine (up to 256 MiB of freed blocks) to the daemon's resident size.
export const SANITIZED = Boolean(process.env.KH_SANITIZE);
export const MIB = 2 ** 20;
export const rssAllowance = (mib) => (SANITIZED ? mib * 3 + 300 : mib) * MIB;
