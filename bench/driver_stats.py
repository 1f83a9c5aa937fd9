#!/usr/bin/env python3
"""Tabulates what a driver's compiler said of each GEMM-core dispatch form.

Reads, on standard input, the output of the driver compile check
(`kernels::gemm_core::driver_check`): its `driver-check: <form>` lines, each followed by the
statistics the driver printed while compiling that form's pipeline (Mesa RADV's
`RADV_DEBUG=shaderstats` blocks, or the stat lines of NAK's `NAK_DEBUG=print`). Writes
`<out>.tsv` (one row per form) and `<out>.md` (per kernel and pass: the most registers and
spills over its forms, the least occupancy), and prints the Markdown.

    driver_stats.py radv|nak OUT_PREFIX TITLE < log
"""
import re
import sys
from collections import OrderedDict

# The statistics kept, per driver: (name in the driver's output, column heading, "max"/"min"
# for the summary over a kernel's forms).
STATS = {
    "radv": [
        ("VGPRs", "VGPRs", "max"),
        ("SGPRs", "SGPRs", "max"),
        ("Spilled VGPRs", "spilled VGPRs", "max"),
        ("Spilled SGPRs", "spilled SGPRs", "max"),
        ("Scratch size", "scratch bytes", "max"),
        ("LDS size", "LDS bytes", "max"),
        ("Subgroups per SIMD", "waves per SIMD", "min"),
        ("Instructions", "instructions", "max"),
    ],
    "nak": [
        ("Num GPRs", "GPRs", "max"),
        ("Spills to mem", "spills to memory", "max"),
        ("Spills to reg", "spills to registers", "max"),
        ("SLM size", "local memory bytes", "max"),
        ("Max warps/SM", "warps per SM", "min"),
        ("Instruction count", "instructions", "max"),
        ("Static cycle count", "static cycles", "max"),
    ],
}

# The statistics that say a form keeps values in memory rather than registers: spills to
# scratch or local memory, and the scratch or local memory itself. (RADV's spilled SGPRs go to
# VGPR lanes and NAK's "spills to reg" are moves between register files: not memory.)
MEMORY = {
    "radv": ["Spilled VGPRs", "Scratch size"],
    "nak": ["Spills to mem", "SLM size"],
}

# "gemm_core_coop16::gemm[64x64/16x16x16/k32/w128 role 0] kfast true/false KS Some(3.0) lanes 32"
FORM = re.compile(r"^(?P<module>[\w:]+)(\[(?P<tile>\S+) role (?P<role>\d)\])? (?P<rest>.*)$")
ROLES = {"0": "forward", "1": "input gradient", "2": "weight gradient", "3": "matrix product"}


def parse(driver, lines):
    """Forms in order, each with the statistics printed after it (None where none was:
    a pipeline the check's cache already held)."""
    names = [name for name, _, _ in STATS[driver]]
    forms = OrderedDict()
    adapter = None
    current = None
    for line in lines:
        line = line.rstrip("\n")
        if line.startswith("driver-check: adapter "):
            adapter = line[len("driver-check: adapter "):]
        elif line.startswith("driver-check: "):
            current = line[len("driver-check: "):]
            if current != "done":
                forms[current] = {}
        elif current and ":" in line:
            name, _, value = line.partition(":")
            if name in names and name not in forms.get(current, {"": 0}):
                forms[current][name] = int(value.strip().split()[0])
    return adapter, forms


def kernel_and_pass(form):
    """The kernel (module, tile) and pass of a form, for the summary's rows."""
    m = FORM.match(form)
    if not m or not m.group("tile"):
        return form.split(" KS ")[0], "-"
    module = m.group("module").split("::")[0]
    lanes = re.search(r"lanes (\d+)", m.group("rest"))
    kernel = f"{module} {m.group('tile')}"
    if "coop" in module and lanes:
        kernel += f" ({lanes.group(1)} lanes)"
    strided = " (strided)" if " strided " in m.group("rest") else ""
    return kernel, ROLES[m.group("role")] + strided


def main():
    driver, out, title = sys.argv[1], sys.argv[2], sys.argv[3]
    stats = STATS[driver]
    adapter, forms = parse(driver, sys.stdin)
    with open(out + ".tsv", "w") as f:
        f.write("form\t" + "\t".join(name for name, _, _ in stats) + "\n")
        for form, values in forms.items():
            f.write(form + "\t" + "\t".join(str(values.get(n, "")) for n, _, _ in stats) + "\n")
    summary = OrderedDict()
    for form, values in forms.items():
        if not values:
            continue
        row = summary.setdefault(kernel_and_pass(form), {"forms": 0})
        row["forms"] += 1
        for name, _, how in stats:
            if name in values:
                pick = max if how == "max" else min
                row[name] = pick(row.get(name, values[name]), values[name])
    spilled = [k for k, r in summary.items() if any(r.get(n, 0) > 0 for n in MEMORY[driver])]
    lines = [
        f"# {title}",
        "",
        f"Adapter: {adapter}. {len(forms)} dispatch forms compiled, "
        f"{sum(1 for v in forms.values() if v)} with statistics (the others compiled to a "
        "shader the driver had built already, and it printed none). Per kernel and pass, over "
        "its forms (kernel sides 1-7, operand layouts, f32 and f16 activations): the most of "
        "each count, the least occupancy.",
        "",
        f"Kernels and passes that spill to memory or use scratch or local memory: "
        f"{len(spilled)} of {len(summary)}"
        + (": " + "; ".join(f"{k} {p}" for k, p in spilled) if spilled else "."),
        "",
        "| kernel | pass | forms | " + " | ".join(h for _, h, _ in stats) + " |",
        "|---|---|---|" + "---|" * len(stats),
    ]
    for (kernel, role), row in summary.items():
        cells = [str(row.get(n, "")) for n, _, _ in stats]
        lines.append(f"| {kernel} | {role} | {row['forms']} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    with open(out + ".md", "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
