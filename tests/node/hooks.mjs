import { pathToFileURL } from 'node:url';

const deps = process.env.KH_DEPS_DIR;
const stub = new URL('./cloudflare-workers-stub.mjs', import.meta.url).href;

export async function resolve(specifier, context, next) {
  if (specifier === 'cloudflare:workers') return { url: stub, shortCircuit: true };
  try {
    return await next(specifier, context);
  } catch (err) {
    if (err?.code !== 'ERR_MODULE_NOT_FOUND' && err?.code !== 'ERR_UNSUPPORTED_DIR_IMPORT') throw err;
    if (specifier.startsWith('./') || specifier.startsWith('../')) return next(`${specifier}.js`, context);
    if (deps) return next(specifier, { ...context, parentURL: pathToFileURL(`${deps}/node_modules/`).href });
    throw err;
  }
}
