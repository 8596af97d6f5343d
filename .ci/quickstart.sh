#!/usr/bin/env bash
# CI: README's Quick start as written: every line of its ```bash blocks, in order, in one shell (`make run` creates
# .venv and trains, `make test` runs the suite, then the commands that use the run). In a fresh clone: this checkout
# when it has neither .venv nor runs/ (as in CI), else a clone of HEAD in a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)
script=$(mktemp)
trap 'rm -f "$script"' EXIT
# the ```bash blocks between "## Quick start" and the next "## " heading
awk '/^## Quick start/ {on=1; next} /^## / {on=0} on && /^```bash/ {code=1; next} on && /^```/ {code=0} on && code' \
    README.md > "$script"
if [ ! -s "$script" ]; then
    echo "quickstart: no \`\`\`bash block under '## Quick start' in README.md" >&2
    exit 1
fi
if [ -e .venv ] || [ -e runs ]; then
    work=$(mktemp -d)
    git clone --quiet "$here" "$work/gankit"
    cd "$work/gankit"
    echo "quickstart: in a fresh clone of HEAD at $work/gankit"
fi
echo "quickstart: running $(wc -l < "$script") lines of README's Quick start"
bash -euxo pipefail "$script"
echo "quickstart: every Quick start command ran"
