// Node ESM hooks for the tests: map the Workers-only module `cloudflare:workers` to a stub, retry
// extensionless relative imports with `.js` (as @cloudflare/containers needs), and resolve bare
// package names from the project-local .deps folder (KH_DEPS_DIR). See
// shared/reference/cloudflare-sandbox.md section 7.2.
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url);
