import ArgumentParser
import Faultline

/// `faultline profile`: prints the machine profile the engine follows, as an editable file.
public struct Profile: ParsableCommand {
  public init() {}
  public static let configuration = CommandConfiguration(
    abstract: "Print the machine profile (CPU features and kernel settings) the engine models.",
    discussion: """
      A machine profile is what makes one Linux machine's mm answers differ from another's: \
      whether the CPU has protection keys, vm.mmap_min_addr and the LSM minimum \
      (CONFIG_LSM_MMAP_MIN_ADDR), the legacy layout switch, transparent hugepages, the hugetlb \
      pool, vm.max_map_count, vm.overcommit_memory, KSM, and the bits of user address space \
      (TASK_SIZE). By default every engine models this machine (host): its settings are read \
      once from /proc/cpuinfo, /proc/sys/vm and /sys/kernel/mm, and the LSM minimum is found \
      with one hint mmap.

      The engine follows today: protection keys (pkey_alloc, PKRU, execute-only memory), \
      mmap_min_addr and the LSM minimum (MAP_FIXED below mmap_min_addr is EPERM; hints are \
      raised to the larger of the two), max_map_count (ENOMEM past it), legacy_va_layout \
      (bottom-up placement), and the hugetlb pool (MAP_HUGETLB reserves from it: ENOMEM when it \
      is empty). It carries but does not model yet: transparent hugepages, overcommit_memory, \
      KSM and a 56-bit TASK_SIZE.

      Prints the host's profile, or with --profile another one: \
      `faultline profile --profile x86-pku > p.txt` writes a file to edit, and \
      `faultline bench --profile p.txt` (demo, replay and explore alike) runs on it. \
      faultline conform always uses host: it compares the engine with this machine's kernel.
      """)

  @OptionGroup var profileOptions: ProfileOptions

  public mutating func run() throws {
    print(try profileOptions.resolve().text, terminator: "")
  }
}
