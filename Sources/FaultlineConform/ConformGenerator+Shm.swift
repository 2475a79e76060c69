/// The generator's System V shared-memory ops (issue 13, rule 9).

import Faultline

extension ConformGenerator {
  /// Keys besides `IPC_PRIVATE`: a few fixed ones, so that sequences meet `EEXIST` and `ENOENT`
  /// (the host side removes whatever its child made, so no key outlives a sequence).
  static let shmKeys: [Int32] = [0x464C_0001, 0x464C_0002]

  /// One of shmget, shmat, shmdt, shmctl. Segments are named by slot (`ConformOp.shmget`);
  /// attaches go into the window (a hint-less one would land outside it).
  func genShm(_ kind: String, _ rng: inout SplitMix64, _ state: inout State) -> ConformOp {
    // Before any segment, mostly make one (an op on none is EINVAL, a row already covered).
    var kind = kind
    if state.segments == 0 && Int.random(in: 0..<4, using: &rng) != 0 { kind = "shmget" }
    let slot = state.segments == 0 || Int.random(in: 0..<12, using: &rng) == 0
      ? -1 : Int.random(in: 0..<min(state.segments, 4), using: &rng)
    switch kind {
    case "shmget":
      let key: Int32 = Int.random(in: 0..<3, using: &rng) == 0 ? Self.shmKeys.randomElement(using: &rng)! : 0
      var size = UInt64.random(in: 1...4, using: &rng) << Page.shift
      switch Int.random(in: 0..<12, using: &rng) {
      case 0: size = 56  // PostgreSQL's header segment
      case 1: size = 3 * Page.size + 5
      case 2: size = 0  // EINVAL (SHMMIN), or any size for an existing key
      default: break
      }
      var flags: Int32 = 0o1000 | 0o600  // IPC_CREAT|0600
      switch Int.random(in: 0..<10, using: &rng) {
      case 0: flags |= 0o2000  // IPC_EXCL
      case 1: flags = 0o600  // no IPC_CREAT: ENOENT unless the key exists
      case 2: flags = 0o1000 | 0o400  // read-only mode: a read-write attach is EACCES
      case 3: flags = 0o1000 | 0o700  // SHM_EXEC allowed
      default: break
      }
      let op = ConformOp.shmget(key: key, size: size, flags: flags, slot: state.segments % 4)
      state.segments += 1
      return op
    case "shmat":
      var addr = pageAddress(&rng, state)
      var flags: Int32 = 0
      switch Int.random(in: 0..<16, using: &rng) {
      case 0, 1: flags = 0o10000  // SHM_RDONLY
      case 2, 3: flags = 0o40000  // SHM_REMAP
      case 4: flags = 0o100000  // SHM_EXEC
      case 5:
        flags = 0o20000  // SHM_RND
        addr += UInt64.random(in: 1...Page.offsetMask, using: &rng)
      case 6: addr += UInt64.random(in: 1...Page.offsetMask, using: &rng)  // unaligned: EINVAL
      case 7: flags = 0o40000 | 0o10000
      case 8...13: flags = 0o40000  // SHM_REMAP: over whatever the window holds
      default: break
      }
      // Four pages at most: stay in the window whatever the segment's size.
      if addr > window.end - 4 * Page.size { addr = window.end - 4 * Page.size }
      state.markShared(Page.roundDown(addr), 4 * Page.size)
      state.mapped.append((Page.roundDown(addr), 4 * Page.size))
      if state.mapped.count > 8 { state.mapped.removeFirst() }
      state.attached.append(Page.roundDown(addr))
      return .shmat(slot: slot, addr: addr, flags: flags)
    case "shmdt":
      // Mostly where an attach went (shmdt wants the attach address), else anywhere.
      var addr = Int.random(in: 0..<10, using: &rng) < 7 ? state.attached.randomElement(using: &rng) ?? pageAddress(&rng, state) : pageAddress(&rng, state)
      if Int.random(in: 0..<10, using: &rng) == 0 { addr += 8 }  // unaligned: EINVAL
      return .shmdt(addr: addr)
    default:
      // IPC_RMID, IPC_STAT (nattch compared), or no such command.
      let cmd: Int32 = [0, 0, 2, 2, 2, 99].randomElement(using: &rng)!
      return .shmctl(slot: slot, cmd: cmd)
    }
  }
}
