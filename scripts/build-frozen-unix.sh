#!/usr/bin/env bash
# Build the MicroPython unix port with the agent frozen in (firmware/image/unix.py), to measure
# what freezing saves on the heap (docs/firmware-image.md). Not run by `make test`.
#
#   bash scripts/build-frozen-unix.sh     # -> build/frozen-unix/micropython (agent frozen in)
#                                         #    and build/frozen-unix/micropython-plain (without)
#   MICROPYTHON_SRC=/path/to/micropython bash scripts/build-frozen-unix.sh
#
# The source is MicroPython at the tag of the interpreter in .venv (MPY_TAG), with the
# submodules lib/micropython-lib and lib/mbedtls checked out: MICROPYTHON_SRC names such a tree,
# else it is cloned once into build/micropython-src (needs git and network access to GitHub).
# Needs gcc, make, pkg-config and libffi-dev (apt-get install build-essential libffi-dev
# pkg-config). btree is left out (MICROPY_PY_BTREE=0): the agent does not use it, and it needs
# one more submodule. Idempotent: make rebuilds only what changed (a changed firmware module
# refreezes), so a second run takes seconds; the binary is printed on the last line.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MPY_TAG=${MPY_TAG:-v1.29.0-preview}
SRC=${MICROPYTHON_SRC:-$ROOT/build/micropython-src}
OUT=$ROOT/build/frozen-unix
JOBS=${JOBS:-2}

for tool in gcc make pkg-config; do
    command -v "$tool" >/dev/null || { echo "error: $tool is missing (apt-get install build-essential libffi-dev pkg-config)" >&2; exit 1; }
done
pkg-config --exists libffi || { echo "error: libffi-dev is missing (apt-get install libffi-dev)" >&2; exit 1; }

if [ ! -f "$SRC/py/mpconfig.h" ]; then
    if [ -n "${MICROPYTHON_SRC:-}" ]; then
        echo "error: MICROPYTHON_SRC=$SRC is not a MicroPython source tree" >&2
        exit 1
    fi
    echo "cloning MicroPython $MPY_TAG into $SRC"
    git clone --quiet --depth 1 --branch "$MPY_TAG" https://github.com/micropython/micropython "$SRC.tmp"
    git -C "$SRC.tmp" submodule update --quiet --init --depth 1 lib/micropython-lib lib/mbedtls
    mv "$SRC.tmp" "$SRC"
fi
for sub in lib/micropython-lib/python-stdlib lib/mbedtls/library; do
    [ -d "$SRC/$sub" ] || { echo "error: $SRC/$sub is missing (git -C $SRC submodule update --init lib/micropython-lib lib/mbedtls)" >&2; exit 1; }
done

# Outside a git clone (a source tarball), makeversionhdr must not take this repository's tag.
export GIT_CEILING_DIRECTORIES=$(dirname "$SRC")

mkdir -p "$OUT"
# -march=x64: phone/sha512n.py is viper code, which mpy-cross freezes only for a known arch.
make -C "$SRC/mpy-cross" -j"$JOBS" >"$OUT/mpy-cross.log" 2>&1 || { tail -30 "$OUT/mpy-cross.log" >&2; exit 1; }
# Two builds of the same source and flags: with the agent frozen in (firmware/image/unix.py),
# and without (the standard variant's own manifest), the baseline that loads the agent's .mpy.
build() {  # build NAME MANIFEST
    make -C "$SRC/ports/unix" -j"$JOBS" VARIANT=standard BUILD="$OUT/build-$1" \
        FROZEN_MANIFEST="$2" MPY_CROSS_FLAGS=-march=x64 MICROPY_PY_BTREE=0 \
        >"$OUT/$1.log" 2>&1 || { tail -30 "$OUT/$1.log" >&2; exit 1; }
    cp "$OUT/build-$1/micropython" "$OUT/$1.tmp"
    mv "$OUT/$1.tmp" "$OUT/$1"
}
build micropython-plain "$SRC/ports/unix/variants/standard/manifest.py"
build micropython "$ROOT/firmware/image/unix.py"
"$OUT/micropython" -c "import sys; print(sys.version)" >&2
echo "$OUT/micropython"
