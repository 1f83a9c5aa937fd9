#!/usr/bin/env python3
"""What the GEMM core's main loop costs per stage, in NVIDIA instructions (Mesa's NAK).

Reads LOG, the output of the driver compile check run on NVK with `NAK_DEBUG=print`
(bench/nak-loops.sh makes it): for each `driver-check: <form>` line, NAK's IR after its last
pass. In it, finds the natural loops (a branch back to an earlier block) and takes the loop over
the reduction's stages: of the loops inside no other, the one holding the multiply-adds. Per
stage it counts:

- outside inner loops: that loop's instructions outside any loop within it (staging A and B in
  workgroup memory, the barriers, and the product where the compiler unrolled it);
- instructions per stage: those plus each inner loop's instructions times its trip count (the
  FMA loop steps once per reduction step, the cooperative one once per fragment side; KC and
  the side come from the form's name);
- the multiply-adds (FFMA, HMMA) and the loads from global memory among them;
- the register moves among them (every MOV): where NAK's register allocator shuffles the
  accumulators around a loop's back edge they are a large share. Some moves do the source's work
  (an immediate, a select's operand), so a change "without moves" is an upper bound on what the
  source's own code changed.

These are static counts of the code, not of a path through it: an if and its else both count.
Where the source has branches in that loop (roles 0 and 1 stage A once per weight buffer; the
input gradient keeps a path for strides over 1), the counts are above what one stage runs.
Writes a Markdown table of the forms; with BASELINE_LOG (the same forms from another commit),
adds its counts and the change. With --ops, a second table counts those opcodes per stage
(e.g. shared-memory loads `ld`, NVIDIA's `ldsm` and `movm`), before -> after with a baseline.

    nak_loops.py LOG [BASELINE_LOG] [--ops ld,ldsm,movm,st,mov] > table.md
"""
import re
import sys
from collections import Counter

BLOCK = re.compile(r"^block(?:\.u)? (\d+) L\d+ \[([\d, ]*)\] -> \{")
SUCCESSORS = re.compile(r"^\} -> \[([\d, ]*)\]")


def forms(lines):
    """(form name, its lines) for each form the check compiled (what the driver prints
    between the check's lines: not the shaders of its own that it builds before or after)."""
    name, current = None, []
    for line in lines:
        if line.startswith("driver-check: "):
            if name:
                yield name, current
            name, current = None, []
            if not line.startswith(("driver-check: adapter", "driver-check: done")):
                name = line.split(": ", 1)[1].strip()
        else:
            current.append(line)
    if name:
        yield name, current


def final_ir(lines):
    """NAK's IR after its last pass, up to the encoded shader."""
    starts = [i for i, line in enumerate(lines) if line.startswith("NAK IR after")]
    if not starts:
        return []
    out = []
    for line in lines[starts[-1] + 1 :]:
        if line.startswith(("Encoded shader", "Stage:")):
            break
        out.append(line)
    return out


def numbers(text):
    return [int(x) for x in text.split(",") if x.strip()]


def blocks(ir):
    """Block number -> predecessors, successors and opcodes (without modifiers)."""
    found, current = {}, None
    for line in ir:
        m = BLOCK.match(line)
        if m:
            current = int(m.group(1))
            found[current] = {"preds": numbers(m.group(2)), "succ": [], "ops": []}
            continue
        m = SUCCESSORS.match(line)
        if m and current is not None:
            found[current]["succ"] = numbers(m.group(1))
            current = None
            continue
        code = line.split("//")[0].split()
        if current is None or not code:
            continue
        if "=" in code:
            op = code[code.index("=") + 1]
        else:
            op = code[1] if code[0].startswith("@") else code[0]
        found[current]["ops"].append(op.split(".")[0])
    return found


def natural_loops(found):
    """(header, body) of each back edge: NAK numbers blocks in program order."""
    loops = []
    for b, block in found.items():
        for header in block["succ"]:
            if header <= b:
                body, work = {header, b}, ([b] if b != header else [])
                while work:
                    for pred in found[work.pop()]["preds"]:
                        if pred not in body:
                            body.add(pred)
                            work.append(pred)
                loops.append((header, body))
    return loops


def main():
    args = sys.argv[1:]
    ops = []
    if "--ops" in args:
        at = args.index("--ops")
        ops = args[at + 1].split(",")
        del args[at : at + 2]
    runs = []
    for path in args[:2]:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
        runs.append({name: stats(name, form) for name, form in forms(lines)})
    header = "| form | instructions per stage | outside inner loops | multiply-adds | global loads | moves | instructions per multiply-add |"
    rule = "|---|---|---|---|---|---|---|"
    if len(runs) == 2:
        header += " before: instructions per stage | before: moves | before: per multiply-add | change | change without moves |"
        rule += "---|---|---|---|---|"
    print(header)
    print(rule)
    for name, now in runs[0].items():
        if now is None:
            continue
        row = [
            name,
            now["instructions"],
            now["outside"],
            now["mads"],
            now["global loads"],
            now["moves"],
            f"{now['instructions'] / max(1, now['mads']):.1f}",
        ]
        if len(runs) == 2:
            before = runs[1].get(name)
            if before:
                row += [
                    before["instructions"],
                    before["moves"],
                    f"{before['instructions'] / max(1, before['mads']):.1f}",
                    f"{now['instructions'] / before['instructions'] - 1:+.0%}",
                    f"{without_moves(now) / max(1, without_moves(before)) - 1:+.0%}",
                ]
            else:
                row += ["", "", "", "", ""]
        print("| " + " | ".join(str(x) for x in row) + " |")
    if ops:
        print()
        print("Opcodes per stage" + (" (before -> after)" if len(runs) == 2 else "") + ":")
        print()
        print("| form | " + " | ".join(ops) + " |")
        print("|---|" + "---|" * len(ops))
        for name, now in runs[0].items():
            if now is None:
                continue
            before = runs[1].get(name) if len(runs) == 2 else None
            cells = [
                f"{before['ops'][op]} -> {now['ops'][op]}" if before else str(now["ops"][op])
                for op in ops
            ]
            print(f"| {name} | " + " | ".join(cells) + " |")


def without_moves(run):
    return run["instructions"] - run["moves"]


def multiply_adds(found, body):
    return sum(op in ("ffma", "hmma") for b in body for op in found[b]["ops"])


def stats(name, lines):
    """Per-stage counts of the form's main loop from its raw lines (memory spaces kept)."""
    ir = final_ir(lines)
    found = blocks(ir)
    loops = natural_loops(found)
    if not loops:
        return None
    # The loop over the stages: of the loops in no other, the one holding the multiply-adds.
    outermost = [body for _, body in loops if not any(body < other for _, other in loops)]
    outer = max(outermost, key=lambda body: multiply_adds(found, body))
    inner = [body for _, body in loops if body < outer]
    nested = set().union(*inner) if inner else set()
    kc = int(re.search(r"/k(\d+)", name).group(1))
    # Global loads by block, from the raw lines (`blocks` drops the memory space).
    current, global_by_block = None, Counter()
    for line in ir:
        m = BLOCK.match(line)
        if m:
            current = int(m.group(1))
        elif current is not None and re.search(r"= ld\.global", line):
            global_by_block[current] += 1
    outside = Counter(op for b in outer - nested for op in found[b]["ops"])
    total = Counter(outside)
    loads = sum(global_by_block[b] for b in outer - nested)
    fragment = re.search(r"/(\d+)x\1x\1/", name)
    for body in inner:
        if any(body < other for other in inner):
            continue  # counted with the loop around it
        ops = Counter(op for b in body for op in found[b]["ops"])
        # The FMA loop steps once per reduction step, the cooperative one once per fragment.
        trips = kc if ops["ffma"] or not fragment else kc // int(fragment.group(1))
        for op, n in ops.items():
            total[op] += n * trips
        loads += sum(global_by_block[b] for b in body) * trips
    return {
        "instructions": sum(total.values()),
        "outside": sum(outside.values()),
        "mads": total["ffma"] + total["hmma"],
        "global loads": loads,
        "moves": total["mov"],
        "ops": total,
    }


if __name__ == "__main__":
    main()
