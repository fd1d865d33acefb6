#!/usr/bin/env bash
# Installs everything kernel-host needs on Debian 12, non-interactively and idempotently:
# build tools and libraries from apt, Python packages from apt (never PyPI), and Deno (the
# JavaScript/TypeScript kernel) from npm into a project-local prefix with its kernelspec.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

apt_packages=(
  build-essential cmake pkg-config git ca-certificates
  xeus-dev xtl-dev cppzmq-dev libzmq3-dev libssl-dev uuid-dev
  nlohmann-json3-dev pybind11-dev pybind11-json-dev python3-dev
  libgtest-dev libgmock-dev libbenchmark-dev libboost-dev libspdlog-dev libfmt-dev
  python3-ipykernel python3-jupyter-client python3-jupyter-kernel-test python3-pytest
  python3-numpy python3-matplotlib python3-pandas python3-pil
  xpython bubblewrap curl libcli11-dev
  python3-nbclient python3-nbconvert python3-nbformat jupyter-nbconvert chromium
  python3-jsonschema python3-yaml python3-jupyter-server jupyter-server
  s3fs
  clang llvm clang-19 libclang-rt-19-dev llvm-19
)
# clang-19 (libFuzzer, ASan/UBSan runtimes, llvm-symbolizer) builds fuzz/: Debian 12's default
# clang 14 cannot compile the project (libstdc++ 12's <expected> needs __cpp_concepts 202002).

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js with npm (the machine may already have a vendor build of nodejs that bundles npm).
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
if ((${#missing[@]})); then
  echo "setup: installing apt packages: ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: apt packages present"
fi

# Deno for the JavaScript/TypeScript kernel, from npm into .deps/ (project-local).
deps="$root/.deps"
if [ ! -x "$deps/node_modules/.bin/deno" ] || ! "$deps/node_modules/.bin/deno" --version >/dev/null 2>&1; then
  echo "setup: installing deno from npm into $deps"
  mkdir -p "$deps"
  [ -f "$deps/package.json" ] || echo '{"name":"kernel-host-deps","private":true}' > "$deps/package.json"
  (cd "$deps" && npm install --no-audit --no-fund --loglevel=error deno@2)
fi
# Real API clients for the Node tests (tests/node): the Cloudflare Sandbox SDK and JupyterLab's services;
# s3rver, a real S3 server on loopback for the bucket-mount tests.
node_test_packages=(@cloudflare/sandbox@0.12.10 @jupyterlab/services@7 ws@8 s3rver@3)
if [ ! -d "$deps/node_modules/@cloudflare/sandbox" ] || [ ! -d "$deps/node_modules/@jupyterlab/services" ] ||
   [ ! -d "$deps/node_modules/ws" ] || [ ! -d "$deps/node_modules/s3rver" ]; then
  echo "setup: installing the Node test clients into $deps"
  (cd "$deps" && npm install --no-audit --no-fund --loglevel=error "${node_test_packages[@]}")
fi
deno_bin=$(readlink -f "$deps/node_modules/.bin/deno")
echo "setup: deno $("$deno_bin" --version | head -1)"

# Deno's kernelspec, written into the project's Jupyter data folder (JUPYTER_PATH entry).
spec_dir="$deps/share/jupyter/kernels/deno"
mkdir -p "$spec_dir"
cat > "$spec_dir/kernel.json" <<JSON
{
  "argv": ["$deno_bin", "jupyter", "--kernel", "--conn", "{connection_file}"],
  "display_name": "Deno",
  "language": "typescript",
  "env": {"NO_COLOR": "1", "DENO_NO_UPDATE_CHECK": "1"}
}
JSON
echo "setup: deno kernelspec at $spec_dir"
