#!/usr/bin/env bash
# Proves scripts/lib/libclang.sh decides like bindgen: a machine holding only libclang-cpp.so.14 (Debian's
# libclang-cpp14, pulled in by llvm-14) has no libclang bindgen can load, so set-up must install libclang-dev.
set -euo pipefail
. "$(dirname "$0")/../lib/libclang.sh"
fake="$(mktemp -d)"
trap 'rm -rf "$fake"' EXIT
elf() { mkdir -p "$(dirname "$1")"; printf '\177ELF\002\001\001' > "$1"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
unset LIBCLANG_PATH

# 1. Only the C++ library (the fresh image): missing.
elf "$fake/usr/lib/x86_64-linux-gnu/libclang-cpp.so.14"
elf "$fake/usr/lib/llvm-14/lib/libclang-cpp.so.14"
got="$(svd_find_libclang "$fake")" && fail "libclang-cpp only: found '$got', expected missing"
[ "$got" = missing ] || fail "libclang-cpp only: printed '$got'"
echo "ok: only libclang-cpp.so.14 -> missing"

# 2. A text file named libclang.so (a linker script, a broken download) is not a library either.
mkdir -p "$fake/usr/lib/llvm-14/lib" && echo "INPUT(libclang-14.so.1)" > "$fake/usr/lib/llvm-14/lib/libclang.so"
got="$(svd_find_libclang "$fake")" && fail "non-ELF libclang.so: found '$got'"
ln -s /nonexistent/libclang-14.so.1 "$fake/usr/lib/x86_64-linux-gnu/libclang-14.so.1"
got="$(svd_find_libclang "$fake")" && fail "dangling symlink: found '$got'"
echo "ok: non-ELF file and dangling symlink -> missing"

# 3. What libclang1-14 installs (versioned names only, no libclang.so): found, as bindgen finds it at run time.
rm "$fake/usr/lib/x86_64-linux-gnu/libclang-14.so.1"
elf "$fake/usr/lib/x86_64-linux-gnu/libclang-14.so.1"
got="$(svd_find_libclang "$fake")" || fail "libclang-14.so.1 present: said missing"
[ "$got" = "$fake/usr/lib/x86_64-linux-gnu/libclang-14.so.1" ] || fail "libclang-14.so.1: found '$got'"
echo "ok: libclang-14.so.1 -> $got"

# 4. LIBCLANG_PATH is the only place bindgen looks when set: a folder without libclang means missing even
#    though the tree has one; a folder or file with one means found.
mkdir -p "$fake/opt/empty" "$fake/opt/llvm/lib"
got="$(LIBCLANG_PATH="$fake/opt/empty" svd_find_libclang "$fake")" && fail "LIBCLANG_PATH empty folder: found '$got'"
elf "$fake/opt/llvm/lib/libclang.so.1"
got="$(LIBCLANG_PATH="$fake/opt/llvm/lib" svd_find_libclang "$fake")" || fail "LIBCLANG_PATH folder: missing"
[ "$got" = "$fake/opt/llvm/lib/libclang.so.1" ] || fail "LIBCLANG_PATH folder: found '$got'"
got="$(LIBCLANG_PATH="$fake/opt/llvm/lib/libclang.so.1" svd_find_libclang "$fake")" || fail "LIBCLANG_PATH file: missing"
got="$(LIBCLANG_PATH="$fake/usr/lib/x86_64-linux-gnu/libclang-cpp.so.14" svd_find_libclang "$fake")" \
  && fail "LIBCLANG_PATH=libclang-cpp: found '$got'"
echo "ok: LIBCLANG_PATH honoured (folder, file, libclang-cpp refused)"
echo "libclang detection: all cases pass"
