#!/usr/bin/env bash
# Sets up the peer for bench/http/sandbox_bench.py: Cloudflare's sandbox container runtime
# (packages/sandbox-container of github.com/cloudflare/sandbox-sdk) run from source on Bun.
#
#   bench/peers/cloudflare_runtime.sh SOURCE [PREFIX]
#
# SOURCE: a git directory of cloudflare/sandbox-sdk (GitHub is not reachable from this machine: use
#         the git mirror the fetch tool gives, e.g. /work/.mirror/cloudflare+sandbox-sdk/repo, its
#         HEAD is taken) or a checked-out tree of it.
# PREFIX: where everything goes, default bench/.peers (git-ignored).
#
# Idempotent: each step is skipped when its result is there. Downloads only from the npm registry:
# the `bun` package at the version in the repository's .bun-version (its binary comes from the
# @oven/bun-linux-x64* packages) and the container's runtime dependencies (acorn, async-mutex,
# capnweb at the ranges in its package.json). The workspace package @repo/shared is linked to its
# TypeScript sources (Bun runs them directly), so nothing is compiled: the server is
# `bun run packages/sandbox-container/src/main.ts`, the same code as their `bun build --compile`
# binary. Prints the command that starts it. The server listens on 0.0.0.0:3000 (hard-coded),
# runs commands as the calling user with cwd /workspace (created here when running as root), and
# wants no /container-server files unless the code interpreter is used (not benchmarked: pools 0).
set -euo pipefail

SRC=${1:?usage: $0 SOURCE-GIT-DIR-OR-CHECKOUT [PREFIX]}
HERE=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=${2:-$HERE/.peers}
mkdir -p "$PREFIX"
PREFIX=$(cd "$PREFIX" && pwd)
TREE=$PREFIX/sandbox-sdk

# 1. the sources (only the two packages the server needs)
if [ ! -f "$TREE/packages/sandbox-container/src/main.ts" ]; then
  rm -rf "$TREE.tmp" && mkdir -p "$TREE.tmp"
  if git --git-dir="$SRC" rev-parse --verify -q HEAD >/dev/null 2>&1; then
    git --git-dir="$SRC" archive HEAD packages/sandbox-container packages/shared .bun-version \
      | tar -x -C "$TREE.tmp"
    git --git-dir="$SRC" rev-parse HEAD >"$TREE.tmp/COMMIT"
  elif [ -f "$SRC/packages/sandbox-container/src/main.ts" ]; then
    mkdir -p "$TREE.tmp/packages"
    cp -a "$SRC/packages/sandbox-container" "$SRC/packages/shared" "$TREE.tmp/packages/"
    rm -rf "$TREE.tmp/packages/sandbox-container/node_modules"
    cp "$SRC/.bun-version" "$TREE.tmp/" 2>/dev/null || true
    (git -C "$SRC" rev-parse HEAD 2>/dev/null || echo unknown) >"$TREE.tmp/COMMIT"
  else
    echo "$SRC is neither a git directory nor a checkout of cloudflare/sandbox-sdk" >&2; exit 1
  fi
  rm -rf "$TREE" && mv "$TREE.tmp" "$TREE"
fi
BUN_VERSION=$(cat "$TREE/.bun-version" 2>/dev/null || echo 1.3.12)

# 2. Bun from the npm registry
BUN=$PREFIX/bun/node_modules/.bin/bun
if ! "$BUN" --version >/dev/null 2>&1 || [ "$("$BUN" --version)" != "$BUN_VERSION" ]; then
  mkdir -p "$PREFIX/bun"
  echo '{"name":"peer-bun","private":true}' >"$PREFIX/bun/package.json"
  (cd "$PREFIX/bun" && npm install --no-audit --no-fund --no-save "bun@$BUN_VERSION" >/dev/null)
  "$BUN" --version >/dev/null
fi

# 3. the container's runtime dependencies, and @repo/shared linked to its TypeScript sources
C=$TREE/packages/sandbox-container
if [ ! -d "$C/node_modules/capnweb" ] || [ ! -d "$C/node_modules/acorn" ] || [ ! -d "$C/node_modules/async-mutex" ]; then
  DEPS=$(node -e 'const d=require(process.argv[1]).dependencies;
    console.log(Object.entries(d).filter(([n])=>!n.startsWith("@repo/")).map(([n,v])=>n+"@"+v).join(" "))' \
    "$C/package.json")
  mkdir -p "$PREFIX/deps"
  echo '{"name":"peer-deps","private":true}' >"$PREFIX/deps/package.json"
  # shellcheck disable=SC2086
  (cd "$PREFIX/deps" && npm install --no-audit --no-fund $DEPS >/dev/null)
  rm -rf "$C/node_modules" && cp -a "$PREFIX/deps/node_modules" "$C/node_modules"
fi
S=$C/node_modules/@repo/shared
if [ ! -f "$S/package.json" ]; then
  mkdir -p "$S"
  ln -sfn "$TREE/packages/shared/src" "$S/src"
  cat >"$S/package.json" <<'EOF'
{
  "name": "@repo/shared",
  "private": true,
  "type": "module",
  "exports": {
    ".": "./src/index.ts",
    "./backup": "./src/backup.ts",
    "./internal": "./src/internal.ts",
    "./errors": "./src/errors/index.ts"
  }
}
EOF
fi

# 4. the working directory the runtime assumes
if [ "$(id -u)" = 0 ]; then mkdir -p /workspace; fi

echo "peer ready: $(cat "$TREE/COMMIT") (bun $("$BUN" --version))"
echo "start: cd $C && PYTHON_POOL_MIN_SIZE=0 JAVASCRIPT_POOL_MIN_SIZE=0 TYPESCRIPT_POOL_MIN_SIZE=0 $BUN run src/main.ts"
