#!/usr/bin/env bash
# Checks that the fault hot path makes no reference-counting or exclusivity calls: disassembles
# the functions a fault walks in the release binary and lists any call to swift_retain,
# swift_release, swift_beginAccess or their variants. Exits 1 if one is found.
# Usage: Scripts/check-hot-path-arc.sh [path/to/release/faultline]
set -euo pipefail
bin=${1:-.build/release/faultline}
[ -x "$bin" ] || { echo "no binary at $bin (build with: swift build -c release)" >&2; exit 2; }
# Functions on the anonymous fault path (whatever is not listed was inlined into these).
patterns=(
  'CPU.storeByte(_:_:)'
  'CPU.loadByte(_:)'
  'CPU.faultIn(_:write:)'
  'CPU.doAnonymousPage(_:)'
  'CPU.doWPPage(_:)'
  'CPU.doSharedFault(_:)'
  'CPU.handleMMFault(_:_:_:)'
  'CPU.handlePTEFault(_:)'
  'CPU.installPTE(_:_:page:)'
  'PageTable.allocPTE(_:cache:)'
  'PageTable.lookupPTE(_:)'
  'VMATree.find(_:)'
  'PhysicalMemory.allocate(cache:flags:)'
  'PhysicalMemory.allocateZeroed(cache:flags:)'
  'PhysicalMemory.refill(_:)'
  'RWSemaphore.readLock()'
  'RWSemaphore.readUnlock()'
  'SpinLock.lockSlow()'
)
symbols=$(nm "$bin" | awk '$2 ~ /[tT]/ {print $3}')
found=0
checked=0
for p in "${patterns[@]}"; do
  while read -r mangled; do
    [ -n "$mangled" ] || continue
    name=$(echo "$mangled" | swift demangle --simplified)
    # Only the function itself, not closures or specialisations named after it.
    [[ "$name" == "$p" || "$name" == "specialized $p" ]] || continue
    checked=$((checked + 1))
    calls=$(objdump -d --no-show-raw-insn --disassemble="$mangled" "$bin" | grep -E 'call|jmp' \
      | grep -E 'swift_(retain|release|unknownObjectRetain|unknownObjectRelease|bridgeObjectRetain|bridgeObjectRelease|beginAccess|endAccess)' || true)
    if [ -n "$calls" ]; then
      echo "ARC/exclusivity calls in $name:"
      echo "$calls"
      found=1
    else
      echo "clean: $name"
    fi
  done < <(echo "$symbols" | while read -r s; do
    d=$(echo "$s" | swift demangle --simplified)
    [[ "$d" == *"$p"* ]] && echo "$s"
  done)
done
echo "checked $checked functions"
[ "$checked" -gt 0 ] || { echo "no hot-path symbol found" >&2; exit 2; }
exit $found
