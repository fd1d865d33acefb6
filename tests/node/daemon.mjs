// Starts `kernel-host serve` on a free port for a test file and stops it with SIGTERM.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// options.dataDir: reuse a data folder (a restarted daemon); default a fresh temporary one.
export async function startDaemon(extraArgs = [], options = {}) {
  const bin = process.env.KH_BIN;
  if (!bin) throw new Error('KH_BIN must name the kernel-host executable');
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'kh-node-'));
  const child = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, ...extraArgs], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: options.env ?? process.env,
  });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`kernel-host exited early with ${code}: ${out}`)));
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return {
    url,
    dataDir,
    pid: child.pid,
    async stop() {
      child.kill('SIGTERM');
      return exited;
    },
  };
}
