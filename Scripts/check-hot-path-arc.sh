#!/usr/bin/env bash
# Checks that the anonymous fault hot path makes no reference-counting or exclusivity call.
# Starting from the access entry points, it follows every direct call in the release binary's
# disassembly (the call graph of a load or store that faults), and reports any call to
# swift_retain, swift_release, swift_beginAccess or their variants. Functions that only run
# once per VMA or on failures are listed as cold and not followed. Exits 1 if a call is found.
# Usage: Scripts/check-hot-path-arc.sh [path/to/release/faultline]
set -euo pipefail
bin=${1:-.build/release/faultline}
[ -x "$bin" ] || { echo "no binary at $bin (build with: swift build -c release)" >&2; exit 2; }
python3 - "$bin" <<'PY'
import re, subprocess, sys
bin = sys.argv[1]
syms = [l.split()[2] for l in subprocess.run(["nm", bin], capture_output=True, text=True).stdout.splitlines()
        if len(l.split()) == 3 and l.split()[1] in "tT"]
dem = subprocess.run(["swift", "demangle", "--simplified"], input="\n".join(syms), capture_output=True, text=True).stdout.splitlines()
# Generic parameters are dropped from the names (`CPU.doFileFault<A>(` reads `CPU.doFileFault(`),
# so the patterns below match every specialisation of a function.
name = {s: re.sub(r"<[^<>()]*>", "", d) for s, d in zip(syms, dem)}
roots = ["CPU.storeByte(_:_:)", "CPU.loadByte(_:)", "CPU.faultIn(_:write:)"]
# Cold: once per VMA (anon_vma, the last put), failures (signals, aborts, OOM reclaim, bad page),
# test hooks, stack growth (takes mmap_lock for write), settling deferred puts (a COW page after
# fork, once), the shmem placeholder, private hugetlb faults (MAP_HUGETLB only), and the huge zero
# page's reference (a mutex, and a put after a grace period as putAfterGracePeriod; once per 2 MiB). The file-backed fault path is followed separately and
# reported, not failed: its page cache is still a Dictionary under a mutex.
cold = ["CPU.segv(", "CPU.prepareAnonVMA(", "CPU.sharedPage(", "CPU.sharedPageOwned(", "CPU.putAfterGracePeriod(",
        "CPU.allocateUserPageSlow(", "FrameAllocator.badPage(", "CPU.speculativeAbort(", "CPU.vmaLockAbort(",
        "CPU.runHook(", "VMA.free()", "CPU.doFileFault(", "CPU.wpPageSharedFile(",
        "CPU.takeFaultFileReference(", "CPU.expandStack(", "CPU.settleDeferredPuts(", "CPU.dropFaultFileReference(", "CPU.fileIsSpeculativeSafe(",
        "CPU.hugetlbPrivateFault(", "CPU.hugetlbWP(", "CPU.getHugeZeroPage(", "CPU.putHugeZeroPage(",
        "PageTable.releaseHugeZeroPage("]
arc = re.compile(r"swift_(retain|release|unknownObjectRetain|unknownObjectRelease|bridgeObjectRetain|bridgeObjectRelease|beginAccess|endAccess)")
todo = [s for s in syms if name[s] in roots]
seen, bad = set(), []
while todo:
    s = todo.pop()
    if s in seen: continue
    seen.add(s)
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f"--disassemble={s}", bin], capture_output=True, text=True).stdout
    for m in re.finditer(r"(call|jmp)\s+[0-9a-f]+ <([^>]+)>", out):
        target = m.group(2)
        if arc.search(target):
            bad.append((name[s], target))
        elif target.endswith("@plt") or "+0x" in target or target == s:
            continue
        elif target in name and not any(c in name[target] for c in cold):
            todo.append(target)
for s in sorted(seen, key=lambda s: name[s]):
    print(("ARC  " if any(b[0] == name[s] for b in bad) else "clean ") + name[s])
for fn, t in bad:
    print(f"  {fn} calls {t}")
print(f"{len(seen)} functions on the anonymous hot path, {len(bad)} ARC/exclusivity calls")
# The file-backed path, for the record.
file_roots = [s for s in syms if any(name[s].startswith(p) or name[s].startswith("specialized " + p)
              for p in ["CPU.doFileFault(", "CPU.wpPageSharedFile(", "CPU.takeFaultFileReference("])]
fseen, fbad = set(), 0
todo = list(file_roots)
while todo:
    s = todo.pop()
    if s in fseen or s in seen: continue
    fseen.add(s)
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f"--disassemble={s}", bin], capture_output=True, text=True).stdout
    for m in re.finditer(r"(call|jmp)\s+[0-9a-f]+ <([^>]+)>", out):
        t = m.group(2)
        if arc.search(t): fbad += 1
        elif not (t.endswith("@plt") or "+0x" in t) and t in name and "CPU.segv(" not in name[t]: todo.append(t)
print(f"file-backed fault path (reported, not checked): {len(fseen)} functions, {fbad} ARC/exclusivity calls")
sys.exit(1 if bad else 0)
PY
