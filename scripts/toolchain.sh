#!/usr/bin/env bash
# Makes the toolchain of rust-toolchain.toml available to rustup: already
# installed under its name, or an installed toolchain of the same version
# (typically `stable`) linked under that name (no download: machines that
# cannot reach the Rust distribution server still build), or else installed
# by rustup.
set -euo pipefail
cd "$(dirname "$0")/.."
want=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
[ -n "$want" ] || { echo "rust-toolchain.toml names no channel" >&2; exit 1; }
if ! command -v rustup >/dev/null 2>&1; then
  # No rustup: whatever cargo is on the PATH must be that version.
  have=$(rustc --version | awk '{print $2}')
  [ "$have" = "$want" ] || { echo "Rust $want is needed (rust-toolchain.toml); rustc is $have and there is no rustup" >&2; exit 1; }
  exit 0
fi
if rustup run "$want" rustc --version >/dev/null 2>&1; then
  exit 0
fi
for tc in $(rustup toolchain list | awk '{print $1}'); do
  have=$(rustup run "$tc" rustc --version 2>/dev/null | awk '{print $2}')
  if [ "$have" = "$want" ]; then
    echo "linking the installed toolchain $tc (Rust $have) as $want"
    rustup toolchain link "$want" "$(rustup run "$tc" rustc --print sysroot)"
    exit 0
  fi
done
echo "installing Rust $want (rustup)"
rustup toolchain install "$want" --profile minimal --component rustfmt --component clippy
