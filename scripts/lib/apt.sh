# svd_apt_install PKG...: installs Debian/Ubuntu packages as root or through sudo. Refreshes the package lists
# first: a fresh machine (or container image) often has none, and `apt-get install` then finds nothing.
svd_apt_install() {
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "[setup] need root or sudo to apt-get install $*" >&2; return 1; }
    sudo=(sudo)
  fi
  echo "[setup] apt-get install $*" >&2
  "${sudo[@]}" apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$@" >/dev/null
}
