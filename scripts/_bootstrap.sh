# Sourced by scripts/serve and scripts/test: make .venv and install
# PulseStack into it (editable, with the test extras) when that has not
# been done for the current pyproject.toml. A second run costs nothing.

find_python() {
    for candidate in "${PYTHON:-}" python3 python3.13 python3.12 python3.11 python; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "PulseStack needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
    return 1
}

bootstrap() {
    local stamp=.venv/.pulsestack-installed want
    want="$(cat pyproject.toml | cksum)"
    if [ ! -x .venv/bin/python ]; then
        echo "scripts: creating .venv" >&2
        "$(find_python)" -m venv .venv
    fi
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "scripts: installing PulseStack and its dependencies into .venv" >&2
        .venv/bin/python -m pip install --quiet --upgrade pip
        .venv/bin/python -m pip install --quiet -e '.[test]'
        echo "$want" > "$stamp"
    fi
}
