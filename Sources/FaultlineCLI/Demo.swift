import ArgumentParser
import Faultline

/// `faultline demo`: a short tour that prints maps and counters after a few system calls.
public struct Demo: ParsableCommand {
  public init() {}
  public static let configuration = CommandConfiguration(
    abstract: "Map, touch, split and merge a region, printing /proc/self/maps and /proc/vmstat lines.",
    discussion: """
      On a profile with protection keys (`--profile x86-pku`, or a host with PKU) it also maps \
      execute-only memory, allocates a key that denies writes and gives it to a page, and \
      prints the faults and the smaps entries with their ProtectionKey lines.
      """)

  @OptionGroup var profileOptions: ProfileOptions

  public mutating func run() throws {
    let machine = try Machine(memoryBytes: 64 << 20, profile: try profileOptions.resolve())
    let mm = try AddressSpace(machine: machine)
    let cpu = try CPU(mm: mm)
    let len: UInt64 = 3 * Page.size
    let a = try cpu.mmap(0, len, prot: Prot.read | Prot.write, flags: MapFlags.private | MapFlags.anonymous)
    print("mmap(NULL, \(len), PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x\(String(a, radix: 16))")
    try cpu.storeByte(a, 1)
    try cpu.mprotect(a + Page.size, Page.size, prot: Prot.read)
    print("mprotect(0x\(String(a + 4096, radix: 16)), 4096, PROT_READ) = 0")
    print(mm.maps(), terminator: "")
    do {
      try cpu.storeByte(a + Page.size, 1)
    } catch {
      print("store(0x\(String(a + 4096, radix: 16)), 1) = \(error)")
    }
    try cpu.mprotect(a + Page.size, Page.size, prot: Prot.read | Prot.write)
    print("mprotect(0x\(String(a + 4096, radix: 16)), 4096, PROT_READ|PROT_WRITE) = 0")
    print(mm.maps(), terminator: "")
    try cpu.munmap(a, len)
    if machine.profile.protectionKeys == .x86 { try protectionKeyTour(mm, cpu) }
    print(machine.vmstat.render(), terminator: "")
  }
}

extension Demo {
  /// Execute-only memory and a write-disabled key, as x86 Linux runs them.
  func protectionKeyTour(_ mm: AddressSpace, _ cpu: CPU) throws {
    let x = try cpu.mmap(0, Page.size, prot: Prot.exec, flags: MapFlags.private | MapFlags.anonymous)
    print("mmap(NULL, 4096, PROT_EXEC, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x\(String(x, radix: 16))")
    do {
      _ = try cpu.loadByte(x)
    } catch {
      print("load(0x\(String(x, radix: 16)), 1) = \(error)")
    }
    let key = try cpu.pkeyAlloc(accessRights: .disableWrite)
    print("pkey_alloc(0, PKEY_DISABLE_WRITE) = \(key)")
    let d = try cpu.mmap(0, 2 * Page.size, prot: Prot.read | Prot.write, flags: MapFlags.private | MapFlags.anonymous)
    print("mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x\(String(d, radix: 16))")
    try cpu.pkeyMprotect(d, Page.size, prot: Prot.read | Prot.write, pkey: key)
    print("pkey_mprotect(0x\(String(d, radix: 16)), 4096, PROT_READ|PROT_WRITE, \(key)) = 0")
    print("load(0x\(String(d, radix: 16)), 1) = \(try cpu.loadByte(d))")
    do {
      try cpu.storeByte(d, 1)
    } catch {
      print("store(0x\(String(d, radix: 16)), 1) = \(error)")
    }
    print("rdpkru() = 0x\(String(cpu.pkru, radix: 16))")
    print(mm.smaps(), terminator: "")
    try cpu.munmap(x, Page.size)
    try cpu.munmap(d, 2 * Page.size)
  }
}
