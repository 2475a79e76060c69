#!/usr/bin/env bash
# Checks that the fault hot paths make no reference-counting or exclusivity call.
# Starting from the access entry points, it follows every direct call in the release binary's
# disassembly (the call graph of a load or store that faults), and reports any call to
# swift_retain, swift_release, swift_beginAccess or their variants. Functions that only run
# once per VMA or on failures are listed as cold and not followed. Two walks, both checked:
# the anonymous path (file-backed faults left out), and the file-backed paths (read fault, COW
# fault, shared write fault, write-protect fault on a shared page, the speculative fault's file
# reference), where a page-cache miss (I/O) and a file system's page_mkwrite are cold.
# Exits 1 if a call is found on either.
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
access_roots = ["CPU.storeByte(_:_:)", "CPU.loadByte(_:)", "CPU.faultIn(_:write:)"]
# The file-backed paths start here (reached from the access roots too).
file_entries = ["CPU.doFileFault(", "CPU.wpPageSharedFile(", "CPU.takeFaultFileReference(",
                "CPU.dropFaultFileReference("]
# Cold: once per VMA (anon_vma, the last put), failures (signals, aborts, OOM reclaim, bad page),
# test hooks, stack growth (takes mmap_lock for write), settling deferred puts (a COW page after
# fork, once), the shmem placeholder, private hugetlb faults (MAP_HUGETLB only), the huge zero
# page's reference (a mutex, and a put after a grace period as putAfterGracePeriod; once per
# 2 MiB), a page-cache miss (it reads from the backing store: CPU.fileMiss, PageCache.read), a
# file system's ->page_mkwrite (a protocol witness; only file systems that have one), and the
# first dirtying of a clean page (the page-cache lock after the PTL, with the inode pinned across
# it: CPU.pinForTagging, CPU.tagDirtyAndUnpin; once per page between writebacks).
cold = ["CPU.segv(", "CPU.prepareAnonVMA(", "CPU.sharedPage(", "CPU.sharedPageOwned(", "CPU.putAfterGracePeriod(",
        "CPU.allocateUserPageSlow(", "FrameAllocator.badPage(", "CPU.speculativeAbort(", "CPU.vmaLockAbort(",
        "CPU.runHook(", "VMA.free()", "CPU.expandStack(", "CPU.settleDeferredPuts(",
        "CPU.hugetlbPrivateFault(", "CPU.hugetlbWP(", "CPU.getHugeZeroPage(", "CPU.putHugeZeroPage(",
        "PageTable.releaseHugeZeroPage(", "CPU.fileMiss(", "PageCache.read(", "CPU.callPageMkwrite(",
        "CPU.pinForTagging(", "CPU.tagDirtyAndUnpin("]
arc = re.compile(r"swift_(retain|release|unknownObjectRetain|unknownObjectRelease|bridgeObjectRetain|bridgeObjectRelease|beginAccess|endAccess)")
def matches(n, patterns):
    return any(p in n for p in patterns)
def walk(roots, skip):
    todo, seen, bad = list(roots), set(), []
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
            elif target in name and not matches(name[target], skip):
                todo.append(target)
    return seen, bad
def report(title, seen, bad):
    for s in sorted(seen, key=lambda s: name[s]):
        print(("ARC  " if any(b[0] == name[s] for b in bad) else "clean ") + name[s])
    for fn, t in bad:
        print(f"  {fn} calls {t}")
    print(f"{len(seen)} functions on the {title}, {len(bad)} ARC/exclusivity calls")
anon_seen, anon_bad = walk([s for s in syms if name[s] in access_roots], cold + file_entries)
file_roots = [s for s in syms if any(name[s].startswith(p) or name[s].startswith("specialized " + p) for p in file_entries)]
file_seen, file_bad = walk(file_roots, cold)
report("anonymous hot path", anon_seen, anon_bad)
report("file-backed fault paths", file_seen, file_bad)
sys.exit(1 if anon_bad or file_bad else 0)
PY
