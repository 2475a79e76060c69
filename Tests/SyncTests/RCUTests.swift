// `@testable` only to read the domain's epoch, so that a reader can enter strictly after a
// grace period has started (`readerAfterSynchronizeStartIsNotWaitedFor`, debug builds only).
#if DEBUG
@testable import Faultline
#else
import Faultline
#endif
import FaultlineTestSupport
import Glibc
import Synchronization
import Testing

/// Both write-side paths: membarrier (if the kernel grants it) and the fence fallback.
let membarrierModes = [true, false]

/// How the stress writer retires an old node.
enum Reclaim: String, Sendable, CaseIterable, CustomTestStringConvertible {
  case synchronize, callRCU
  var testDescription: String { rawValue }
}

/// A published pointer for the stress test.
final class Published: @unchecked Sendable {
  let pointer = Atomic<UnsafeMutableRawPointer?>(nil)
}

private let magic: UInt64 = 0x600D_F00D_CAFE_BABE
private let poison: UInt64 = 0xDEAD_DEAD_DEAD_DEAD
private let nodeWords = 8

// Nodes are accessed through typed pointers: their subscripts are transparent, so the accesses
// are compiled (and instrumented by TSan) here, unlike the stdlib's raw `load`/`storeBytes`.
private func words(_ p: UnsafeMutableRawPointer) -> UnsafeMutablePointer<UInt64> {
  p.assumingMemoryBound(to: UInt64.self)
}

private func makeNode(_ generation: UInt64) -> UnsafeMutableRawPointer {
  let p = UnsafeMutablePointer<UInt64>.allocate(capacity: nodeWords)
  for w in 0..<nodeWords { p[w] = w == 1 ? generation : magic }
  return UnsafeMutableRawPointer(p)
}

private func poisonAndFree(_ raw: UnsafeMutableRawPointer) {
  let p = words(raw)
  for w in 0..<nodeWords { p[w] = poison }
  p.deallocate()
}

extension SyncSuite {
  @Suite struct RCUTests {
    @Test(arguments: membarrierModes)
    func fenceFallbackIsSelectable(membarrier: Bool) {
      let d = RCUDomain(useMembarrier: membarrier)
      if !membarrier { #expect(!d.usesMembarrier) }
      #expect(d.pendingCallbacks == 0)
      // No reader: a grace period completes at once, and counts.
      let before = d.gracePeriods.load(ordering: .relaxed)
      d.synchronize()
      #expect(d.gracePeriods.load(ordering: .relaxed) == before + 1)
    }

    /// A reader that entered before `synchronize()` holds it up until it leaves.
    @Test(arguments: membarrierModes)
    func synchronizeWaitsForPreexistingReader(membarrier: Bool) {
      let d = RCUDomain(useMembarrier: membarrier)
      let rec = Recorder()
      for round in 0..<Scale.rounds {
        let readerIn = Flag(), writerEntering = Flag(), readerLeaving = Flag(), syncReturned = Flag()
        runThreads(2) { i in
          if i == 0 {
            guard let r = try? d.register() else { return rec.fail("register") }
            r.readLock()
            readerIn.set()
            rec.waitUntil("writer to enter synchronize") { writerEntering.isSet }
            letOthersRun()
            rec.check(!syncReturned.isSet, "round \(round): synchronize returned while a pre-existing reader was inside")
            readerLeaving.set()
            r.readUnlock()
          } else {
            rec.waitUntil("reader to enter") { readerIn.isSet }
            writerEntering.set()
            d.synchronize()
            syncReturned.set()
            rec.check(readerLeaving.isSet, "round \(round): synchronize returned before the reader left")
          }
        }
      }
      rec.expectClean()
    }

    #if DEBUG
    /// A reader that enters once a grace period has started is not waited for: it stays inside
    /// until `synchronize()` has returned (a wait for it would deadlock; the watchdog reports it).
    @Test(arguments: membarrierModes)
    func readerAfterSynchronizeStartIsNotWaitedFor(membarrier: Bool) {
      let d = RCUDomain(useMembarrier: membarrier)
      let rec = Recorder()
      for round in 0..<Scale.rounds {
        let startEpoch = d.epoch.pointee.load(ordering: .sequentiallyConsistent)
        let oldIn = Flag(), newIn = Flag(), oldLeaving = Flag(), syncReturned = Flag()
        runThreads(3) { i in
          switch i {
          case 0:  // old reader: holds the grace period open until the new reader is inside
            guard let r = try? d.register() else { return rec.fail("register") }
            r.readLock()
            oldIn.set()
            rec.waitUntil("new reader to enter") { newIn.isSet }
            letOthersRun(20)
            oldLeaving.set()
            r.readUnlock()
          case 1:  // writer
            rec.waitUntil("old reader to enter") { oldIn.isSet }
            d.synchronize()
            syncReturned.set()
            rec.check(oldLeaving.isSet, "round \(round): synchronize returned before the old reader left")
          default:  // new reader: enters only once the writer has advanced the epoch
            guard let r = try? d.register() else { return rec.fail("register") }
            rec.waitUntil("the grace period to start") {
              d.epoch.pointee.load(ordering: .sequentiallyConsistent) > startEpoch
            }
            r.readLock()
            newIn.set()
            rec.waitUntil("round \(round): synchronize to return while a later reader is inside") {
              syncReturned.isSet
            }
            r.readUnlock()
          }
        }
      }
      rec.expectClean()
    }
    #endif

    /// Nested read sections: one unlock of two keeps the section (and the grace period) open.
    @Test(arguments: membarrierModes)
    func nestedReadSections(membarrier: Bool) throws {
      let d = RCUDomain(useMembarrier: membarrier)
      do {
        let r = try d.register()
        #expect(!r.isReading)
        r.readLock()
        r.readLock()
        #expect(r.isReading)
        r.readUnlock()
        #expect(r.isReading)
        r.readUnlock()
        #expect(!r.isReading)
        // Outside any section the same thread may wait for a grace period.
        d.synchronize()
        // The value-type read side drives the same slot.
        r.side.lock()
        #expect(r.isReading && r.side.isReading)
        r.side.unlock()
        #expect(!r.isReading)
      }

      let rec = Recorder()
      let readerIn = Flag(), writerEntering = Flag(), readerLeaving = Flag(), syncReturned = Flag()
      runThreads(2) { i in
        if i == 0 {
          guard let r = try? d.register() else { return rec.fail("register") }
          r.readLock()
          r.readLock()
          r.readUnlock()
          rec.check(r.isReading, "one unlock of a nested section left the section")
          readerIn.set()
          rec.waitUntil("writer to enter synchronize") { writerEntering.isSet }
          letOthersRun()
          rec.check(!syncReturned.isSet, "synchronize returned while the outer section was still open")
          readerLeaving.set()
          r.readUnlock()
          rec.check(!r.isReading, "section still open after the last unlock")
        } else {
          rec.waitUntil("reader to enter") { readerIn.isSet }
          writerEntering.set()
          d.synchronize()
          syncReturned.set()
          rec.check(readerLeaving.isSet, "synchronize returned before the outer section ended")
        }
      }
      rec.expectClean()
    }

    /// `callRCU` defers a callback past the read sections open at the time; `barrier()` runs it.
    @Test(arguments: membarrierModes)
    func callRCUWaitsForGracePeriod(membarrier: Bool) {
      let d = RCUDomain(useMembarrier: membarrier)
      d.batchLimit = 1 << 30
      let rec = Recorder()
      let readerIn = Flag(), barrierEntering = Flag(), readerLeaving = Flag(), ran = Flag()
      runThreads(2) { i in
        if i == 0 {
          guard let r = try? d.register() else { return rec.fail("register") }
          r.readLock()
          readerIn.set()
          rec.waitUntil("writer to enter barrier") { barrierEntering.isSet }
          letOthersRun()
          readerLeaving.set()
          r.readUnlock()
        } else {
          rec.waitUntil("reader to enter") { readerIn.isSet }
          let gp = d.gracePeriods.load(ordering: .relaxed)
          d.callRCU {
            rec.check(readerLeaving.isSet, "callback ran while a pre-existing reader was inside")
            ran.set()
          }
          rec.check(!ran.isSet, "callRCU ran the callback at once")
          rec.check(d.pendingCallbacks == 1, "pendingCallbacks \(d.pendingCallbacks), expected 1")
          barrierEntering.set()
          d.barrier()
          rec.check(ran.isSet, "barrier returned before the callback ran")
          rec.check(d.pendingCallbacks == 0, "callbacks left after barrier")
          rec.check(d.gracePeriods.load(ordering: .relaxed) > gp, "barrier ran callbacks without a grace period")
        }
      }
      rec.expectClean()
    }

    /// Every callback queued before `barrier()` has run when it returns, each exactly once.
    @Test(arguments: membarrierModes)
    func barrierRunsEveryQueuedCallback(membarrier: Bool) {
      let d = RCUDomain(useMembarrier: membarrier)
      d.batchLimit = 1 << 30
      let n = 100
      let counts = UnsafeMutablePointer<Int>.allocate(capacity: n)
      counts.initialize(repeating: 0, count: n)
      defer { counts.deallocate() }
      for k in 0..<n { d.callRCU { counts[k] += 1 } }
      #expect(d.pendingCallbacks == n)
      #expect((0..<n).allSatisfy { counts[$0] == 0 })
      d.barrier()
      #expect(d.pendingCallbacks == 0)
      #expect((0..<n).allSatisfy { counts[$0] == 1 })
      // An empty barrier is harmless and runs nothing again.
      d.barrier()
      #expect((0..<n).allSatisfy { counts[$0] == 1 })
    }

    /// Reaching `batchLimit` (by count or by cost) flushes the queue from the caller.
    @Test(arguments: membarrierModes)
    func batchLimitTriggersFlush(membarrier: Bool) {
      let d = RCUDomain(useMembarrier: membarrier)
      d.batchLimit = 4
      var ran = 0
      for _ in 0..<3 { d.callRCU { ran += 1 } }
      #expect(ran == 0)
      #expect(d.pendingCallbacks == 3)
      let gp = d.gracePeriods.load(ordering: .relaxed)
      d.callRCU { ran += 1 }
      #expect(ran == 4, "the 4th callback should flush the batch")
      #expect(d.pendingCallbacks == 0)
      #expect(d.gracePeriods.load(ordering: .relaxed) == gp + 1)

      d.callRCU(cost: 2) { ran += 1 }
      #expect(ran == 4)
      d.callRCU(cost: 2) { ran += 1 }
      #expect(ran == 6, "accumulated cost 4 should flush")
      d.callRCU(cost: 10) { ran += 1 }
      #expect(ran == 7, "one heavy callback flushes on its own")
      #expect(d.pendingCallbacks == 0)
    }

    /// `barrier()` must also wait for callbacks that a concurrent flush (from `callRCU` on another
    /// thread) has already taken off the queue: they were queued before the call (`rcu_barrier`).
    @Test(arguments: membarrierModes)
    func barrierWaitsForCallbacksTakenByConcurrentFlush(membarrier: Bool) {
      let d = RCUDomain(useMembarrier: membarrier)
      d.batchLimit = 2
      let rec = Recorder()
      let readerIn = Flag(), barrierEntering = Flag(), firstRan = Flag(), secondRan = Flag()
      d.callRCU { firstRan.set() }  // queued, below the limit
      runThreads(3) { i in
        switch i {
        case 0:  // reader: keeps the flusher's grace period open
          guard let r = try? d.register() else { return rec.fail("register") }
          r.readLock()
          readerIn.set()
          rec.waitUntil("barrier to be called") { barrierEntering.isSet }
          letOthersRun()
          r.readUnlock()
        case 1:  // flusher: reaches the limit, takes both callbacks, waits for the reader
          rec.waitUntil("reader to enter") { readerIn.isSet }
          d.callRCU { secondRan.set() }
        default:  // barrier: called once the flusher has taken the queue
          rec.waitUntil("flusher to take the queue") { readerIn.isSet && d.pendingCallbacks == 0 }
          barrierEntering.set()
          d.barrier()
          rec.check(firstRan.isSet && secondRan.isSet,
                    "barrier() returned before callbacks queued before it had run (they were in a concurrent flush)")
        }
      }
      rec.expectClean()
    }

    /// `register()` hands out at most `capacity` readers (then EAGAIN), and a released reader's
    /// slot is reused, clean.
    @Test(arguments: membarrierModes)
    func registrationCapacityAndSlotReuse(membarrier: Bool) throws {
      let d = RCUDomain(capacity: 2, useMembarrier: membarrier)
      do {
        let a = try d.register()
        do {
          let b = try d.register()
          expectErrno(.resourceTemporarilyUnavailable) { () throws(Errno) in try d.register() }
          b.readLock()
          b.readUnlock()
          withExtendedLifetime((a, b)) {}
        }
        // b's slot is free again; the newcomer starts outside any section.
        let c = try d.register()
        #expect(!c.isReading)
        expectErrno(.resourceTemporarilyUnavailable) { () throws(Errno) in try d.register() }
        d.synchronize()  // must not wait on a stale slot
        withExtendedLifetime((a, c)) {}
      }
      // Far more registrations than capacity, two at a time.
      for _ in 0..<50 {
        let x = try d.register()
        let y = try d.register()
        expectErrno(.resourceTemporarilyUnavailable) { () throws(Errno) in try d.register() }
        x.readLock()
        y.readLock()
        y.readUnlock()
        x.readUnlock()
        withExtendedLifetime((x, y)) {}
      }
      d.synchronize()
    }

    /// Registration from many threads at once: every reader gets its own slot.
    @Test func concurrentRegistration() {
      let d = RCUDomain(capacity: 8)
      let rec = Recorder()
      let inside = Count()
      let allIn = Flag()
      runThreads(4) { _ in
        for _ in 0..<20 {
          guard let r = try? d.register() else { return rec.fail("register under capacity failed") }
          r.readLock()
          r.readUnlock()
          withExtendedLifetime(r) {}
        }
        guard let r = try? d.register() else { return rec.fail("register under capacity failed") }
        if inside.add() == 4 { allIn.set() }
        rec.waitUntil("all four readers registered") { allIn.isSet }
        withExtendedLifetime(r) {}
      }
      rec.expectClean()
      // All slots are back.
      var held: [RCUReader] = []
      for _ in 0..<8 {
        if let r = try? d.register() { held.append(r) }
      }
      #expect(held.count == 8)
    }

    /// The classic RCU use-after-free detector: readers dereference a published node and check
    /// its magic words while a writer swaps in new nodes and poisons + frees the old ones after a
    /// grace period. A reader must never see poison.
    @Test(arguments: membarrierModes, Reclaim.allCases)
    func stressReadersNeverSeeFreedNode(membarrier: Bool, reclaim: Reclaim) {
      let d = RCUDomain(useMembarrier: membarrier)
      d.batchLimit = 8
      let head = Published()
      head.pointer.store(makeNode(0), ordering: .releasing)
      let rec = Recorder()
      let readers = 2
      let started = Count(), done = Flag(), reads = Count(), bad = Count()
      runThreads(readers + 1) { i in
        if i < readers {
          guard let r = try? d.register() else { return rec.fail("register") }
          var n = 0, lastGen: UInt64 = 0
          var first = true
          while !done.isSet || n == 0 {
            r.readLock()
            if let raw = head.pointer.load(ordering: .acquiring) {
              let p = words(raw)
              let gen = p[1]
              // Look at the node several times inside the one section.
              for _ in 0..<4 {
                for w in 0..<nodeWords where w != 1 {
                  if p[w] != magic { bad.add() }
                }
              }
              if gen == poison || p[1] != gen { bad.add() }
              if gen != poison {
                if gen < lastGen { rec.fail("generation went backwards: \(gen) after \(lastGen)") }
                lastGen = gen
              }
            }
            r.readUnlock()
            n += 1
            if first { first = false; started.add() }
            // Readers outnumber the vCPUs: let a writer that yields in synchronize() back in soon.
            if n % 32 == 0 { sched_yield() }
          }
          reads.add(n)
        } else {
          rec.waitUntil("readers to start") { started.load == readers }
          for gen in 1...UInt64(Scale.rcuSwaps) {
            let old = head.pointer.exchange(makeNode(gen), ordering: .acquiringAndReleasing)!
            switch reclaim {
            case .synchronize:
              d.synchronize()
              poisonAndFree(old)
            case .callRCU:
              d.callRCU { poisonAndFree(old) }
            }
            if gen % 16 == 0 { sched_yield() }
          }
          done.set()
        }
      }
      let last = head.pointer.exchange(nil, ordering: .acquiringAndReleasing)!
      d.synchronize()
      poisonAndFree(last)
      d.barrier()
      #expect(d.pendingCallbacks == 0)
      #expect(bad.load == 0, "readers saw a poisoned (freed) node \(bad.load) times")
      #expect(reads.load >= readers)
      rec.expectClean()
    }
  }
}
