#!/usr/bin/env bash
# One command from a fresh Debian 12 clone to a running product: installs what is missing,
# builds, lists the kernels kernel-host can launch, runs a sample cell in each, then serves the
# API on its default configuration (127.0.0.1:3000) until Ctrl-C. Set KH_NO_SERVE=1 to stop
# after the sample cells.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
kh=build/bin/kernel-host

echo
echo "== kernels kernel-host can launch =="
$kh kernelspecs

sample_for() {
  case "$1" in
    python) printf '%s\n' 'import sys, platform' 'print("hello from", platform.python_implementation(), sys.version.split()[0])' 'sum(i * i for i in range(10))' ;;
    typescript|javascript) printf '%s\n' 'const greet = (who: string): string => `hello from ${who}`;' 'console.log(greet("Deno " + Deno.version.deno));' '[1, 2, 3].map((x) => x * x)' ;;
    *) echo "" ;;
  esac
}

status=0
while read -r name language _; do
  [ "$name" = NAME ] && continue
  code=$(sample_for "$language")
  [ -n "$code" ] || { echo "(no sample cell for language $language: skipping $name)"; continue; }
  echo
  echo "== $name ($language) =="
  if ! printf '%s\n' "$code" | $kh run-code --kernel "$name" --timeout 60 -; then
    echo "!! $name failed"; status=1
  fi
done < <($kh kernelspecs)
[ "$status" -eq 0 ] || exit $status
[ "${KH_NO_SERVE:-}" = 1 ] && exit 0

listen=${KH_LISTEN:-127.0.0.1:3000}
cat <<HELP

== kernel-host serve on $listen (Ctrl-C stops it) ==
Try, from another terminal:
  curl -s http://$listen/api/ping
  curl -s -X POST http://$listen/api/contexts -d '{"language":"python"}'
  curl -sN -X POST http://$listen/api/execute/code -d '{"context_id":"<contextId from above>","code":"print(6*7)"}'
  curl -s http://$listen/api/kernels          # the same contexts, as Jupyter Server kernels
HELP
exec $kh serve --listen "$listen"
