#!/usr/bin/env bash
# Transcoder benchmark: events/s per core for raw archive -> Parquet, against
# a baseline measured in the same run on the same events: pyarrow reading
# the events as NDJSON (pyarrow.json.read_json) and writing Parquet with zstd
# (pyarrow.parquet.write_table), one thread. Both are pinned to one core.
#
#   crates/sluice-transcoder/bench/run.sh [EVENTS] [OBJECTS] [ROUNDS]
#
# Defaults: 1,000,000 events in 10 raw objects (a 64 MiB raw object holds
# ~100k events, so 1M events in one object would not be realistic), and 3
# rounds: the two sides take turns, and each keeps its best round, so a
# burst of other work on the machine does not decide the ratio.
# Prints events/s for each, the ratio (target >= 2x), and peak memory
# against one raw object's uncompressed size (target < 3x).
set -euo pipefail

EVENTS=${1:-1000000}
OBJECTS=${2:-10}
ROUNDS=${3:-3}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT"
CACHE=${SLUICE_TOOL_CACHE:-$ROOT/.cache}
VENV=$CACHE/bench-pyarrow-venv
CORE=${BENCH_CORE:-1}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import pyarrow' 2>/dev/null; then
    echo "installing pyarrow into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'pyarrow>=15'
fi

cargo build --quiet --release -p sluice-transcoder --example bench_transcode
BIN=$CARGO_TARGET_DIR/release/examples/bench_transcode
DATA=$(mktemp -d "${TMPDIR:-/tmp}/sluice-transcoder-bench.XXXXXX")
trap 'rm -rf "$DATA"' EXIT

META=$("$BIN" generate "$DATA" "$EVENTS" "$OBJECTS")
pyarrow_run() {
    taskset -c "$CORE" "$VENV/bin/python" - "$DATA" <<'PY'
import glob, json, os, resource, sys, time
import pyarrow as pa, pyarrow.json as pj, pyarrow.parquet as pq

pa.set_cpu_count(1)
pa.set_io_thread_count(1)
data = sys.argv[1]
events, seconds, cpu_seconds = 0, 0.0, 0.0
for path in sorted(glob.glob(os.path.join(data, "events-*.ndjson"))):
    # In memory on both sides, as the transcoder is timed: from the object's
    # bytes to the Parquet file's bytes, no file I/O.
    with open(path, "rb") as f:
        ndjson = f.read()
    start, cpu_start = time.perf_counter(), time.process_time()
    table = pj.read_json(pa.BufferReader(ndjson), read_options=pj.ReadOptions(use_threads=False, block_size=1 << 24))
    out = pa.BufferOutputStream()
    pq.write_table(table, out, compression="zstd")
    parquet = out.getvalue()
    seconds += time.perf_counter() - start
    cpu_seconds += time.process_time() - cpu_start
    events += table.num_rows
    del table, parquet, ndjson
print(json.dumps({
    "events": events,
    "seconds": seconds,
    "cpu_seconds": cpu_seconds,
    "events_per_second": events / seconds,
    "events_per_cpu_second": events / cpu_seconds,
    "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "version": pa.__version__,
}))
PY
}

RUST=()
PYARROW=()
for round in $(seq "$ROUNDS"); do
    echo "round $round of $ROUNDS" >&2
    RUST+=("$(taskset -c "$CORE" "$BIN" run "$DATA")")
    PYARROW+=("$(pyarrow_run)")
done

python3 - "$META" "$(printf '%s\n' "${RUST[@]}")" "$(printf '%s\n' "${PYARROW[@]}")" <<'PY'
import json, sys
meta = json.loads(sys.argv[1])
rounds = lambda lines: [json.loads(l) for l in lines.split("\n") if l.strip()]
# Each side's best round (most events per CPU second); peak memory is the
# highest of all its rounds.
def best(runs):
    top = max(runs, key=lambda r: r["events_per_cpu_second"])
    return {**top, "max_rss_bytes": max(r["max_rss_bytes"] for r in runs), "rounds": len(runs)}
rust, base = best(rounds(sys.argv[2])), best(rounds(sys.argv[3]))
# Per core: events over the CPU time each spent (both pinned to one core),
# which a busy machine does not skew the way wall time is.
ratio = rust["events_per_cpu_second"] / base["events_per_cpu_second"]
uncompressed = meta["max_object_uncompressed_bytes"]
mib = lambda b: b / (1 << 20)
print(f"events: {meta['events']:,} in {meta['objects']} raw objects of {meta['events_per_object']:,} "
      f"(~{meta['avg_event_json_bytes']} bytes of JSON each; one raw object: "
      f"{mib(meta['max_object_raw_bytes']):.1f} MiB stored, {mib(uncompressed):.1f} MiB uncompressed)")
for name, r in (("sluice transcoder", rust), (f"pyarrow {base['version']} (baseline)", base)):
    print(f"{name}: {r['events_per_cpu_second']:,.0f} events/s per core "
          f"({r['cpu_seconds']:.2f} s CPU, {r['seconds']:.2f} s wall = {r['events_per_second']:,.0f} events/s), "
          f"peak RSS {mib(r['max_rss_bytes']):.1f} MiB")
print(f"best of {rust['rounds']} rounds each; sluice writes {rust['tables_per_object']} tables per object "
      f"(tracks + per-event + pages + identifies)")
# Each round runs both sides back to back, so the ratio within a round is
# the least disturbed by the machine's other load; their median is the
# steadier figure when the machine is busy.
paired = sorted(r["events_per_cpu_second"] / b["events_per_cpu_second"]
                for r, b in zip(rounds(sys.argv[2]), rounds(sys.argv[3])))
median = paired[len(paired) // 2] if len(paired) % 2 else sum(paired[len(paired) // 2 - 1:len(paired) // 2 + 1]) / 2
print(f"ratio: {ratio:.2f}x pyarrow per core, best against best (target >= 2x); "
      f"per round: {', '.join(f'{x:.2f}x' for x in paired)}, median {median:.2f}x")
print(f"memory: peak RSS {rust['max_rss_bytes'] / uncompressed:.2f}x one raw object's uncompressed size (target < 3x)")
PY
