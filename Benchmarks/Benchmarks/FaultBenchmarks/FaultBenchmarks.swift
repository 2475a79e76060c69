import Benchmark
import Faultline

// Microbenchmarks of the pieces a fault is made of: the anonymous fault per design, a VMA
// lookup with 10 and 65,530 VMAs, a cached page-cache lookup (the file fault's lockless one) in
// a file of 1 and 65,536 cached pages, a page-table walk and a 4 KiB zero. Throughput metrics
// only (ARC counters crash in this harness on Linux: reference/swift-stack.md §7).

var configuration: Benchmark.Configuration {
  .init(metrics: [.wallClock, .throughput], scalingFactor: .kilo, maxDuration: .seconds(2), maxIterations: 1_000)
}

/// An address space of `count` one-page VMAs that cannot merge (alternating protections).
func spaceWithVMAs(_ count: Int, machine: Machine) throws -> (AddressSpace, [UInt64]) {
  var config = AddressSpaceConfig()
  config.maxMapCount = max(65_530, count + 10)
  let mm = try AddressSpace(machine: machine, config: config)
  let cpu = try CPU(mm: mm)
  var addrs: [UInt64] = []
  let base: UInt64 = 0x1000_0000
  for i in 0..<count {
    let a = base + UInt64(i) * 4096
    _ = try cpu.mmap(a, 4096, prot: i % 2 == 0 ? Prot.read : Prot.read | Prot.write, flags: MapFlags.private | MapFlags.anonymous | MapFlags.fixed)
    addrs.append(a)
  }
  return (mm, addrs)
}

/// A thread and a tmpfs file of `pages` pages, every one written and so in the page cache.
func fileWithCachedPages(_ pages: Int) throws -> (CPU, Inode) {
  let machine = try Machine(memoryBytes: 64 << 20 + pages * 4096)
  let fs = TmpFS(memory: machine.memory)
  machine.mount(fs, at: "/mnt")
  let mm = try AddressSpace(machine: machine)
  let cpu = try CPU(mm: mm)
  let fd = try cpu.open("/mnt/f", flags: OpenFlags.readWrite | OpenFlags.create)
  let chunk = [UInt8](repeating: 1, count: 64 * 4096)
  var offset = 0
  while offset < pages * 4096 {
    let n = min(chunk.count, pages * 4096 - offset)
    _ = try chunk.withUnsafeBytes { try mm.files.pwrite(fd, UnsafeRawBufferPointer(rebasing: $0[..<n]), at: UInt64(offset)) }
    offset += n
  }
  return (cpu, try fs.lookup("/f"))
}

let benchmarks: @Sendable () -> Void = {
  for design in FaultDesign.allCases {
    Benchmark("anonymous fault, \(design)", configuration: configuration) { benchmark in
      let machine = try Machine(memoryBytes: 256 << 20, prefault: true)
      var config = AddressSpaceConfig()
      config.design = design
      let mm = try AddressSpace(machine: machine, config: config)
      let cpu = try CPU(mm: mm)
      let pages = benchmark.scaledIterations.count
      let a = try cpu.mmap(0, UInt64(pages) * 4096, prot: Prot.read | Prot.write, flags: MapFlags.private | MapFlags.anonymous)
      try cpu.storeByte(a, 0)  // the anon_vma and the page tables
      benchmark.startMeasurement()
      for i in benchmark.scaledIterations { try cpu.storeByte(a + UInt64(i) * 4096, 1) }
      benchmark.stopMeasurement()
      try cpu.munmap(a, UInt64(pages) * 4096)
    }
  }

  for count in [10, 65_530] {
    Benchmark("VMA lookup, \(count) VMAs", configuration: configuration) { benchmark in
      let machine = try Machine(memoryBytes: 64 << 20)
      let (mm, addrs) = try spaceWithVMAs(count, machine: machine)
      var found = 0
      benchmark.startMeasurement()
      for i in benchmark.scaledIterations {
        if mm.tree.find(addrs[(i &* 7919) % addrs.count]) != nil { found &+= 1 }
      }
      benchmark.stopMeasurement()
      blackHole(found)
    }
  }

  // `CPU.isPageCached` asks what a file fault asks first: `PageCache.findRCU` under the thread's
  // RCU read side (no lock), a reference taken on the page and put again.
  for pages in [1, 65_536] {
    Benchmark("page-cache lookup, cached, \(pages) pages", configuration: configuration) { benchmark in
      let (cpu, inode) = try fileWithCachedPages(pages)
      var found = 0
      benchmark.startMeasurement()
      for i in benchmark.scaledIterations {
        if cpu.isPageCached(inode, index: UInt64((i &* 7919) % pages)) { found &+= 1 }
      }
      benchmark.stopMeasurement()
      precondition(found == benchmark.scaledIterations.count, "a cached page was reported missing")
    }
  }

  Benchmark("PTE walk", configuration: configuration) { benchmark in
    let machine = try Machine(memoryBytes: 64 << 20)
    let mm = try AddressSpace(machine: machine)
    let cpu = try CPU(mm: mm)
    let a = try cpu.mmap(0, 512 * 4096, prot: Prot.read | Prot.write, flags: MapFlags.private | MapFlags.anonymous)
    for p in 0..<512 { try cpu.storeByte(a + UInt64(p) * 4096, 1) }
    var sum: UInt64 = 0
    benchmark.startMeasurement()
    for i in benchmark.scaledIterations { sum &+= mm.pageTable.pte(at: a + UInt64(i % 512) * 4096).raw }
    benchmark.stopMeasurement()
    blackHole(sum)
  }

  Benchmark("4 KiB zero", configuration: configuration) { benchmark in
    let memory = try PhysicalMemory(bytes: 64 << 20, prefault: true)
    var frames: [PFN] = []
    while frames.count < 8192, let f = memory.allocate() { frames.append(f) }
    var value: UInt8 = 1
    benchmark.startMeasurement()
    for i in benchmark.scaledIterations {
      memory.address(of: frames[i % frames.count]).initializeMemory(as: UInt8.self, repeating: value, count: 4096)
      value &+= 1
    }
    benchmark.stopMeasurement()
    for f in frames { memory.put(f) }
  }
}
