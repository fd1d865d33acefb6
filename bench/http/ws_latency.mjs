// `1+1` over the Jupyter kernel WebSocket with @jupyterlab/services, against kernel-host or any
// Jupyter Server (same client, same measurement):
//   KH_DEPS_DIR=.deps node --import tests/node/register.mjs bench/http/ws_latency.mjs http://127.0.0.1:3000 [token] [kernel] [n]
import services from '@jupyterlab/services';
import WebSocket from 'ws';

const { KernelManager, ServerConnection } = services;
const [base = 'http://127.0.0.1:3000', token = '', name = 'python3', n = '200'] = process.argv.slice(2);
const serverSettings = ServerConnection.makeSettings({
  baseUrl: `${base}/`, wsUrl: `${base.replace('http', 'ws')}/`, WebSocket, token, appendToken: token !== '',
});
const manager = new KernelManager({ serverSettings });
await manager.ready;
const t0 = performance.now();
const kernel = await manager.startNew({ name });
await kernel.info;
const startMs = performance.now() - t0;
const times = [];
for (let i = 0; i < Number(n) + 10; i++) {
  const start = performance.now();
  await kernel.requestExecute({ code: '1+1' }).done;
  if (i >= 10) times.push(performance.now() - start);
}
times.sort((a, b) => a - b);
const q = (p) => times[Math.min(times.length - 1, Math.floor(p * times.length))].toFixed(3);
console.log(JSON.stringify({ base, kernel: name, protocol: kernel.protocol ?? '', start_ms: startMs.toFixed(1), median_ms: q(0.5), p90_ms: q(0.9) }));
await kernel.shutdown();
manager.dispose();
process.exit(0);
