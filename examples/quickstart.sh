#!/usr/bin/env bash
# Quick start: install omconnect into .venv (first run only), then
#  1. run the bundled broker in this process on a fresh data directory: create a
#     queue, produce lines into it, and consume them back with a consumer group;
#  2. run a connect pipeline in standalone mode: file source -> queue -> file sink
#     (examples/file-pipeline), and show the copied file.
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

echo "== omconnect standalone worker.json file-source.json file-sink.json"
cp examples/file-pipeline/*.json "$data_dir"/
(cd "$data_dir" && printf 'first line\nsecond line\nthird line\n' > input.txt \
    && exec omconnect standalone worker.json file-source.json file-sink.json \
    2> standalone.log) &
worker=$!
for _ in $(seq 100); do
    [[ -f $data_dir/output.txt ]] && (($(wc -l < "$data_dir/output.txt") >= 3)) && break
    sleep 0.1
done
kill -TERM "$worker" && wait "$worker" || true
echo "== output.txt, written by the file sink"
cat "$data_dir/output.txt"
