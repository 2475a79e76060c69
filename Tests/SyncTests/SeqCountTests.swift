import Faultline
import FaultlineTestSupport
import Glibc
import Synchronization
import Testing

/// A seqcount and the two fields it guards; the writer keeps them equal.
final class SeqPair: Sendable {
  let seq = SeqCount()
  let a = Atomic<UInt64>(0)
  let b = Atomic<UInt64>(0)
  init() {}

  // Copyable views of the ~Copyable counter, for `#expect`.
  var raw: UInt64 { seq.raw() }
  var isWriting: Bool { seq.isWriting }
  func readBegin() -> UInt64 { seq.readBegin() }
  func readRetry(_ s: UInt64) -> Bool { seq.readRetry(s) }

  func write(_ v: UInt64) {
    seq.writeBegin()
    a.store(v, ordering: .relaxed)
    b.store(v, ordering: .relaxed)
    seq.writeEnd()
  }

  /// A validated read: never returns a torn pair.
  func read() -> (UInt64, UInt64) {
    while true {
      let s = seq.readBegin()
      let x = a.load(ordering: .relaxed)
      let y = b.load(ordering: .relaxed)
      if !seq.readRetry(s) { return (x, y) }
    }
  }
}

extension SyncSuite {
  @Suite struct SeqCountTests {
    @Test func rawIsOddDuringWrite() {
      let p = SeqPair()
      let start = p.seq.raw()
      #expect(start & 1 == 0)
      #expect(!p.isWriting)
      #expect(p.readBegin() == start)
      #expect(!p.readRetry(start), "readRetry without a write")

      p.seq.writeBegin()
      #expect(p.raw & 1 == 1, "raw() even during a write")
      #expect(p.isWriting)
      #expect(p.readRetry(start))
      p.seq.writeEnd()
      #expect(p.raw == start + 2)
      #expect(!p.isWriting)
      #expect(p.readRetry(start), "readRetry missed a completed write")
      #expect(p.readBegin() == start + 2)

      p.write(7)
      #expect(p.read() == (7, 7))
      #expect(p.raw == start + 4)
    }

    /// Another thread sees the write in progress (odd raw, failed validation) and its
    /// `readBegin()` waits for `writeEnd()`.
    @Test func readerSeesWriteInProgressAndWaits() {
      let p = SeqPair()
      let rec = Recorder()
      for round in 0..<Scale.rounds {
        let start = p.seq.raw()
        let inWrite = Flag(), sawOdd = Flag(), ended = Flag()
        runThreads(2) { i in
          if i == 0 {
            p.seq.writeBegin()
            p.a.store(UInt64(round + 1), ordering: .relaxed)
            inWrite.set()
            rec.waitUntil("reader to see the write") { sawOdd.isSet }
            letOthersRun(10)
            p.b.store(UInt64(round + 1), ordering: .relaxed)
            ended.set()
            p.seq.writeEnd()
          } else {
            rec.waitUntil("writer to begin") { inWrite.isSet }
            let raw = p.seq.raw()
            rec.check(raw & 1 == 1, "raw() \(raw) even during a write")
            rec.check(p.seq.isWriting, "isWriting false during a write")
            rec.check(p.seq.readRetry(start), "readRetry accepted a read that overlapped a write")
            sawOdd.set()
            let s = p.seq.readBegin()
            rec.check(ended.isSet, "readBegin returned during a write")
            rec.check(s == start + 2, "readBegin \(s), expected \(start + 2)")
            let (x, y) = p.read()
            rec.check(x == UInt64(round + 1) && y == x, "read (\(x), \(y)) after the write")
          }
        }
      }
      rec.expectClean()
    }

    /// Readers using readBegin/readRetry never accept a torn pair while a writer keeps
    /// rewriting both fields; values only move forward.
    @Test func readersNeverAcceptTornPair() {
      let p = SeqPair()
      let rec = Recorder()
      let readers = 2
      let done = Flag(), started = Count(), accepted = Count(), tornSeen = Count()
      runThreads(readers + 1) { i in
        if i == readers {
          rec.waitUntil("readers to start") { started.load == readers }
          for v in 1...UInt64(Scale.seqWrites) {
            p.seq.writeBegin()
            p.a.store(v, ordering: .relaxed)
            // A window in which an unvalidated reader would see a != b.
            for _ in 0..<(v % 8 == 0 ? 20 : 1) { _ = p.a.load(ordering: .relaxed) }
            p.b.store(v, ordering: .relaxed)
            p.seq.writeEnd()
            if v % 256 == 0 { sched_yield() }
          }
          done.set()
        } else {
          started.add()
          var last: UInt64 = 0, n = 0, torn = 0
          while !done.isSet {
            let s = p.seq.readBegin()
            let x = p.a.load(ordering: .relaxed)
            let y = p.b.load(ordering: .relaxed)
            if p.seq.readRetry(s) {
              if x != y { torn += 1 }  // rejected torn reads: expected, just counted
              continue
            }
            if x != y { rec.fail("accepted a torn pair (\(x), \(y)) at seq \(s)") }
            if x < last { rec.fail("value went backwards: \(x) after \(last)") }
            last = x
            n += 1
          }
          accepted.add(n)
          tornSeen.add(torn)
        }
      }
      #expect(p.read() == (UInt64(Scale.seqWrites), UInt64(Scale.seqWrites)))
      #expect(p.raw == 2 * UInt64(Scale.seqWrites))
      #expect(accepted.load > 0)
      rec.expectClean()
    }
  }
}
