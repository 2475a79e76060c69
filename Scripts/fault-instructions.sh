#!/usr/bin/env bash
# Instructions per page fault, per fault design and fault kind, counted by callgrind: a
# deterministic performance figure (the same for the same binary and input, whatever else the
# machine runs), unlike the timings of `faultline bench`.
#
#   Scripts/fault-instructions.sh [--check | --update] [BINARY]
#
# BINARY is a release build of faultline (default .build/release/faultline; this script builds
# nothing). It is copied and the copy's debug info stripped, since valgrind's reader rejects
# Swift 6.3's DWARF. For each design and kind, `faultline fault-cost` takes 256 faults inside
# faultCostLoop, and callgrind counts only that function (--toggle-collect matches the mangled
# name, which holds the identifier verbatim). Set-up (machine, mapping, file, fork, one warm-up
# fault that allocates the page table) is outside it. SWIFT_DETERMINISTIC_HASHING keeps the page
# cache's hash probes the same from run to run.
#
# Per fault, the table gives the instructions of the fault path without the 4 KiB zeroing or
# copy, and that zeroing/copy separately: the calls inside the counted region to libc's
# memset/memmove/memcpy variants that average 256 instructions or more (clear_user_highpage,
# copy_user_highpage: glibc's code, not ours, whose count depends on the CPU features valgrind
# reports: rep stosb counts one instruction per byte). The fault-path figure also includes the
# access that raises the fault (the page walk before and after it). The last column is the share
# of faults done without mmap_lock: a lockless design that hands a kind to mmap_lock pays for
# its attempt and then for the locked path.
#
# --check compares the fault-path figures with Scripts/fault-instructions.baseline and fails (exit 1) if any grew more than
# 3%, naming them. --update rewrites the baseline. Update it in the same commit as a deliberate
# change to the fault path, and say in that commit why the figures moved; a change that is not
# meant to cost instructions should pass --check unchanged. The 24 runs take about 30 s.
set -euo pipefail

BASELINE=Scripts/fault-instructions.baseline
PAGES=256
MEMORY_MIB=16
DESIGNS="mmap_lock spf seq vma_lock"
KINDS="anon-write anon-read cow file-cow file-shared-write file-read"
TOLERANCE_PERCENT=3

mode=print
case "${1:-}" in
  --check) mode=check; shift ;;
  --update) mode=update; shift ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
binary=${1:-}
cd "$(dirname "$0")/.."
if [ -n "$binary" ]; then binary=$(cd "$OLDPWD" && realpath -e "$binary" 2>/dev/null || echo "$binary"); fi
binary=${binary:-.build/release/faultline}
[ -x "$binary" ] || { echo "no executable at $binary (build it: swift build -c release --product faultline)" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind not found" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$binary" "$work/faultline"
strip --strip-debug "$work/faultline"

# The 4 KiB zeroing and copies in one callgrind output: the cost of the calls to libc's
# memset/memmove/memcpy variants that average at least 256 instructions per call, caller by
# caller (a 4 KiB memset or copy costs 400 to 4,100 under valgrind; the small copies of array
# growth cost tens, and stay in the fault path's figure).
zero_copy_instructions() {
  callgrind_annotate --tree=caller --threshold=100 "$1" 2>/dev/null |
    awk '
      /^ *[0-9,]+ .* < / { cost = $1; gsub(",", "", cost); calls = 1
        if (match($0, /\(([0-9]+)x\)/)) calls = substr($0, RSTART + 1, RLENGTH - 3)
        if (cost / calls >= 256) big += cost; next }
      /^ *[0-9,]+ .* \* / { if ($0 ~ /mem(set|move|cpy)/) s += big; big = 0; next }
      { big = 0 }
      END { print s + 0 }'
}

results="$work/results"
: >"$results"
start=$SECONDS
total=$(($(wc -w <<<"$KINDS") * $(wc -w <<<"$DESIGNS")))
n=0
for kind in $KINDS; do
  for design in $DESIGNS; do
    n=$((n + 1))
    printf '[%2d/%d] %-17s %-8s ' "$n" "$total" "$kind" "$design" >&2
    out="$work/cg.$kind.$design"
    SWIFT_DETERMINISTIC_HASHING=1 valgrind --tool=callgrind --toggle-collect='*faultCostLoop*' --callgrind-out-file="$out" \
      "$work/faultline" fault-cost --kind "$kind" --design "$design" --pages "$PAGES" --memory-mib "$MEMORY_MIB" \
      >"$work/stdout" 2>"$work/valgrind.log" || { echo "failed:" >&2; cat "$work/valgrind.log" >&2; exit 2; }
    faults=$(awk '$1 == "faults" { print $2 }' "$work/stdout")
    lockless=$(awk '$1 == "lockless_faults" { print $2 }' "$work/stdout")
    counted=$(awk '$1 == "summary:" || $1 == "totals:" { print $2; exit }' "$out")
    zero_copy=$(zero_copy_instructions "$out")
    if [ -z "$faults" ] || [ "$faults" -eq 0 ] || [ -z "$counted" ] || [ "$counted" -eq 0 ]; then
      echo "no faults or no instructions counted (faults '$faults', instructions '$counted'): is faultCostLoop still a function of its own?" >&2
      exit 2
    fi
    echo "$kind $design $faults $counted $zero_copy ${lockless:-0}" >>"$results"
    echo "$faults faults, $((SECONDS - start)) s" >&2
  done
done

# kind design instructions/fault (without zero/copy), zero/copy per fault, difference from
# mmap_lock, and the share of faults done without mmap_lock (the rest fell back to it).
table=$(awk '
  { path = ($4 - $5) / $3; zc = $5 / $3; key[NR] = $1 " " $2; p[NR] = path; z[NR] = zc; l[NR] = 100 * $6 / $3
    if ($2 == "mmap_lock") base[$1] = path }
  END {
    printf "%-17s %-8s %12s %10s %12s %9s\n", "kind", "design", "instr/fault", "zero+copy", "vs mmap_lock", "lockless"
    for (i = 1; i <= NR; i++) {
      split(key[i], k, " ")
      d = (k[2] == "mmap_lock") ? "" : sprintf("%+.0f", p[i] - base[k[1]])
      printf "%-17s %-8s %12.0f %10.0f %12s %8.0f%%\n", k[1], k[2], p[i], z[i], d, l[i]
    }
  }' "$results")
echo "$table"
echo "($PAGES pages per run; instructions per fault, the 4 KiB zeroing/copy counted apart; $((SECONDS - start)) s)"

figures=$(awk '{ printf "%s %s %.0f\n", $1, $2, ($4 - $5) / $3 }' "$results")
case $mode in
  update)
    {
      echo "# Instructions per fault without the 4 KiB zeroing/copy (kind design value), from"
      echo "# Scripts/fault-instructions.sh --update; --check fails when one grows more than $TOLERANCE_PERCENT%."
      echo "$figures"
    } >"$BASELINE"
    echo "wrote $BASELINE"
    ;;
  check)
    [ -f "$BASELINE" ] || { echo "no baseline at $BASELINE (run with --update)" >&2; exit 1; }
    if ! awk -v tol="$TOLERANCE_PERCENT" '
      NR == FNR { if ($0 !~ /^#/ && NF == 3) base[$1 " " $2] = $3; next }
      { k = $1 " " $2
        if (!(k in base)) { printf "%s: %d, not in the baseline\n", k, $3; bad = 1; next }
        limit = base[k] * (1 + tol / 100)
        if ($3 > limit) { printf "%s: %d instructions per fault, over the baseline %d by more than %d%%\n", k, $3, base[k], tol; bad = 1 }
        else if ($3 < base[k] * (1 - tol / 100)) printf "%s: %d, under the baseline %d by more than %d%% (update it)\n", k, $3, base[k], tol }
      END { exit bad }' "$BASELINE" - <<<"$figures"; then
      echo "fault instruction counts grew over $BASELINE (update it in the same commit as a deliberate change, saying why)"
      exit 1
    fi
    echo "fault instruction counts within $TOLERANCE_PERCENT% of $BASELINE"
    ;;
esac
