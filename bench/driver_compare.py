#!/usr/bin/env python3
"""Compares two runs of bench/driver-compile.sh form by form (the `.tsv` tables that
bench/driver_stats.py writes for one driver): the change of one statistic over the forms both
runs compiled, per kernel and pass and over all, and the forms whose registers or occupancy
got worse.

    driver_compare.py OLD.tsv NEW.tsv [STATISTIC] > comparison.md

STATISTIC: a column of the tables (default: the instruction count, "Instructions" for RADV,
"Instruction count" for NAK). The counts are static (the shader's length, prologue and
epilogue included), not instructions executed.
"""
import csv
import re
import statistics
import sys

REGISTERS = ("VGPRs", "Num GPRs")
OCCUPANCY = ("Subgroups per SIMD", "Max warps/SM")
ROLES = {"0": "forward", "1": "input gradient", "2": "weight gradient", "3": "matrix product"}


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    return rows[0], {row[0]: dict(zip(rows[0], row)) for row in rows[1:]}


def number(row, column):
    value = row.get(column, "")
    return int(value) if value.strip() else None


def group(form):
    module = form.split("::")[0]
    role = re.search(r" role (\d)\]", form)
    strided = " (strided)" if " strided " in form else ""
    return f"{module} {ROLES[role.group(1)]}{strided}" if role else module


def main():
    header, old = load(sys.argv[1])
    _, new = load(sys.argv[2])
    column = sys.argv[3] if len(sys.argv) > 3 else next(
        c for c in ("Instructions", "Instruction count") if c in header
    )
    registers = next(c for c in REGISTERS if c in header)
    occupancy = next(c for c in OCCUPANCY if c in header)
    changes, by_group, worse = [], {}, []
    for form, now in new.items():
        before = old.get(form)
        if before is None or not number(before, column) or number(now, column) is None:
            continue
        change = number(now, column) / number(before, column) - 1
        changes.append(change)
        by_group.setdefault(group(form), []).append(change)
        more = number(now, registers) - number(before, registers)
        less = number(now, occupancy) - number(before, occupancy)
        if more > 0 or less < 0:
            worse.append((form, before, now))
    if not changes:
        sys.exit("driver_compare: no form in both runs")
    print(f"{column}, new against old, over the {len(changes)} forms both compiled:")
    print(
        f"median {statistics.median(changes):+.1%}, from {min(changes):+.1%} to "
        f"{max(changes):+.1%}; {sum(c < 0 for c in changes)} fewer, "
        f"{sum(c > 0 for c in changes)} more\n"
    )
    print("| kernel and pass | forms | median change | least | most |")
    print("|---|---|---|---|---|")
    for name, values in sorted(by_group.items()):
        print(
            f"| {name} | {len(values)} | {statistics.median(values):+.1%} | "
            f"{min(values):+.1%} | {max(values):+.1%} |"
        )
    print(f"\n{len(worse)} forms with more {registers} or less {occupancy}:\n")
    print(f"| form | {column} | {registers} | {occupancy} |")
    print("|---|---|---|---|")
    for form, before, now in worse:
        cells = [f"{before[c]} -> {now[c]}" for c in (column, registers, occupancy)]
        print(f"| {form} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
