import ArgumentParser
import Faultline

/// `faultline demo`: a short tour that prints maps and counters after a few system calls.
public struct Demo: ParsableCommand {
  public init() {}
  public static let configuration = CommandConfiguration(
    abstract: "Map, touch, split and merge a region, printing /proc/self/maps and /proc/vmstat lines.")

  @OptionGroup var profileOptions: ProfileOptions

  public mutating func run() throws {
    let machine = try Machine(memoryBytes: 64 << 20, profile: try profileOptions.resolve())
    let mm = try AddressSpace(machine: machine)
    let cpu = try CPU(mm: mm)
    let len: UInt64 = 3 * 4096
    let a = try cpu.mmap(0, len, prot: Prot.read | Prot.write, flags: MapFlags.private | MapFlags.anonymous)
    print("mmap(NULL, \(len), PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x\(String(a, radix: 16))")
    try cpu.storeByte(a, 1)
    try cpu.mprotect(a + 4096, 4096, prot: Prot.read)
    print("mprotect(0x\(String(a + 4096, radix: 16)), 4096, PROT_READ) = 0")
    print(mm.maps(), terminator: "")
    do {
      try cpu.storeByte(a + 4096, 1)
    } catch {
      print("store(0x\(String(a + 4096, radix: 16)), 1) = \(error)")
    }
    try cpu.mprotect(a + 4096, 4096, prot: Prot.read | Prot.write)
    print("mprotect(0x\(String(a + 4096, radix: 16)), 4096, PROT_READ|PROT_WRITE) = 0")
    print(mm.maps(), terminator: "")
    try cpu.munmap(a, len)
    print(machine.vmstat.render(), terminator: "")
  }
}
