// The parts of the Workers runtime module that @cloudflare/sandbox imports at load time.
export class DurableObject {}
export class WorkerEntrypoint {}
export class RpcTarget {}
export const env = {};
const span = { setAttribute() {}, setAttributes() {}, end() {} };
export const tracing = { enterSpan: (_name, fn, ...args) => fn(span, ...args) };
