import Faultline
import FaultlineTestSupport
import Glibc
import Synchronization
import Testing

extension SyncSuite {
  @Suite struct RWSemaphoreTests {
    @Test func tryReadTryWriteAndReaderCount() {
      let s = RWSemaphore()
      #expect(s.readers == 0 && !s.isWriteLocked)
      #expect(s.tryRead())
      #expect(s.readers == 1)
      #expect(s.tryRead())
      #expect(s.readers == 2)
      #expect(!s.tryWrite(), "tryWrite succeeded with readers inside")
      #expect(!s.isWriteLocked)
      s.readUnlock()
      #expect(s.readers == 1)
      #expect(!s.tryWrite())
      s.readUnlock()
      #expect(s.readers == 0)

      #expect(s.tryWrite())
      #expect(s.isWriteLocked && s.readers == 0)
      #expect(!s.tryRead(), "tryRead succeeded while a writer holds it")
      #expect(!s.tryWrite(), "second tryWrite succeeded")
      s.writeUnlock()
      #expect(!s.isWriteLocked)

      s.readLock()
      s.readLock()
      #expect(s.readers == 2)
      s.readUnlock()
      s.readUnlock()
      s.writeLock()
      #expect(s.isWriteLocked)
      s.writeUnlock()
      #expect(s.tryRead())
      s.readUnlock()
      #expect(s.readers == 0 && !s.isWriteLocked)
    }

    @Test func downgradeTurnsWriteHoldIntoReadHold() {
      let s = RWSemaphore()
      s.writeLock()
      s.downgrade()
      #expect(!s.isWriteLocked)
      #expect(s.readers == 1)
      #expect(!s.tryWrite(), "a writer got in after downgrade while the read hold remains")
      #expect(s.tryRead(), "downgrade kept readers out")
      #expect(s.readers == 2)
      s.readUnlock()
      #expect(!s.tryWrite())
      s.readUnlock()
      #expect(s.tryWrite())
      s.writeUnlock()
    }

    /// Readers share: several threads hold read at the same moment.
    @Test func readersShare() {
      let s = RWSemaphore()
      let rec = Recorder()
      let threads = 3
      for round in 0..<Scale.rounds {
        let inside = Count()
        runThreads(threads) { _ in
          s.readLock()
          inside.add()
          rec.waitUntil("round \(round): all readers inside together") { inside.load == threads }
          rec.check(s.readers >= 1 && !s.isWriteLocked, "bad state with readers inside")
          s.readUnlock()
        }
      }
      #expect(s.readers == 0)
      rec.expectClean()
    }

    /// Readers queued behind a writer all get in, together, once it releases.
    @Test func readersBlockedByWriterAllEnterTogether() {
      let s = RWSemaphore()
      let rec = Recorder()
      let readers = 3
      for round in 0..<Scale.rounds * 4 {
        let held = Flag(), trying = Count(), inside = Count()
        runThreads(readers + 1) { i in
          if i == readers {
            s.writeLock()
            held.set()
            rec.waitUntil("readers to queue") { trying.load == readers }
            letOthersRun(10)
            rec.check(inside.load == 0, "round \(round): a reader got in while the writer held it")
            s.writeUnlock()
          } else {
            rec.waitUntil("writer to hold") { held.isSet }
            trying.add()
            s.readLock()
            inside.add()
            rec.waitUntil("round \(round): all \(readers) woken readers inside together (readers=\(s.readers))") {
              inside.load == readers
            }
            s.readUnlock()
          }
        }
      }
      #expect(s.readers == 0 && !s.isWriteLocked)
      rec.expectClean()
    }

    /// Writers exclude everyone: a plain counter guarded by the semaphore adds up, and readers
    /// never see a writer inside.
    @Test(arguments: [2, 4])
    func mutualExclusionStress(threads: Int) {
      let s = RWSemaphore()
      let rec = Recorder()
      let counter = Guarded()
      let inWriter = Flag()
      let writes = Count()
      let readersInside = Count()
      runThreads(threads) { t in
        var myWrites = 0
        for k in 0..<Scale.lockOps {
          if (k + t) % 4 == 0 {
            s.writeLock()
            if inWriter.exchange(true) { rec.fail("two writers inside") }
            if readersInside.load != 0 { rec.fail("writer inside with \(readersInside.load) readers") }
            counter.value += 1
            myWrites += 1
            inWriter.clear()
            s.writeUnlock()
          } else if k % 7 == 0, s.tryWrite() {
            if inWriter.exchange(true) { rec.fail("tryWrite let in a second writer") }
            counter.value += 1
            myWrites += 1
            inWriter.clear()
            s.writeUnlock()
          } else {
            s.readLock()
            readersInside.add()
            if inWriter.isSet { rec.fail("reader inside with a writer") }
            _ = counter.value  // a guarded read: TSan checks it is ordered against the writes
            readersInside.add(-1)
            s.readUnlock()
          }
        }
        writes.add(myWrites)
      }
      s.readLock()
      #expect(counter.value == writes.load)
      s.readUnlock()
      #expect(s.readers == 0 && !s.isWriteLocked)
      rec.expectClean()
    }

    /// Writer preference: while a reader holds it and a writer waits, `tryRead()` fails and a new
    /// `readLock()` waits until that writer is done.
    @Test func waitingWriterHoldsOffNewReaders() {
      let s = RWSemaphore()
      let rec = Recorder()
      for round in 0..<Scale.rounds {
        let clock = Clock()
        let held = Flag(), writerTrying = Flag(), lateReaderTrying = Flag(), lateReaderIn = Flag()
        let holderReleased = Count(-1), writerAcquired = Count(-1), writerReleased = Count(-1), lateAcquired = Count(-1)
        runThreads(3) { i in
          switch i {
          case 0:  // first reader
            s.readLock()
            held.set()
            rec.waitUntil("late reader to try") { lateReaderTrying.isSet }
            letOthersRun(20)
            rec.check(!lateReaderIn.isSet, "round \(round): a new reader got past a waiting writer")
            holderReleased.store(clock.stamp())
            s.readUnlock()
          case 1:  // writer
            rec.waitUntil("first reader to hold") { held.isSet }
            writerTrying.set()
            s.writeLock()
            writerAcquired.store(clock.stamp())
            rec.check(!lateReaderIn.isSet, "round \(round): late reader inside when the writer got in")
            letOthersRun(5)
            writerReleased.store(clock.stamp())
            s.writeUnlock()
          default:  // late reader
            rec.waitUntil("writer to try") { writerTrying.isSet }
            // The first reader holds until we say so, so a failing tryRead means a writer waits.
            rec.waitUntil("writer to queue (tryRead to fail)") {
              if s.tryRead() { s.readUnlock(); return false }
              return true
            }
            if s.tryRead() { s.readUnlock(); rec.fail("round \(round): tryRead succeeded while a writer waits") }
            lateReaderTrying.set()
            s.readLock()
            lateAcquired.store(clock.stamp())
            lateReaderIn.set()
            rec.check(!s.isWriteLocked, "reader inside with the writer")
            s.readUnlock()
          }
        }
        let h = holderReleased.load, wa = writerAcquired.load, wr = writerReleased.load, la = lateAcquired.load
        #expect(h < wa && wa < wr && wr < la,
                "round \(round): order holderReleased \(h), writerAcquired \(wa), writerReleased \(wr), lateReader \(la)")
      }
      #expect(s.readers == 0 && !s.isWriteLocked)
      rec.expectClean()
    }

    /// After `downgrade()` a reader waiting on the writer gets in while the downgraded holder
    /// still holds read.
    @Test func downgradeLetsWaitingReaderIn() {
      let s = RWSemaphore()
      let rec = Recorder()
      for round in 0..<Scale.rounds {
        let clock = Clock()
        let held = Flag(), readerTrying = Flag(), readerIn = Flag()
        let downgraded = Count(-1), readerAcquired = Count(-1)
        runThreads(2) { i in
          if i == 0 {
            s.writeLock()
            held.set()
            rec.waitUntil("reader to try") { readerTrying.isSet }
            letOthersRun(20)
            rec.check(!readerIn.isSet, "round \(round): reader inside while the writer held it")
            downgraded.store(clock.stamp())
            s.downgrade()
            rec.check(!s.tryWrite(), "tryWrite succeeded after downgrade")
            rec.waitUntil("round \(round): waiting reader to join the downgraded hold") { readerIn.isSet }
            s.readUnlock()
          } else {
            rec.waitUntil("writer to hold") { held.isSet }
            readerTrying.set()
            s.readLock()
            readerAcquired.store(clock.stamp())
            rec.check(s.readers == 2 && !s.isWriteLocked, "round \(round): readers \(s.readers) after downgrade")
            readerIn.set()
            s.readUnlock()
          }
        }
        #expect(downgraded.load < readerAcquired.load)
      }
      #expect(s.readers == 0 && !s.isWriteLocked)
      rec.expectClean()
    }

    /// After `downgrade()` a waiting writer stays out until the read hold is released.
    @Test func downgradeStillExcludesWaitingWriter() {
      let s = RWSemaphore()
      let rec = Recorder()
      for round in 0..<Scale.rounds {
        let clock = Clock()
        let held = Flag(), writerTrying = Flag()
        let released = Count(-1), writerAcquired = Count(-1)
        runThreads(2) { i in
          if i == 0 {
            s.writeLock()
            held.set()
            rec.waitUntil("writer to try") { writerTrying.isSet }
            letOthersRun(20)
            s.downgrade()
            rec.check(!s.tryWrite(), "tryWrite succeeded after downgrade")
            letOthersRun(20)
            rec.check(writerAcquired.load == -1, "round \(round): writer got in during the downgraded hold")
            released.store(clock.stamp())
            s.readUnlock()
          } else {
            rec.waitUntil("holder to hold") { held.isSet }
            writerTrying.set()
            s.writeLock()
            writerAcquired.store(clock.stamp())
            s.writeUnlock()
          }
        }
        #expect(released.load < writerAcquired.load, "round \(round)")
      }
      #expect(s.readers == 0 && !s.isWriteLocked)
      rec.expectClean()
    }
  }
}
