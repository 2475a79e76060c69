import Faultline
import FaultlineTestSupport
import Testing

// Helpers shared by the errno tests. The expectations in those tests are Linux's, as its source
// decides them: mm/mmap.c do_mmap and ksys_mmap_pgoff (mmap; the offset check in
// arch/x86/kernel/sys_x86_64.c sys_mmap), mm/vma.c do_vmi_munmap (munmap), mm/mprotect.c
// do_mprotect_pkey (mprotect), mm/madvise.c madvise_behavior_valid and madvise_walk_vmas
// (madvise), mm/mmap.c brk, and the function a comment names. They were also run on a 6.18 host by
// a probe program that is not kept; the "Probe 17a" labels are its case numbers, kept as names
// for the cases. `faultline conform` (Sources/FaultlineConform) checks the anonymous-memory calls
// against the host kernel in the repository.

/// `mm->mmap_base` of the default configuration: hint-less mappings end here.
let defaultMmapBase: UInt64 = 0x7FFF_F7FF_F000
/// `TASK_SIZE` of the default configuration.
let taskSize: UInt64 = 0x7FFF_FFFF_F000

/// The maps line of the heap: the name starts in column 73, as in
/// `55a6fe8f9000-55a6fe8fc000 rw-p 00000000 00:00 0                          [heap]`.
func heapLine(_ start: UInt64, _ end: UInt64) -> String {
  var s = "\(hex8(start))-\(hex8(end)) rw-p 00000000 00:00 0"
  s += String(repeating: " ", count: max(1, 73 - s.utf8.count))
  return s + "[heap]"
}

/// Maps one-page private anonymous VMAs with alternating protections (so that none merge)
/// until `mmap` fails. Returns how many succeeded and the error that stopped the loop.
func mapUntilFailure(_ r: Rig, limit: Int = 10_000) -> (mapped: Int, error: Errno?) {
  var n = 0
  while n < limit {
    do {
      _ = try r.cpu.mmap(0, page, prot: n & 1 == 1 ? Prot.read : rw, flags: anonPrivate)
      n += 1
    } catch {
      return (n, error)
    }
  }
  return (n, nil)
}

/// Lines of `r.mm.mapsLines()` that lie inside `[start, end)`.
func mapsLines(_ r: Rig, in start: UInt64, _ end: UInt64) -> [String] {
  r.mm.mapsLines().filter { line in
    let parts = line.split(separator: " ")[0].split(separator: "-")
    let s = UInt64(parts[0], radix: 16)!
    let e = UInt64(parts[1], radix: 16)!
    return s >= start && e <= end
  }
}
