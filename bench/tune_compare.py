#!/usr/bin/env python3
"""Compares the GEMM core's best time per key between two builds, from `hetconv tune --out`
JSON files of the same keys (rounds of each build, best run alternately on one machine).

For each key: the fastest core candidate (every variant but `direct`) in each round, the median
over a build's rounds, and the ratio new / old of those medians; also each build's median of
best core / direct and how many keys each round gave to the core.

    tune_compare.py OLD.json [OLD.json ...] -- NEW.json [NEW.json ...] > comparison.md
"""
import json
import statistics
import sys


def best_times(path):
    """key -> (fastest core candidate's ms or None, the direct kernels' ms, chosen variant)."""
    with open(path) as f:
        run = json.load(f)
    out = {}
    for choice in run["choices"]:
        core = [c["ms"] for c in choice["candidates"] if c["variant"] != "direct"]
        out[choice["key"]] = (min(core) if core else None, choice.get("direct_ms"), choice["variant"])
    return out


def medians(runs, key, index):
    values = [run[key][index] for run in runs if key in run and run[key][index]]
    return statistics.median(values) if len(values) == len(runs) else None


def main():
    args = sys.argv[1:]
    if "--" not in args:
        sys.exit(__doc__)
    cut = args.index("--")
    old = [best_times(p) for p in args[:cut]]
    new = [best_times(p) for p in args[cut + 1 :]]
    ratios, by_pass, versus_direct = [], {}, {"old": [], "new": []}
    for key in old[0]:
        before, after = medians(old, key, 0), medians(new, key, 0)
        if before is None or after is None:
            continue
        ratios.append(after / before)
        by_pass.setdefault(key.split()[0], []).append(after / before)
        for name, runs, best in (("old", old, before), ("new", new, after)):
            direct = medians(runs, key, 1)
            if direct:
                versus_direct[name].append(best / direct)
    if not ratios:
        sys.exit("tune_compare: no key with core candidates in every round")
    ratios.sort()
    quarter = len(ratios) // 4
    print(f"Best core candidate per key, new / old (medians of {len(old)} and {len(new)} rounds), "
          f"{len(ratios)} keys: median {statistics.median(ratios):.3f}, quartiles "
          f"{ratios[quarter]:.3f} to {ratios[-quarter - 1]:.3f}, from {ratios[0]:.3f} to {ratios[-1]:.3f}\n")
    print("| pass | keys | median new / old |")
    print("|---|---|---|")
    for name, values in sorted(by_pass.items()):
        print(f"| {name} | {len(values)} | {statistics.median(values):.3f} |")
    print()
    for name, runs in (("old", old), ("new", new)):
        chosen = [sum(1 for k in run if run[k][2] != "direct") for run in runs]
        print(f"- {name}: best core / direct, median over keys "
              f"{statistics.median(versus_direct[name]):.2f}; keys given to the core per round: {chosen}")


if __name__ == "__main__":
    main()
