// `1+1` through POST /api/execute/code (SSE read to the end) against a running kernel-host:
//   node bench/http/execute_latency.mjs http://127.0.0.1:3000 [iterations] [language] [kernelspec]
// Prints the median and p90 in milliseconds, plus context creation time. Not a test: no goals asserted.
const [base = 'http://127.0.0.1:3000', n = '200', language = 'python', kernel = ''] = process.argv.slice(2);
const iterations = Number(n);

async function post(path, body) {
  const res = await fetch(base + path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  return res;
}

const t0 = performance.now();
const created = await (await post('/api/contexts', kernel ? { language, kernel } : { language })).json();
const createMs = performance.now() - t0;
const id = created.contextId;
const times = [];
for (let i = 0; i < iterations + 10; i++) {
  const start = performance.now();
  const res = await post('/api/execute/code', { context_id: id, code: '1+1' });
  const text = await res.text();
  if (!text.includes('execution_complete')) throw new Error(`incomplete stream: ${text}`);
  if (i >= 10) times.push(performance.now() - start);  // 10 warm-up runs
}
times.sort((a, b) => a - b);
const q = (p) => times[Math.min(times.length - 1, Math.floor(p * times.length))].toFixed(3);
console.log(JSON.stringify({ language, kernel: kernel || created.kernel || '', iterations, create_context_ms: createMs.toFixed(1), median_ms: q(0.5), p90_ms: q(0.9), min_ms: q(0) }));
await fetch(`${base}/api/contexts/${id}`, { method: 'DELETE' });
