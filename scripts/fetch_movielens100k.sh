#!/usr/bin/env bash
# Fetch MovieLens-100K from the recbole wheel on PyPI (which ships it), never from
# a website: pip download, then unzip recbole/dataset_example/ml-100k/.
# Usage: scripts/fetch_movielens100k.sh [DEST]   (default data/raw/ml-100k)
set -euo pipefail
DEST=${1:-data/raw/ml-100k}
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
if [ -f "$DEST/ml-100k.inter" ]; then echo "already present: $DEST"; exit 0; fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$PY" -m pip download recbole==1.2.1 --no-deps -d "$TMP" -q
"$PY" - "$TMP" "$DEST" <<'PYEOF'
import pathlib, sys, zipfile
tmp, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(tmp.glob("recbole-1.2.1-*.whl"))
prefix = "recbole/dataset_example/ml-100k/"
dest.mkdir(parents=True, exist_ok=True)
with zipfile.ZipFile(wheel) as zf:
    for name in zf.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            (dest / name[len(prefix):]).write_bytes(zf.read(name))
print(f"MovieLens-100K written to {dest}")
PYEOF
