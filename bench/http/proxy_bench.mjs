// The preview proxy against direct access to the same server, side by side in one run:
//   node bench/http/proxy_bench.mjs [KERNEL_HOST_BIN] [--seconds 5] [--connections 16] [--requests 3000]
// Starts `kernel-host serve`, a small keep-alive HTTP server (node, else python) in a sandbox with
// network "host" (so 127.0.0.1:<port> is reachable directly) and the same server in a sandbox with
// network "none" (reached only through the proxy, inside its network namespace), exposes both,
// then measures:
//   - latency: sequential GETs on one keep-alive connection (median, p90, p99): direct, proxy by
//     Host, proxy by path, proxy into the "none" sandbox;
//   - throughput: requests per second with N keep-alive connections for S seconds each, runs
//     interleaved (direct, proxy, direct, proxy) and the better of two kept for each.
// When nginx is installed (bench/run installs nginx-light), the same is measured through nginx as a
// reverse proxy to the same server (one worker, upstream keep-alive): what a mature proxy costs
// on this machine, for scale. It is started on a free port with a config in a temp folder.
// Prints a table, the ratios against the goals (>= 0.8x direct throughput, < 0.3 ms added median
// latency) and a JSON line. Not a test: nothing is asserted.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const bin = args.find((a) => !a.startsWith('--') && !/^\d+$/.test(a)) || process.env.KH_BIN || 'build/bin/kernel-host';
const SECONDS = opt('seconds', 5);
const CONNECTIONS = opt('connections', 16);
const REQUESTS = opt('requests', 3000);
const PORT_HOST = 18580, PORT_NONE = 18581;

// The target: answers every GET with a 64-byte body, keep-alive.
const NODE_SERVER = `require('http').createServer((q, s) => { s.writeHead(200, {'content-type': 'text/plain', 'content-length': 64}); s.end('x'.repeat(64)); }).listen(Number(process.argv[2]), '127.0.0.1');`;
const PY_SERVER = `import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Type", "text/plain"); self.send_header("Content-Length", "64"); self.end_headers(); self.wfile.write(b"x" * 64)
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()`;

const dataDir = mkdtempSync(join(tmpdir(), 'kh-proxy-bench-'));
const daemon = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--python-pool', '0'], { stdio: ['ignore', 'pipe', 'ignore'] });
const base = await new Promise((resolve, reject) => {
  let out = '';
  daemon.stdout.on('data', (c) => {
    out += c;
    const m = out.match(/listening on (http:\/\/\S+)/);
    if (m) resolve(m[1]);
  });
  daemon.on('exit', (code) => reject(new Error(`kernel-host exited with ${code}`)));
});
const daemonPort = Number(new URL(base).port);

async function api(path, body, method = 'POST') {
  const res = await fetch(base + path, { method, headers: { 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : {};
}

async function startServer(sandbox, port) {
  await api('/api/sandboxes', { id: sandbox, network: sandbox.endsWith('host') ? 'host' : 'none', limits: { memoryBytes: 0 } });
  const useNode = (await api(`/sandboxes/${sandbox}/api/execute`, { command: 'test -x /usr/bin/node && /usr/bin/node -e 1 && echo yes' })).stdout.trim() === 'yes';
  const file = useNode ? '/workspace/server.js' : '/workspace/server.py';
  await api(`/sandboxes/${sandbox}/api/write`, { path: file, content: useNode ? NODE_SERVER : PY_SERVER });
  await api(`/sandboxes/${sandbox}/api/process/start`, { command: `exec ${useNode ? '/usr/bin/node' : '/usr/bin/python3'} ${file} ${port}` });
  const ready = await fetch(`${base}/sandboxes/${sandbox}/api/port-watch`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ port, mode: 'tcp', timeoutMs: 30000 }),
  });
  if (!(await ready.text()).includes('"ready"')) throw new Error(`the server in ${sandbox} did not start`);
  const exposed = await api(`/sandboxes/${sandbox}/api/expose-port`, { port });
  return { server: useNode ? 'node' : 'python', token: exposed.token, host: new URL(exposed.url).host };
}

// A request target: where to connect, which Host and path to send.
function get(agent, target) {
  return new Promise((resolve, reject) => {
    const req = http.request({ agent, host: '127.0.0.1', port: target.port, path: target.path, headers: target.host ? { host: target.host } : {} }, (res) => {
      res.on('data', () => {});
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

async function latency(target) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  for (let i = 0; i < 200; i++) await get(agent, target);  // warm-up
  const times = [];
  for (let i = 0; i < REQUESTS; i++) {
    const t = process.hrtime.bigint();
    await get(agent, target);
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  agent.destroy();
  times.sort((a, b) => a - b);
  const q = (p) => times[Math.min(times.length - 1, Math.floor(p * times.length))];
  return { median: q(0.5), p90: q(0.9), p99: q(0.99) };
}

async function throughput(target) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  let done = 0, stop = false;
  const worker = async () => {
    while (!stop) {
      await get(agent, target);
      done++;
    }
  };
  const workers = Array.from({ length: CONNECTIONS }, worker);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  stop = true;
  await Promise.all(workers);
  const rps = done / ((performance.now() - t0) / 1000);
  agent.destroy();
  return rps;
}

// nginx as a reverse proxy to 127.0.0.1:upstreamPort, or null when it is not installed.
async function startNginx(upstreamPort) {
  const bin = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((b) => existsSync(b));
  if (!bin) return null;
  const port = await new Promise((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => { const p = probe.address().port; probe.close(() => resolve(p)); });
  });
  const dir = join(dataDir, 'nginx');
  spawnSync('mkdir', ['-p', dir]);
  writeFileSync(join(dir, 'nginx.conf'), `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream app { server 127.0.0.1:${upstreamPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`);
  const r = spawnSync(bin, ['-c', join(dir, 'nginx.conf'), '-p', dir]);
  if (r.status !== 0) { console.error(`nginx did not start: ${r.stderr}`); return null; }
  return { port, stop: () => spawnSync(bin, ['-c', join(dir, 'nginx.conf'), '-p', dir, '-s', 'stop']) };
}

let nginx = null;
try {
  const hostBox = await startServer('bench-host', PORT_HOST);
  const noneBox = await startServer('bench-none', PORT_NONE);
  const targets = {
    direct: { port: PORT_HOST, path: '/' },
    proxy_host: { port: daemonPort, path: '/', host: hostBox.host },
    proxy_path: { port: daemonPort, path: `/sandboxes/bench-host/preview/${PORT_HOST}-${hostBox.token}/` },
    proxy_netns: { port: daemonPort, path: '/', host: noneBox.host },
  };
  nginx = await startNginx(PORT_HOST);
  if (nginx) targets.nginx = { port: nginx.port, path: '/' };
  const lat = {};
  for (const [name, t] of Object.entries(targets)) lat[name] = await latency(t);
  const rps = { direct: 0, proxy_host: 0, proxy_netns: 0, ...(nginx ? { nginx: 0 } : {}) };
  for (let round = 0; round < 2; round++)
    for (const name of Object.keys(rps)) rps[name] = Math.max(rps[name], await throughput(targets[name]));

  console.log(`server: ${hostBox.server} in a sandbox; ${CONNECTIONS} connections x ${SECONDS} s; ${REQUESTS} sequential requests for latency`);
  console.log('target                      median ms   p90 ms   p99 ms   req/s');
  for (const name of Object.keys(targets)) {
    const l = lat[name];
    console.log(`${name.padEnd(26)} ${l.median.toFixed(3).padStart(9)} ${l.p90.toFixed(3).padStart(8)} ${l.p99.toFixed(3).padStart(8)} ${(rps[name] ? rps[name].toFixed(0) : '-').padStart(8)}`);
  }
  const ratio = rps.proxy_host / rps.direct;
  const added = lat.proxy_host.median - lat.direct.median;
  console.log(`throughput proxy/direct: ${ratio.toFixed(2)}x (goal >= 0.8x); added median latency: ${added.toFixed(3)} ms (goal < 0.3 ms)`);
  if (nginx) console.log(`nginx for scale: throughput ${(rps.nginx / rps.direct).toFixed(2)}x direct; added median latency ${(lat.nginx.median - lat.direct.median).toFixed(3)} ms`);
  console.log(JSON.stringify({
    bench: 'proxy', server: hostBox.server, connections: CONNECTIONS, seconds: SECONDS,
    rps: Object.fromEntries(Object.entries(rps).map(([k, v]) => [k, Math.round(v)])),
    median_ms: Object.fromEntries(Object.entries(lat).map(([k, v]) => [k, Number(v.median.toFixed(3))])),
    throughput_ratio: Number(ratio.toFixed(3)), added_median_ms: Number(added.toFixed(3)),
    netns_throughput_ratio: Number((rps.proxy_netns / rps.direct).toFixed(3)),
    ...(nginx ? { nginx_throughput_ratio: Number((rps.nginx / rps.direct).toFixed(3)),
                  nginx_added_median_ms: Number((lat.nginx.median - lat.direct.median).toFixed(3)) } : {}),
  }));
} finally {
  if (nginx) nginx.stop();
  daemon.kill('SIGTERM');
  await new Promise((r) => daemon.on('exit', r));
  rmSync(dataDir, { recursive: true, force: true });
}
