import Faultline
import FaultlineTestSupport
import Glibc
import Testing

// errno rows of mmap and msync for file mappings (reference/errno.md), as mm/mmap.c do_mmap
// decides them (and a 6.18 host answered): a negative offset is EOVERFLOW (x86-64 passes the
// offset as an unsigned long, so file_mmap_ok refuses it), a directory is ENODEV for MAP_PRIVATE
// and MAP_SHARED alike (no f_op->mmap), MAP_SHARED_VALIDATE refuses MAP_FIXED_NOREPLACE (it is
// not in LEGACY_MAP_MASK) while plain MAP_SHARED ignores unknown bits; msync is mm/msync.c.

fileprivate let allProts = [Prot.none, Prot.read, Prot.write, rw, Prot.read | Prot.exec]
fileprivate let mappingTypes = [MapFlags.private, MapFlags.shared, MapFlags.sharedValidate]

@Suite struct FileErrnoTests {
  // MARK: mmap: the descriptor

  @Test(arguments: TestFS.allCases)
  func mmapWithABadFdIsEBADF(_ kind: TestFS) throws {
    try withFileRig(kind) { r, env in
      let fd = try env.create("data", pages: 1)
      try r.cpu.close(fd)
      for type in mappingTypes {
        for bad in [fd, -1, 999] {
          expectErrno(.badFileDescriptor) { () throws(Errno) in
            try r.cpu.mmap(0, page, prot: Prot.read, flags: type, fd: bad)
          }
        }
      }
      #expect(r.mm.mapCount == 0)
      try env.umount()
    }
  }

  @Test(arguments: TestFS.allCases)
  func mmapOfAnOPathFdIsEBADF(_ kind: TestFS) throws {
    try withFileRig(kind) { r, env in
      try r.cpu.close(try env.create("data", pages: 1))
      let fd = try r.cpu.open(env.path("data"), flags: OpenFlags.path)
      for type in mappingTypes {
        expectErrno(.badFileDescriptor) { () throws(Errno) in
          try r.cpu.mmap(0, page, prot: Prot.read, flags: type, fd: fd)
        }
      }
      try r.cpu.close(fd)
      try env.umount()
    }
  }

  @Test(arguments: TestFS.allCases)
  func mmapOfAFdNotOpenForReadingIsEACCES(_ kind: TestFS) throws {
    try withFileRig(kind) { r, env in
      try r.cpu.close(try env.create("data", pages: 1))
      let fd = try r.cpu.open(env.path("data"), flags: OpenFlags.writeOnly)
      for type in mappingTypes {
        for prot in allProts {
          expectErrno(.permissionDenied) { () throws(Errno) in
            try r.cpu.mmap(0, page, prot: prot, flags: type, fd: fd)
          }
        }
      }
      #expect(r.mm.mapCount == 0)
      try r.cpu.close(fd)
      try env.umount()
    }
  }

  @Test(arguments: TestFS.allCases)
  func sharedWritableMmapOfAReadOnlyFdIsEACCESButPrivateSucceeds(_ kind: TestFS) throws {
    try withFileRig(kind) { r, env in
      try r.cpu.close(try env.create("data", pages: 1))
      let fd = try r.cpu.open(env.path("data"), flags: OpenFlags.readOnly)
      for type in [MapFlags.shared, MapFlags.sharedValidate] {
        for prot in [Prot.write, rw] {
          expectErrno(.permissionDenied) { () throws(Errno) in
            try r.cpu.mmap(0, page, prot: prot, flags: type, fd: fd)
          }
        }
      }
      #expect(r.mm.mapCount == 0)
      // A read-only shared mapping is fine.
      let s = try r.cpu.mmap(0, page, prot: Prot.read, flags: MapFlags.shared, fd: fd)
      #expect(try r.cpu.loadByte(s) == UInt8(ascii: "A"))
      // MAP_PRIVATE + PROT_WRITE succeeds: a write makes a private copy.
      let p = try r.cpu.mmap(0, page, prot: rw, flags: MapFlags.private, fd: fd)
      try r.cpu.storeByte(p, UInt8(ascii: "z"))
      #expect(try r.cpu.loadByte(p) == UInt8(ascii: "z"))
      #expect(try r.cpu.loadByte(s) == UInt8(ascii: "A"))
      try r.cpu.munmap(s, page)
      try r.cpu.munmap(p, page)
      try r.cpu.close(fd)
      try env.umount()
    }
  }

  @Test(arguments: TestFS.allCases)
  func mmapOfADirectoryIsENODEV(_ kind: TestFS) throws {
    try withFileRig(kind) { r, env in
      _ = try env.fs.mkdir("/sub")
      for dir in [env.mountPoint, env.path("sub")] {
        let fd = try r.cpu.open(dir, flags: OpenFlags.readOnly | OpenFlags.directory)
        for type in mappingTypes {
          expectErrno(.operationNotSupportedByDevice) { () throws(Errno) in
            try r.cpu.mmap(0, page, prot: Prot.read, flags: type, fd: fd)
          }
        }
        try r.cpu.close(fd)
      }
      #expect(r.mm.mapCount == 0)
      try env.umount()
    }
  }

  // MARK: mmap: the offset

  @Test(arguments: TestFS.allCases)
  func mmapPastTheLargestFileOffsetIsEOVERFLOW(_ kind: TestFS) throws {
    try withFileRig(kind) { r, env in
      let fd = try env.create("data", pages: 1)
      let last = Int64.max & ~0xFFF
      for type in [MapFlags.private, MapFlags.shared] {
        for (offset, length) in [(last, 2 * page), (last, page), (last - Int64(page), 2 * page)] {
          expectErrno(.overflow) { () throws(Errno) in
            try r.cpu.mmap(0, length, prot: Prot.read, flags: type, fd: fd, offset: offset)
          }
        }
      }
      #expect(r.mm.mapCount == 0)
      // The last offset a 1-page mapping may have is MAX_LFS_FILESIZE - 4096 rounded down.
      let ok = try r.cpu.mmap(0, page, prot: Prot.read, flags: MapFlags.shared, fd: fd, offset: last - Int64(page))
      try r.cpu.munmap(ok, page)
      try r.cpu.close(fd)
      try env.umount()
    }
  }

  @Test(arguments: TestFS.allCases)
  func mmapWithANegativeOffsetIsEOVERFLOW(_ kind: TestFS) throws {
    try withFileRig(kind) { r, env in
      let fd = try env.create("data", pages: 1)
      for type in [MapFlags.private, MapFlags.shared] {
        for offset in [-Int64(page), Int64.min, -Int64(16 * page)] {
          expectErrno(.overflow) { () throws(Errno) in
            try r.cpu.mmap(0, page, prot: Prot.read, flags: type, fd: fd, offset: offset)
          }
        }
      }
      // An unaligned negative offset fails the alignment check first.
      expectErrno(.invalidArgument) { () throws(Errno) in
        try r.cpu.mmap(0, page, prot: Prot.read, flags: MapFlags.shared, fd: fd, offset: -1)
      }
      #expect(r.mm.mapCount == 0)
      try r.cpu.close(fd)
      try env.umount()
    }
  }

  /// Found by the replay fuzzer (the engine trapped): a length beyond MAX_LFS_FILESIZE fails
  /// placement first, with ENOMEM, as on the host (`mmap(NULL, 0x8000000000001000, PROT_READ,
  /// MAP_SHARED, fd, 0) = -1 ENOMEM`), before file_mmap_ok could say EOVERFLOW.
  @Test(arguments: TestFS.allCases)
  func mmapLongerThanAnyFileIsENOMEM(_ kind: TestFS) throws {
    try withFileRig(kind) { r, env in
      let fd = try env.create("data", pages: 1)
      for length: UInt64 in [0x8000_0000_0000_1000, 1 << 63, .max - 4096] {
        expectErrno(.noMemory) { () throws(Errno) in
          try r.cpu.mmap(0, length, prot: Prot.read, flags: MapFlags.shared, fd: fd)
        }
      }
      #expect(r.mm.mapCount == 0)
      try r.cpu.close(fd)
      try env.umount()
    }
  }

  // MARK: mmap: MAP_SHARED_VALIDATE

  @Test(arguments: TestFS.allCases)
  func sharedValidateWithAnUnknownFlagIsEOPNOTSUPP(_ kind: TestFS) throws {
    try withFileRig(kind) { r, env in
      let fd = try env.create("data", pages: 1)
      for extra in [MapFlags(rawValue: 0x200000), 0x400000, MapFlags.sync] {
        expectErrno(.notSupported) { () throws(Errno) in
          try r.cpu.mmap(0, page, prot: Prot.read, flags: MapFlags.sharedValidate | extra, fd: fd)
        }
      }
      #expect(r.mm.mapCount == 0)
      // Plain MAP_SHARED ignores the unknown bit; legacy flags pass validation.
      let a = try r.cpu.mmap(0, page, prot: Prot.read, flags: MapFlags.shared | 0x400000, fd: fd)
      let b = try r.cpu.mmap(
        0, page, prot: Prot.read, flags: MapFlags.sharedValidate | MapFlags.noReserve | MapFlags.populate, fd: fd)
      #expect(try r.cpu.loadByte(b) == UInt8(ascii: "A"))
      try r.cpu.munmap(a, page)
      try r.cpu.munmap(b, page)
      try r.cpu.close(fd)
      try env.umount()
    }
  }

  @Test(arguments: TestFS.allCases)
  func sharedValidateWithFixedNoReplaceIsEOPNOTSUPP(_ kind: TestFS) throws {
    try withFileRig(kind) { r, env in
      let fd = try env.create("data", pages: 1)
      // MAP_FIXED_NOREPLACE is not in LEGACY_MAP_MASK (the host kernel refuses it too); MAP_FIXED is.
      expectErrno(.notSupported) { () throws(Errno) in
        try r.cpu.mmap(
          0x2_0000_0000, page, prot: Prot.read, flags: MapFlags.sharedValidate | MapFlags.fixedNoReplace, fd: fd)
      }
      let a = try r.cpu.mmap(0x2_0000_0000, page, prot: Prot.read, flags: MapFlags.sharedValidate | MapFlags.fixed, fd: fd)
      #expect(a == 0x2_0000_0000)
      try r.cpu.munmap(a, page)
      try r.cpu.close(fd)
      try env.umount()
    }
  }

  // MARK: msync

  @Test(arguments: TestFS.allCases)
  func msyncRejectsBadFlagsAndUnalignedAddresses(_ kind: TestFS) throws {
    try withFileRig(kind) { r, env in
      let fd = try env.create("data", pages: 2)
      let a = try r.cpu.mmap(0, 2 * page, prot: rw, flags: MapFlags.shared, fd: fd)
      for bad in [MsyncFlags(rawValue: 8), 0x10, 0x100, MsyncFlags(rawValue: Int32.min), MsyncFlags.sync | 8] {
        expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.msync(a, page, flags: bad) }
      }
      expectErrno(.invalidArgument) { () throws(Errno) in
        try r.cpu.msync(a, page, flags: MsyncFlags.sync | MsyncFlags.async)
      }
      expectErrno(.invalidArgument) { () throws(Errno) in
        try r.cpu.msync(a, page, flags: MsyncFlags.sync | MsyncFlags.async | MsyncFlags.invalidate)
      }
      for off: UInt64 in [1, 100, 4095] {
        expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.msync(a + off, page, flags: MsyncFlags.sync) }
      }
      // The valid combinations succeed (no flags at all behaves as MS_ASYNC).
      for ok in [MsyncFlags(rawValue: 0), MsyncFlags.sync, MsyncFlags.async, MsyncFlags.invalidate,
        MsyncFlags.sync | MsyncFlags.invalidate, MsyncFlags.async | MsyncFlags.invalidate]
      {
        try r.cpu.msync(a, 2 * page, flags: ok)
      }
      // An unaligned length is rounded up.
      try r.cpu.msync(a, 1, flags: MsyncFlags.sync)
      try r.cpu.munmap(a, 2 * page)
      try r.cpu.close(fd)
      try env.umount()
    }
  }

  @Test(arguments: TestFS.allCases)
  func msyncWithZeroLengthSucceedsEvenUnmapped(_ kind: TestFS) throws {
    try withFileRig(kind) { r, env in
      try r.cpu.msync(0x1_0000_0000, 0, flags: MsyncFlags.sync)
      try r.cpu.msync(0x1_0000_0000, 0, flags: MsyncFlags.invalidate)
      try r.cpu.msync(0, 0, flags: MsyncFlags.async)
      // The flag and alignment checks still come first.
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.msync(0x1_0000_0001, 0, flags: MsyncFlags.sync) }
      expectErrno(.invalidArgument) { () throws(Errno) in try r.cpu.msync(0x1_0000_0000, 0, flags: 8) }
      // Unmapped with a length: ENOMEM; wrapping past the top: ENOMEM.
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.msync(0x1_0000_0000, page, flags: MsyncFlags.sync) }
      expectErrno(.noMemory) { () throws(Errno) in
        try r.cpu.msync(0xFFFF_FFFF_FFFF_0000, 0x2_0000, flags: MsyncFlags.async)
      }
      try env.umount()
    }
  }

  @Test(arguments: TestFS.allCases)
  func msyncOverAPartlyUnmappedRangeIsENOMEMAndSyncsTheMappedPart(_ kind: TestFS) throws {
    try withFileRig(kind) { r, env in
      let fd = try env.create("data", pages: 4)
      let a = try r.cpu.mmap(0, 4 * page, prot: rw, flags: MapFlags.shared, fd: fd)
      try r.cpu.munmap(a + page, page)
      try r.cpu.storeBytes(a + 10, Array("head".utf8))
      try r.cpu.storeBytes(a + 2 * page + 10, Array("mid!".utf8))
      try r.cpu.storeBytes(a + 3 * page + 10, Array("tail".utf8))
      // A hole in the middle: ENOMEM, but the VMAs on both sides are synced.
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.msync(a, 3 * page, flags: MsyncFlags.sync) }
      if let _ = env.hostDir {
        #expect(env.hostBytes("data", at: 10, count: 4) == Array("head".utf8))
        #expect(env.hostBytes("data", at: 2 * page + 10, count: 4) == Array("mid!".utf8))
        // Outside the range: not yet written back.
        #expect(env.hostBytes("data", at: 3 * page + 10, count: 4) == [UInt8](repeating: UInt8(ascii: "D"), count: 4))
      }
      // Starting in the hole, and running past the last VMA: ENOMEM, the mapped part synced.
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.msync(a + page, 5 * page, flags: MsyncFlags.sync) }
      if let _ = env.hostDir {
        #expect(env.hostBytes("data", at: 3 * page + 10, count: 4) == Array("tail".utf8))
      }
      // MS_ASYNC reports the hole too.
      expectErrno(.noMemory) { () throws(Errno) in try r.cpu.msync(a, 4 * page, flags: MsyncFlags.async) }
      try r.cpu.munmap(a, 4 * page)
      try r.cpu.close(fd)
      try env.umount()
    }
  }

  @Test(arguments: TestFS.allCases)
  func msyncInvalidateOverAnMlockedRangeIsEBUSY(_ kind: TestFS) throws {
    var config = AddressSpaceConfig(profile: .reference)
    config.capIPCLock = true
    try withFileRig(kind, config: config) { r, env in
      let fd = try env.create("data", pages: 2)
      let locked = try r.cpu.mmap(0, 2 * page, prot: rw, flags: MapFlags.shared | MapFlags.locked, fd: fd)
      expectErrno(.resourceBusy) { () throws(Errno) in
        try r.cpu.msync(locked, 2 * page, flags: MsyncFlags.invalidate)
      }
      expectErrno(.resourceBusy) { () throws(Errno) in
        try r.cpu.msync(locked + page, page, flags: MsyncFlags.invalidate | MsyncFlags.sync)
      }
      // Without MS_INVALIDATE the locked range syncs.
      try r.cpu.msync(locked, 2 * page, flags: MsyncFlags.sync)
      // A private locked mapping, and a locked anonymous one, are refused the same way.
      let priv = try r.cpu.mmap(0, page, prot: Prot.read, flags: MapFlags.private | MapFlags.locked, fd: fd)
      expectErrno(.resourceBusy) { () throws(Errno) in try r.cpu.msync(priv, page, flags: MsyncFlags.invalidate) }
      let anon = try r.cpu.mmap(0, page, prot: rw, flags: anonPrivate | MapFlags.locked)
      expectErrno(.resourceBusy) { () throws(Errno) in try r.cpu.msync(anon, page, flags: MsyncFlags.invalidate) }
      // An unlocked mapping next to it is fine on its own.
      let plain = try r.cpu.mmap(0, page, prot: rw, flags: MapFlags.shared, fd: fd)
      try r.cpu.msync(plain, page, flags: MsyncFlags.invalidate)
      try r.cpu.munmap(locked, 2 * page)
      try r.cpu.munmap(priv, page)
      try r.cpu.munmap(anon, page)
      try r.cpu.munmap(plain, page)
      try r.cpu.close(fd)
      try env.umount()
    }
  }
}
