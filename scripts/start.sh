#!/usr/bin/env bash
# One command from a fresh Debian 12 clone to a running product: installs what is missing,
# builds, lists the kernels kernel-host can launch, and runs a sample cell in each.
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
exit $status
