# svd_wheel_libs SPEC DEST [PIP-DOWNLOAD-ARGS...]: downloads one wheel (SPEC, e.g. onnxruntime==1.31.1, no
# dependencies) and keeps only its onnxruntime/capi/libonnxruntime* shared libraries, in DEST (written under
# DEST.partial and renamed, so an interrupted run leaves nothing half-done). Needs python3 only: its pip when it
# has one, else pip from a throw-away venv (Debian's python3-venv installed for it if missing).
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/apt.sh"
svd_wheel_libs() {
  local spec="$1" dest="$2" tmp py=python3
  shift 2
  tmp="$(mktemp -d)"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    python3 -c 'import ensurepip' 2>/dev/null || svd_apt_install python3-venv
    python3 -m venv "$tmp/pip-venv"
    py="$tmp/pip-venv/bin/python"
  fi
  "$py" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: "$@" "$spec" -d "$tmp/wheel"
  rm -rf "$dest.partial"
  mkdir -p "$dest.partial"
  python3 - "$tmp/wheel" "$dest.partial" <<'PY'
import glob, os, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(os.path.join(src, "*.whl"))
n = 0
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if name.startswith("onnxruntime/capi/") and base.startswith("libonnxruntime"):
            with z.open(name) as f, open(os.path.join(dst, base), "wb") as out:
                out.write(f.read())
            os.chmod(os.path.join(dst, base), 0o755)
            n += 1
if n == 0:
    sys.exit(f"no onnxruntime/capi/libonnxruntime* in {wheel}")
PY
  rm -rf "$tmp" "$dest"
  mv "$dest.partial" "$dest"
}
