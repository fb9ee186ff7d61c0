# Sourced by scripts/test and scripts/upgrade: the one place that says how .venv gets the locked
# versions. uv reads uv.lock (the whole dependency tree, pinned with hashes for every platform);
# UV_VERSION must match the uv that uv.lock pins for the test extra (tests/test_lock.py checks).
UV_VERSION=0.13.9
UV=.venv/bin/uv

# .venv with the pinned uv in it (bootstrapped with the venv's own pip).
ensure_uv() {
    if [ ! -x .venv/bin/python ]; then
        echo "scripts: creating .venv" >&2
        python3 -m venv .venv
    fi
    if [ "$("$UV" --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
        .venv/bin/python -m pip install -q "uv==$UV_VERSION"
    fi
}

# Install exactly uv.lock into .venv: veritag (editable) with its test extra, the bundled
# model's weights and the docs site's tools (mkdocs-material; tests/test_docs.py builds the site).
# --frozen: never re-resolve, fail if the lock lacks something; --inexact: keep pip and anything
# else that was there (uv itself, for one).
sync_locked() {
    UV_PYTHON_DOWNLOADS=never "$UV" sync --quiet --frozen --inexact --extra test --group model --group docs
}
