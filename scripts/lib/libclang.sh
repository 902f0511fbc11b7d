# Finds the libclang that bindgen would load, with bindgen's own rules (clang-sys 1.9, `runtime` feature, Linux):
#   - LIBCLANG_PATH, when set, is the only place searched (a library file, or a folder holding one);
#   - else `llvm-config --prefix`/{bin,lib,lib64}, LD_LIBRARY_PATH, LIBRARY_PATH, then the folders
#     /usr/local/llvm*/lib*  /usr/local/lib*/*/*  /usr/local/lib*/*  /usr/local/lib*  /usr/lib*/*/*  /usr/lib*/*  /usr/lib*
#   - names libclang.so, libclang-*.so, libclang.so.*, libclang-*.so.*, except any containing "-cpp."
#     (libclang-cpp.so.14 is the C++ library: bindgen cannot use it);
#   - a candidate must be a readable 64-bit ELF file (clang-sys checks the header).
# Source this file, then: svd_find_libclang [ROOT] prints the first usable library and returns 0, or prints
# "missing" and returns 1. ROOT (default /) prefixes the fixed folders, so tests can point it at a fake tree; with
# a ROOT other than /, llvm-config and the *_LIBRARY_PATH variables (which describe this machine) are skipped.

_svd_libclang_usable() { # FILE: a 64-bit ELF shared object (what clang-sys validates before loading)
  local f="$1" magic
  [ -f "$f" ] && [ -r "$f" ] || return 1
  magic="$(head -c 5 "$f" 2>/dev/null | od -An -tx1 | tr -d ' \n')"
  [ "$magic" = "7f454c4602" ]
}

_svd_libclang_in_dir() { # DIR: prints the first usable libclang in DIR
  local d="$1" f base
  [ -d "$d" ] || return 1
  for f in "$d"/libclang.so "$d"/libclang-*.so "$d"/libclang.so.* "$d"/libclang-*.so.*; do
    base="${f##*/}"
    case "$base" in *-cpp.*) continue ;; esac
    if _svd_libclang_usable "$f"; then
      echo "$f"
      return 0
    fi
  done
  return 1
}

svd_find_libclang() {
  local root="${1:-/}" d p prefix
  root="${root%/}"
  if [ -n "${LIBCLANG_PATH:-}" ]; then
    p="$LIBCLANG_PATH"
    if [ -f "$p" ]; then
      case "${p##*/}" in
        *-cpp.*) ;;
        libclang.so | libclang-*.so | libclang.so.* | libclang-*.so.*)
          if _svd_libclang_usable "$p"; then echo "$p"; return 0; fi ;;
      esac
    elif _svd_libclang_in_dir "$p"; then
      return 0
    fi
    echo "missing"
    return 1
  fi
  local dirs=()
  if [ -z "$root" ]; then
    if command -v "${LLVM_CONFIG_PATH:-llvm-config}" >/dev/null 2>&1; then
      prefix="$("${LLVM_CONFIG_PATH:-llvm-config}" --prefix 2>/dev/null | head -1)"
      [ -n "$prefix" ] && dirs+=("$prefix/bin" "$prefix/lib" "$prefix/lib64")
    fi
    local IFS_old="$IFS" list
    for list in "${LD_LIBRARY_PATH:-}" "${LIBRARY_PATH:-}"; do
      IFS=: read -r -a _parts <<<"$list"
      dirs+=("${_parts[@]}")
    done
    IFS="$IFS_old"
  fi
  local pat
  for pat in "/usr/local/llvm*/lib*" "/usr/local/lib*/*/*" "/usr/local/lib*/*" "/usr/local/lib*" \
             "/usr/lib*/*/*" "/usr/lib*/*" "/usr/lib*"; do
    for d in $root$pat; do
      [ -d "$d" ] && dirs+=("$d")
    done
  done
  for d in "${dirs[@]}"; do
    [ -n "$d" ] || continue
    if _svd_libclang_in_dir "$d"; then
      return 0
    fi
  done
  echo "missing"
  return 1
}
