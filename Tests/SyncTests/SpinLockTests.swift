import Faultline
import FaultlineTestSupport
import Glibc
import Synchronization
import Testing

extension SyncSuite {
  @Suite struct SpinLockTests {
    @Test func tryLockFailsWhileHeld() {
      let l = SpinLock.allocate()
      defer { l.deallocate() }
      #expect(!l.isLocked)
      #expect(l.tryLock())
      #expect(l.isLocked)
      #expect(!l.tryLock(), "tryLock succeeded on a held lock")
      l.unlock()
      #expect(!l.isLocked)
      l.lock()
      #expect(!l.tryLock())
      // A copy is a view of the same word.
      let copy = l
      #expect(copy.isLocked && !copy.tryLock())
      copy.unlock()
      #expect(!l.isLocked)
      #expect(l.tryLock())
      l.unlock()
    }

    /// A lock word owned by someone else (as the PTL in a page-table frame's metadata).
    @Test func wrapsExternalWord() {
      let word = UnsafeMutablePointer<Atomic<UInt32>>.allocate(capacity: 1)
      word.initialize(to: Atomic(0))
      defer { word.deallocate() }
      let l = SpinLock(word: word)
      l.lock()
      #expect(word.pointee.load(ordering: .relaxed) != 0)
      #expect(!SpinLock(word: word).tryLock())
      l.unlock()
      #expect(word.pointee.load(ordering: .relaxed) == 0)
    }

    /// Another thread's tryLock fails while the lock is held, and its lock() waits for unlock().
    @Test func lockWaitsForHolder() {
      let l = SpinLock.allocate()
      defer { l.deallocate() }
      let rec = Recorder()
      for round in 0..<Scale.rounds {
        let clock = Clock()
        let held = Flag(), tried = Flag()
        let released = Count(-1), acquired = Count(-1)
        runThreads(2) { i in
          if i == 0 {
            l.lock()
            held.set()
            rec.waitUntil("other thread to try") { tried.isSet }
            letOthersRun(10)
            released.store(clock.stamp())
            l.unlock()
          } else {
            rec.waitUntil("holder") { held.isSet }
            rec.check(!l.tryLock(), "round \(round): tryLock succeeded while another thread held the lock")
            tried.set()
            l.lock()
            acquired.store(clock.stamp())
            l.unlock()
          }
        }
        #expect(released.load < acquired.load, "round \(round)")
      }
      #expect(!l.isLocked)
      rec.expectClean()
    }

    /// Mutual exclusion under contention: a plain counter guarded by the lock adds up and no two
    /// threads are ever inside at once.
    @Test(arguments: [2, 3, 4])
    func mutualExclusionStress(threads: Int) {
      let l = SpinLock.allocate()
      defer { l.deallocate() }
      let rec = Recorder()
      let counter = Guarded()
      let inside = Flag()
      let viaTry = Count()
      runThreads(threads) { t in
        var tries = 0
        for k in 0..<Scale.lockOps {
          if k % 5 == t % 5, l.tryLock() {
            tries += 1
          } else {
            l.lock()
          }
          if inside.exchange(true) { rec.fail("two threads inside the spinlock") }
          counter.value += 1
          inside.clear()
          l.unlock()
        }
        viaTry.add(tries)
      }
      #expect(counter.value == threads * Scale.lockOps)
      #expect(!l.isLocked)
      rec.expectClean()
    }
  }
}
