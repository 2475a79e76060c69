import Faultline
import Testing

// The example of the documentation catalog (Sources/Faultline/Faultline.docc/GettingStarted.md),
// line for line, with what the article says about it asserted. Change both together.

@Suite struct DocExampleTests {
  @Test(arguments: FaultDesign.allCases)
  func gettingStartedExampleDoesWhatTheArticleSays(design: FaultDesign) throws {
    // --- the article's code (its `.perVMALock` is `design` here) ---
    let machine = try Machine(memoryBytes: 16 << 20)
    var config = AddressSpaceConfig(profile: machine.profile)
    config.design = design
    let mm = try AddressSpace(machine: machine, config: config)
    let cpu = try CPU(mm: mm)

    let addr = try cpu.mmap(0, 4096, prot: Prot.read | Prot.write, flags: MapFlags.private | MapFlags.anonymous)
    try cpu.storeBytes(addr, Array("hello".utf8))

    let child = try cpu.fork()
    let childCPU = try CPU(mm: child)
    let text = try childCPU.loadBytes(addr, count: 5)
    try childCPU.storeByte(addr, UInt8(ascii: "J"))

    let faults = machine.vmstat[.pgfault]
    let copies = machine.vmstat[.pgcow]
    // --- end of the article's code ---

    // "the child reads hello without a fault": the only faults are the parent's first store and
    // the child's store, which copies the shared page.
    #expect(String(decoding: text, as: UTF8.self) == "hello")
    #expect(faults == 2)
    #expect(copies == 1)
    // "the parent still reads hello": the child wrote its own copy.
    #expect(String(decoding: try cpu.loadBytes(addr, count: 5), as: UTF8.self) == "hello")
    #expect(String(decoding: try childCPU.loadBytes(addr, count: 5), as: UTF8.self) == "Jello")
    #expect(machine.vmstat[.pgfault] == faults, "loads of mapped pages fault nothing")

    // "Errors and signals": mmap of length 0 is EINVAL; a store to a read-only mapping is
    // SIGSEGV with SEGV_ACCERR. (SIGBUS past the end of a file: FileMappingTests.)
    #expect(throws: Errno.invalidArgument) {
      try cpu.mmap(0, 0, prot: Prot.read, flags: MapFlags.private | MapFlags.anonymous)
    }
    let readOnly = try cpu.mmap(0, 4096, prot: Prot.read, flags: MapFlags.private | MapFlags.anonymous)
    #expect(throws: Signal.sigsegv(.accErr, address: readOnly)) { try cpu.storeByte(readOnly, 1) }
  }
}
