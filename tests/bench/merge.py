#!/usr/bin/env python3
"""Merges the summaries of single-repeat runs of ../shared/bench's bench.py into one summary.

    python3 merge.py OUT_DIR RUN_DIR [RUN_DIR ...]

vs-kamailio.sh runs each repeat of a measurement as its own bench.py invocation, so that the
two proxies alternate repeat by repeat and see the same machine. This writes OUT_DIR/summary.json
in bench.py's own layout (a "summary" of medians across the repeats, and every step), so that
bench's report.py reads it as if bench.py had run the repeats itself.
"""
import json
import os
import statistics
import sys

# Fields that add up across repeats; "runs" is concatenated; every other number is a median.
SUMMED = ("failed", "passed_runs", "repeats")


def median(values):
    values = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return statistics.median(values) if values else None


def merge(summaries):
    merged = dict(summaries[0])
    for key in merged:
        values = [s.get(key) for s in summaries]
        if key == "runs":
            merged[key] = [r for s in summaries for r in s.get("runs", [])]
        elif key in SUMMED:
            merged[key] = sum(v or 0 for v in values)
        elif isinstance(merged[key], (int, float)) and not isinstance(merged[key], bool):
            merged[key] = median(values)
    return merged


def main(out, runs):
    loaded = []
    for run in runs:
        with open(os.path.join(run, "summary.json")) as f:
            loaded.append(json.load(f))
    merged = {
        "summary": merge([r["summary"] for r in loaded]),
        "steps": [step for r in loaded for step in r.get("steps", [])],
    }
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(merged, f, indent=1)
    s = merged["summary"]
    print(f"{s.get('scenario')} proxy={s.get('proxy')} {s.get('mode')}: rate={s.get('rate')} "
          f"(runs {s.get('runs')}), probe_p50={s.get('probe_p50_ms')} ms, "
          f"probe_p99={s.get('probe_p99_ms')} ms, cpu={s.get('proxy_cpu_ms_per_call')} ms/call, "
          f"pss={(s.get('proxy_pss_kib') or 0) / 1024:.1f} MiB")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
