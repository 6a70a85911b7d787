#!/usr/bin/env bash
# Quick start: install omconnect into .venv (first run only), then run the bundled
# broker in this process on a fresh data directory: create a queue, produce lines
# into it, and consume them back with a consumer group.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! .venv/bin/omconnect --help >/dev/null 2>&1; then
    echo "== installing omconnect into .venv (first run only)"
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -e .
fi
export PATH="$PWD/.venv/bin:$PATH"

data_dir=$(mktemp -d)
trap 'rm -rf "$data_dir"' EXIT
export OMCONNECT_URL="oms:embedded://local/quickstart?data_dir=$data_dir"

echo "== omconnect queues create greetings --partitions 2"
omconnect queues create greetings --partitions 2
echo "== produce 3 lines"
printf 'hello\nbonjour\nhola\n' | omconnect produce greetings
echo "== omconnect consume greetings --from-beginning --max-messages 3"
omconnect consume greetings --group quickstart --from-beginning --max-messages 3 --output json
echo "== the broker's data directory"
find "$data_dir" -type f | sed "s|$data_dir/||" | sort
