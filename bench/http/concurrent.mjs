// 200 concurrent `POST /api/execute/code` over 20 contexts against a running kernel-host:
//   node bench/http/concurrent.mjs http://127.0.0.1:3000 [contexts=20] [executions=200] [kernel]
// Counts errors (non-200, a stream that does not end with execution_complete, a wrong value).
const [base = 'http://127.0.0.1:3000', nc = '20', ne = '200', kernel = ''] = process.argv.slice(2);
const post = (path, body) =>
  fetch(base + path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

const t0 = performance.now();
const ids = await Promise.all(Array.from({ length: Number(nc) }, async () => {
  const created = await (await post('/api/contexts', kernel ? { kernel } : { language: 'python' })).json();
  if (!created.contextId) throw new Error(`context creation failed: ${JSON.stringify(created)}`);
  return created.contextId;
}));
const createMs = performance.now() - t0;
let errors = 0;
const t1 = performance.now();
await Promise.all(Array.from({ length: Number(ne) }, async (_, i) => {
  try {
    const res = await post('/api/execute/code', { context_id: ids[i % ids.length], code: `${i}+1` });
    const text = await res.text();
    if (res.status !== 200 || !text.includes('execution_complete') || !text.includes(`"text":"${i + 1}"`)) errors++;
  } catch {
    errors++;
  }
}));
const runMs = performance.now() - t1;
await Promise.all(ids.map((id) => fetch(`${base}/api/contexts/${id}`, { method: 'DELETE' })));
console.log(JSON.stringify({ contexts: ids.length, executions: Number(ne), errors, create_contexts_ms: createMs.toFixed(1),
  run_all_ms: runMs.toFixed(1), per_execution_ms: (runMs / Number(ne)).toFixed(3) }));
