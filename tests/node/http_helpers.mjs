// Small helpers shared by the Node tests: JSON requests and waiting for processes to end.
import { readdirSync } from 'node:fs';

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
