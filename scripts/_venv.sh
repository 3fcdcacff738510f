# Shared by scripts/demo and scripts/test: Debian packages, then a virtual environment.
# Usage: . scripts/_venv.sh <packages-file>
set -eu

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

install_debian_packages() {
    packages=$(grep -v '^#' "$1" | tr '\n' ' ')
    missing=""
    for p in $packages; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
            || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "larkps: not a Debian system; install these yourself:$missing" >&2
        return 0
    fi
    as_root=""
    [ "$(id -u)" = 0 ] || as_root="sudo"
    echo "installing Debian packages:$missing"
    $as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq --no-install-recommends $missing
}

make_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install -q --upgrade pip
}
