import Faultline

/// Each operation on the engine, with the bookkeeping the replay keeps beside it (fds, touched
/// ranges, stand-ins for memory the engine does not model).
extension ReplayExecutor {
  func execute(_ op: Operation, _ entry: ScriptEntry, in p: ReplayProcess) {
    guard let mm = p.mm, let cpu = p.cpu else { return }
    let recordedSuccess: Bool
    if case .value = entry.call.result { recordedSuccess = true } else { recordedSuccess = false }
    // Memory the kernel made before the log starts is mapped on first use (not in strict mode).
    let infer = recordedSuccess && inferring
    switch op {
    case .mmap(let addr, let len, let prot, var flags, let fd, var offset):
      var engineFD = Int32(-1)
      var standIn: StandInFile?
      if flags & MapFlags.anonymous.rawValue == 0 {
        if p.standIns[fd] == nil, let mapped = p.fds[fd] {
          engineFD = mapped
        } else if p.standIns[fd] != nil || recordedSuccess {
          // A file the script never made (a library, a file of the traced program): its stand-in.
          standIn = self.standIn(forMmapOf: fd, path: entry.call.fdPaths[4], in: p)
          engineFD = standIn?.engineFD ?? -1
        } else if !recordedErrno(entry, is: .badFileDescriptor) {
          report.skip("mmap: failed on a file the script never opened")
          return
        } else {
          engineFD = fd
        }
      }
      var place = addr
      if let s = standIn {
        switch s.kind {
        case .zero:
          // mmap_zero: anonymous memory, shmem when shared.
          flags |= MapFlags.anonymous.rawValue
          engineFD = -1
          offset = 0
        case .shmem:
          break
        case .diskFile:
          if flags & (MapFlags.fixed | MapFlags.fixedNoReplace).rawValue == 0,
            let aligned = p.thpFileAddress(hint: addr, length: len, offset: UInt64(bitPattern: offset), fd: s.engineFD)
          {
            place = aligned
            flags |= MapFlags.fixedNoReplace.rawValue
          }
        }
      }
      let got = outcome { () throws(Errno) in try cpu.mmap(place, len, prot: Prot(rawValue: prot), flags: MapFlags(rawValue: flags), fd: engineFD, offset: offset) }
      var placed: Outcome = got
      if case .value(let n) = entry.call.result, got != .value(n.bits), !Self.isFixed(op) {
        // Go on from where Linux put it (ReplayDivergence).
        let noReplace = flags | MapFlags.fixedNoReplace.rawValue
        let at = followRecordedPlacement(entry, got: got, recorded: n.bits, length: len, in: p) { (a: UInt64) throws(Errno) -> UInt64 in
          try cpu.mmap(a, len, prot: Prot(rawValue: prot), flags: MapFlags(rawValue: noReplace), fd: engineFD, offset: offset)
        }
        placed = at.map { .value($0) } ?? got
      }
      if case .value(let a) = placed {
        let r = a..<(a &+ Page.roundUp(len) >= a ? a &+ Page.roundUp(len) : UInt64.max)
        p.touched.insert(r)
        if standIn != nil {
          p.foreign.insert(r)
          report.standIns += 1
        } else {
          p.foreign.remove(r)
        }
      }
      record(entry, got: got)
    case .munmap(let addr, let len):
      let got = outcome { () throws(Errno) in try cpu.munmap(addr, len) }
      if case .value = got, let r = range(addr, len) {
        p.touched.insert(r)
        p.foreign.remove(r)
      }
      record(entry, got: got)
    case .mprotect(let addr, let len, let prot):
      if infer { report.inferred += p.inferKernelMappings(addr, len, growsDown: Prot(rawValue: prot).contains(.growsDown)) }
      record(entry, got: outcome { () throws(Errno) in try cpu.mprotect(addr, len, prot: Prot(rawValue: prot)) })
    case .madvise(let addr, let len, let advice):
      if infer { report.inferred += p.inferKernelMappings(addr, len) }
      record(entry, got: outcome { () throws(Errno) in try cpu.madvise(addr, len, advice: Advice(rawValue: advice)) })
    case .msync(let addr, let len, let flags):
      if infer { report.inferred += p.inferKernelMappings(addr, len) }
      record(entry, got: outcome { () throws(Errno) in try cpu.msync(addr, len, flags: MsyncFlags(rawValue: flags)) })
    case .brk(let addr):
      let before = mm.currentBrk
      let after = cpu.brk(addr)
      let lo = Page.roundUp(min(before, after))
      let hi = Page.roundUp(max(before, after))
      if lo < hi { p.touched.insert(lo..<hi) }
      if case .value(let n) = entry.call.result { p.lastRecordedBrk = n.bits }
      record(entry, got: .value(after))
    case .mremap(let old, let oldSize, let newSize, let flags, let newAddress):
      if infer { report.inferred += p.inferKernelMappings(old, oldSize) }
      let wasForeign = range(old, oldSize).map { !p.foreign.overlaps(in: $0).isEmpty } ?? false
      let got = outcome { () throws(Errno) in
        let moving = MremapFlags(rawValue: flags) == .mayMove
        if moving, let a = try p.mremapDiskStandIn(old, oldSize, newSize, diskStandIns: diskStandIns) {
          return a
        }
        return try cpu.mremap(old, oldSize, newSize, flags: MremapFlags(rawValue: flags), newAddress: newAddress)
      }
      if case .value(let a) = got, let to = range(a, newSize) {
        if let from = range(old, oldSize) {
          p.touched.insert(from)
          if flags & 4 == 0 && a != old { p.foreign.remove(from) }  // MREMAP_DONTUNMAP keeps it
        }
        p.touched.insert(to)
        if wasForeign { p.foreign.insert(to) } else { p.foreign.remove(to) }
      }
      record(entry, got: got)
    case .mlock(let addr, let len, let flags):
      if infer { report.inferred += p.inferKernelMappings(addr, len) }
      record(entry, got: outcome { () throws(Errno) in try cpu.mlock(addr, len, flags: MlockFlags(rawValue: flags)) })
    case .munlock(let addr, let len):
      if infer { report.inferred += p.inferKernelMappings(addr, len) }
      record(entry, got: outcome { () throws(Errno) in try cpu.munlock(addr, len) })
    case .mincore(let addr, let len, let recorded):
      if infer { report.inferred += p.inferKernelMappings(addr, len) }
      var vec: [UInt8] = []
      let got = outcome { () throws(Errno) in vec = try cpu.mincore(addr, len) }
      if got == .value(0), recordedSuccess, scriptHasAccesses, let recorded,
        let diff = mincoreDifference(recorded: recorded, entry.call, engine: vec)
      {
        report.executed += 1
        mismatch(entry, expected: diff.expected, got: diff.got)
      } else {
        record(entry, got: got)
      }
    case .load(let addr, let len), .store(let addr, let len):
      if len > options.maxAccessBytes {
        report.skip("\(entry.call.name): longer than the access limit")
        return
      }
      let write: Bool
      if case .store = op { write = true } else { write = false }
      let (got, signal) = access(cpu, addr, len, write: write)
      if case .access(let o) = entry.call.result, got == .access(o), let recorded = entry.call.signal, let signal,
        let diff = signalDifference(recorded: recorded, engine: signal)
      {
        report.executed += 1
        mismatch(entry, expected: diff.expected, got: diff.got)
      } else if got == .access(.ok), let recorded = entry.call.loadedBytes,
        let diff = loadedDifference(recorded: recorded, cpu, addr, len)
      {
        report.executed += 1
        mismatch(entry, expected: diff.expected, got: diff.got)
      } else {
        record(entry, got: got)
      }
    case .maps:
      compareMaps(entry, in: p, mm: mm)
    case .open(let path, let flags):
      if inferring {
        // A traced program's files are its machine's, not the engine's: the recorded result
        // stands, with a stand-in for the file (StandInFile).
        guard case .value(let n) = entry.call.result else {
          report.skip("\(entry.call.name): failed as recorded (a file of the traced machine)")
          log(entry, "taken as recorded")
          return
        }
        if openStandIn(path: Namespace.normalize(path), flags: flags, as: Int32(truncatingIfNeeded: n.bits), in: p) != nil {
          report.standInFiles += 1
          log(entry, "a stand-in file")
        } else {
          report.skip("\(entry.call.name): no stand-in file")
        }
        return
      }
      let got = outcome { () throws(Errno) in UInt64(bitPattern: Int64(try cpu.open(path, flags: OpenFlags(rawValue: flags)))) }
      if case .value(let e) = got, case .value(let n) = entry.call.result {
        p.fds[Int32(truncatingIfNeeded: n.bits)] = Int32(truncatingIfNeeded: e)
        p.openedPaths.insert(Namespace.normalize(path))
      }
      record(entry, got: got)
    case .ftruncate(let fd, let len):
      guard let engineFD = fileDescriptor(fd, entry, in: p) else { return }
      record(entry, got: outcome { () throws(Errno) in try cpu.ftruncate(engineFD, len) })
    case .close(let fd):
      guard let engineFD = fileDescriptor(fd, entry, in: p) else { return }
      let got = outcome { () throws(Errno) in try cpu.close(engineFD) }
      if case .value = got {
        p.fds[fd] = nil
        p.standIns[fd] = nil
      }
      record(entry, got: got)
    case .pkeyAlloc(let flags, let rights):
      record(entry, got: outcome { () throws(Errno) in UInt64(try cpu.pkeyAlloc(flags: flags, accessRights: PkeyAccessRights(rawValue: rights))) })
    case .pkeyFree(let pkey):
      record(entry, got: outcome { () throws(Errno) in try cpu.pkeyFree(Int(pkey)) })
    case .pkeyMprotect(let addr, let len, let prot, let pkey):
      if infer { report.inferred += p.inferKernelMappings(addr, len, growsDown: Prot(rawValue: prot).contains(.growsDown)) }
      record(entry, got: outcome { () throws(Errno) in try cpu.pkeyMprotect(addr, len, prot: Prot(rawValue: prot), pkey: Int(pkey)) })
    case .wrpkru(let value):
      record(entry, got: outcome { () throws(Errno) in try cpu.wrpkru(value) })
    case .shmget, .shmat, .shmdt, .shmctl:
      executeShm(op, entry, in: p, cpu: cpu)
    case .exec, .clone:
      break
    }
  }

  /// `MAP_FIXED` or `MAP_FIXED_NOREPLACE`: the caller chose the address.
  static func isFixed(_ op: Operation) -> Bool {
    guard case .mmap(_, _, _, let flags, _, _) = op else { return false }
    return flags & (MapFlags.fixed | MapFlags.fixedNoReplace).rawValue != 0
  }

  /// The engine's signal against the recorded signal line: `si_code` (by number when both
  /// name one) and `si_addr`. `nil` when they agree.
  private func signalDifference(recorded: SignalRecord, engine: Signal) -> (expected: String, got: String)? {
    let name: String, code: Int32, address: UInt64
    switch engine {
    case .sigsegv(.mapErr, let a): (name, code, address) = ("SEGV_MAPERR", 1, a)
    case .sigsegv(.accErr, let a): (name, code, address) = ("SEGV_ACCERR", 2, a)
    case .sigsegv(.pkuErr, let a): (name, code, address) = ("SEGV_PKUERR", 4, a)
    case .sigbus(let a): (name, code, address) = ("BUS_ADRERR", 2, a)
    case .outOfMemory: return nil
    }
    let table = Symbols.siCode[recorded.signal] ?? [:]
    let recordedCode = table[recorded.code] ?? CallSyntax.number(Array(recorded.code.utf8)[...]).map { Int32(truncatingIfNeeded: $0.bits) }
    if recordedCode == code && recorded.address == address { return nil }
    func text(_ code: String, _ addr: UInt64) -> String { "\(recorded.signal) (\(code) at 0x\(String(addr, radix: 16)))" }
    return (text(recorded.code, recorded.address), text(name, address))
  }

  /// The bytes a load read against those the script recorded (`ScriptCall.loadedBytes`): the
  /// first byte that differs, with its address. `nil` when they agree.
  private func loadedDifference(
    recorded: [UInt8], _ cpu: CPU, _ addr: UInt64, _ len: UInt64
  ) -> (expected: String, got: String)? {
    let n = Int(min(UInt64(recorded.count), len))
    var read = [UInt8](repeating: 0, count: n)
    let failed: Bool = read.withUnsafeMutableBytes { b in
      do throws(Signal) {
        try cpu.load(addr, into: b)
        return false
      } catch {
        return true
      }
    }
    if failed { return ("ok \(ScriptPrinter.hex(recorded))", "a signal reading the bytes back") }
    guard let i = (0..<n).first(where: { read[$0] != recorded[$0] }) else {
      return recorded.count > Int(min(len, UInt64(Int.max))) ? ("\(recorded.count) bytes", "a load of \(len)") : nil
    }
    let at = "0x" + String(addr &+ UInt64(i), radix: 16)
    return ("byte \(ScriptPrinter.hex([recorded[i]])) at \(at)", ScriptPrinter.hex([read[i]]))
  }

  /// `mincore`'s vector against the recorded one, page by page as far as strace printed it
  /// (bit 0 only: the kernel leaves the other bits unused).
  private func mincoreDifference(
    recorded: [UInt8], _ call: ScriptCall, engine: [UInt8]
  ) -> (expected: String, got: String)? {
    var truncated = false
    if case .array(_, let t) = call.arguments[2] { truncated = t }
    for (i, r) in recorded.enumerated() where i >= engine.count || r & 1 != engine[i] & 1 {
      return ("page \(i) \(r & 1 == 1 ? "resident" : "not resident")", i < engine.count ? "\(engine[i] & 1)" : "no page")
    }
    if !truncated && engine.count != recorded.count {
      return ("\(recorded.count) pages", "\(engine.count)")
    }
    return nil
  }

  /// The engine fd for a recorded one. An fd the script never opened came from a call the
  /// engine does not model: the call is skipped, unless the kernel refused it with `EBADF`,
  /// which the engine can check with the number as it is.
  private func fileDescriptor(_ fd: Int32, _ entry: ScriptEntry, in p: ReplayProcess) -> Int32? {
    if let e = p.fds[fd] { return e }
    if recordedErrno(entry, is: .badFileDescriptor) { return fd }
    report.skip("\(entry.call.name): fd the script never opened")
    log(entry, "skipped (fd from an unmodelled call)")
    return nil
  }

  func recordedErrno(_ entry: ScriptEntry, is errno: Errno) -> Bool {
    if case .error(let name, _) = entry.call.result { return Symbols.errno(named: name) == errno }
    return false
  }

  /// `[addr, addr + PAGE_ALIGN(len))`, or `nil` when it wraps.
  func range(_ addr: UInt64, _ len: UInt64) -> Range<UInt64>? {
    let end = addr &+ Page.roundUp(len)
    return end > addr ? addr..<end : nil
  }

  func outcome(_ body: () throws(Errno) -> UInt64) -> Outcome {
    do throws(Errno) { return .value(try body()) } catch { return .errno(error) }
  }

  func outcome(_ body: () throws(Errno) -> Void) -> Outcome {
    do throws(Errno) {
      try body()
      return .value(0)
    } catch {
      return .errno(error)
    }
  }

  /// Loads or stores `len` bytes at `addr` in 64 KiB pieces (a store writes a fixed pattern),
  /// with the signal it ended with.
  private func access(_ cpu: CPU, _ addr: UInt64, _ len: UInt64, write: Bool) -> (Outcome, Signal?) {
    let chunk = 64 << 10
    var buffer = [UInt8](repeating: 0, count: Int(min(len, UInt64(chunk))))
    var va = addr
    var left = len
    while left > 0 {
      let n = Int(min(left, UInt64(chunk)))
      var failure: Signal?
      if write {
        do throws(Signal) { try cpu.fill(va, value: 0x5A, count: n) } catch { failure = error }
      } else {
        buffer.withUnsafeMutableBytes { b in
          do throws(Signal) {
            try cpu.load(va, into: UnsafeMutableRawBufferPointer(rebasing: b[0..<n]))
          } catch {
            failure = error
          }
        }
      }
      if let failure {
        switch failure {
        case .sigsegv: return (.access(.sigsegv), failure)
        case .sigbus: return (.access(.sigbus), failure)
        case .outOfMemory: return (.outOfMemory, failure)
        }
      }
      va &+= UInt64(n)
      left -= UInt64(n)
    }
    return (.access(.ok), nil)
  }

  private func compareMaps(_ entry: ScriptEntry, in p: ReplayProcess, mm: AddressSpace) {
    report.executed += 1
    guard case .maps(let lines) = entry.call.result else { return }
    let recorded = lines.compactMap(MapsLine.init)
    let engine = mm.mapsLines().compactMap(MapsLine.init)
    if let diff = mapsDifference(recorded: recorded, engine: engine, foreign: p.foreign, openedPaths: p.openedPaths) {
      mismatch(entry, expected: diff.expected, got: diff.got)
    } else {
      report.matched += 1
      log(entry, "ok")
    }
  }
}
