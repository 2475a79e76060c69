import CFaultlineShims
import Glibc

/// The deterministic scheduler: 2–3 logical threads, each a real pthread, of which exactly one
/// runs at a time. A thread runs until it reaches a yield point (`yield(_:)`, called from the
/// engine's hooks or from a scenario body) or finishes, then hands control back; the controller
/// picks which parked thread runs next.
///
/// **Blocking.** A thread may block on a real lock that a parked thread holds (a fault waiting
/// for `mmap_lock` while `munmap` is paused at `afterZap`, `vmaStartWrite` waiting for a fault's
/// VMA read lock). The rule: after a grant, the controller waits for every thread that is
/// neither parked nor finished to *settle*. A thread settles as **blocked** when the kernel
/// reports it sleeping (`S` in `/proc/self/task/TID/stat`: a futex, mutex or rwlock wait) in
/// `blockedSamples` consecutive samples `sampleInterval` apart, or, for a spinning wait (a PTL
/// spin lock, an RCU grace period), once it has neither parked nor finished for `spinTimeout`.
/// A blocked thread is not a choice; it stays blocked until another thread moves, and is
/// re-examined after every step: once the lock is released it runs to its next yield point (at
/// the same time as the thread that released it, the only concurrency the explorer allows) and
/// parks there. A schedule in which no thread is parked and some are blocked for
/// `deadlockTimeout` is a deadlock, and a schedule that runs past `scheduleTimeout` is a hang:
/// both end the run with an error (the threads are set free, never waited for without a bound).
public final class Scheduler: @unchecked Sendable {
  /// Bounds of the scheduler's waits.
  public struct Options: Sendable {
    /// How often a running thread's kernel state is sampled.
    public var sampleInterval: UInt64 = 200_000
    /// Consecutive sleeping samples that make a thread blocked.
    public var blockedSamples = 5
    /// A thread neither parked nor sleeping for this long is blocked (a spinning wait).
    public var spinTimeout: UInt64 = 500_000_000
    /// No thread parked and some blocked for this long: deadlock.
    public var deadlockTimeout: UInt64 = 3_000_000_000
    /// One schedule's watchdog.
    public var scheduleTimeout: UInt64 = 30_000_000_000
    public init() {}
  }

  enum Status: Equatable {
    case starting
    case parked(String)
    case running
    case finished
  }

  /// One-letter (or short) names of the logical threads, used in schedules.
  public let names: [String]
  let options: Options
  let monitor = Monitor()
  // Guarded by `monitor`.
  var status: [Status]
  var tids: [Int32]
  var granted: Int?
  var abandoned = false
  var step = 0
  var log: [String] = []
  /// This step's parks and finishes, at most one per thread: flushed to `log` once the step
  /// settled, the granted thread's first, so that the log does not depend on how a woken
  /// thread's run raced the granted one's.
  var pending: [(thread: Int, text: String)] = []

  public init(names: [String], options: Options = Options()) {
    self.names = names
    self.options = options
    status = Array(repeating: .starting, count: names.count)
    tids = Array(repeating: 0, count: names.count)
  }

  // MARK: Thread side

  /// The logical thread the calling pthread is, if it belongs to this scheduler.
  public var currentThread: Int? {
    guard let raw = pthread_getspecific(schedulerContextKey) else { return nil }
    let ctx = Unmanaged<ThreadContext>.fromOpaque(raw).takeUnretainedValue()
    return ctx.scheduler === self ? ctx.id : nil
  }

  /// A yield point: parks the calling logical thread (labelled `label`) until it is scheduled
  /// again. A no-op on any other thread, and once the run was abandoned.
  public func yield(_ label: String) {
    guard let me = currentThread else { return }
    park(me, label)
  }

  /// The logical time: the number of the step running now (1 for the first grant). Two
  /// events with different stamps are ordered; events with the same stamp happened in one step,
  /// where a thread woken from a real lock may run at the same time as the scheduled one, so
  /// their order is not determined and checks treat them as overlapping. Per-step (rather than
  /// per-event) time keeps every observation a function of the schedule.
  public func stamp() -> Int {
    monitor.withLock { step }
  }

  func park(_ me: Int, _ label: String) {
    monitor.lock()
    defer { monitor.unlock() }
    if abandoned { return }
    status[me] = .parked(label)
    pending.append((me, "\(names[me]):\(label)"))
    if granted == me { granted = nil }
    monitor.broadcast()
    let deadline = monotonicNow() + options.scheduleTimeout + options.deadlockTimeout
    while granted != me && !abandoned {
      if monotonicNow() > deadline {
        abandoned = true
        break
      }
      monitor.wait(nanoseconds: 50_000_000)
    }
    status[me] = .running
  }

  private func finish(_ me: Int) {
    monitor.withLock {
      status[me] = .finished
      pending.append((me, "\(names[me]):end"))
      if granted == me { granted = nil }
      monitor.broadcast()
    }
  }

  // MARK: Controller side

  /// What one run did.
  public struct Run: Sendable {
    /// The threads granted, in order: the schedule actually run.
    public var schedule: [Int] = []
    /// At each step, the threads that were parked (the choices) and those that were blocked.
    public var enabled: [[Int]] = []
    public var blocked: [[Int]] = []
    /// Every park and finish, in order ("F:afterLookup", "W:end").
    public var log: [String] = []
    /// A deadlock, a hang, an infeasible replayed step, or a divergence from a DFS prefix.
    public var error: String?
    /// Whether every thread finished (if not, the scenario's state must be left alone).
    public var allFinished = false
  }

  /// Runs `bodies` (one per name) under `choose(enabled, step)`, which returns the thread to
  /// run from the parked ones (sorted), or `nil` to stop with an error (an infeasible replay).
  /// `quiescent(step)` runs on the controller whenever no thread is running (every thread
  /// parked, blocked or finished): scenarios check invariants there, without taking locks a
  /// parked thread may hold.
  public func run(
    _ bodies: [@Sendable () -> Void],
    choose: ([Int], Int) -> Int?,
    quiescent: (Int) -> Void = { _ in }
  ) -> Run {
    precondition(bodies.count == names.count)
    var run = Run()
    let started = monotonicNow()
    // One at a time, each to its start point, so that even the start order is deterministic.
    for i in bodies.indices {
      spawn(i, bodies[i])
      let deadline = monotonicNow() + options.deadlockTimeout
      monitor.withLock {
        while status[i] == .starting && monotonicNow() < deadline { monitor.wait(nanoseconds: 1_000_000) }
      }
    }
    while true {
      let settled = settle(since: started)
      if let error = settled.error {
        run.error = error
        break
      }
      let newlyBlocked = settled.blocked.filter { !(run.blocked.last ?? []).contains($0) }
      let first = run.schedule.last ?? -1
      monitor.withLock {
        log += pending.sorted { ($0.thread == first ? -1 : $0.thread) < ($1.thread == first ? -1 : $1.thread) }.map(\.text)
        pending.removeAll()
        for b in newlyBlocked { log.append("\(names[b]):blocked") }
      }
      quiescent(run.schedule.count)
      let (enabled, done) = monitor.withLock { () -> ([Int], Bool) in
        let e = status.indices.filter { if case .parked = status[$0] { return true } else { return false } }
        return (e, status.allSatisfy { $0 == .finished })
      }
      if done { break }
      guard let choice = choose(enabled, run.schedule.count) else {
        run.error = "no feasible choice at step \(run.schedule.count + 1): parked \(enabled.map { names[$0] })"
        break
      }
      run.enabled.append(enabled)
      run.blocked.append(settled.blocked)
      run.schedule.append(choice)
      monitor.withLock {
        granted = choice
        step += 1
        status[choice] = .running
        monitor.broadcast()
      }
    }
    if run.error != nil { run.allFinished = abandon() } else { run.allFinished = true }
    run.log = monitor.withLock { log + pending.map(\.text) }
    return run
  }

  /// Waits until no thread runs: each is parked, finished or blocked (see the type's notes).
  private func settle(since started: UInt64) -> (blocked: [Int], error: String?) {
    let begin = monotonicNow()
    var sleeping = Array(repeating: 0, count: names.count)
    while true {
      let (snapshot, tidList) = monitor.withLock { (status, tids) }
      let active = snapshot.indices.filter { snapshot[$0] == .running || snapshot[$0] == .starting }
      if active.isEmpty { return ([], nil) }
      let now = monotonicNow()
      for i in active {
        if tidList[i] != 0 && kernelThreadState(tidList[i]) == "S" { sleeping[i] += 1 } else { sleeping[i] = 0 }
      }
      let spunOut = now - begin > options.spinTimeout
      let allBlocked = active.allSatisfy { snapshot[$0] == .running && (sleeping[$0] >= options.blockedSamples || spunOut) }
      if allBlocked {
        let anyParked = snapshot.contains { if case .parked = $0 { return true } else { return false } }
        if anyParked { return (active, nil) }
        if now - begin > options.deadlockTimeout {
          return (active, "deadlock: \(active.map { names[$0] }) blocked and no thread can run")
        }
      }
      if now - started > options.scheduleTimeout {
        return (active, "hang: the schedule ran past \(options.scheduleTimeout / 1_000_000_000) s")
      }
      monitor.withLock {
        // Woken early by any park or finish.
        monitor.wait(nanoseconds: options.sampleInterval)
      }
    }
  }

  /// Sets every thread free (yield points return at once) and waits, bounded, for them to
  /// finish. `false` when some did not: their state is left alone (leaked), never torn down.
  private func abandon() -> Bool {
    monitor.withLock {
      abandoned = true
      monitor.broadcast()
    }
    let deadline = monotonicNow() + 5_000_000_000
    while monotonicNow() < deadline {
      if monitor.withLock({ status.allSatisfy { $0 == .finished } }) { return true }
      usleep(1000)
    }
    return false
  }

  private func spawn(_ id: Int, _ body: @escaping @Sendable () -> Void) {
    let ctx = ThreadContext(scheduler: self, id: id, body: body)
    let raw = Unmanaged.passRetained(ctx).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { p in
      let ctx = Unmanaged<ThreadContext>.fromOpaque(p!)
      pthread_setspecific(schedulerContextKey, p)
      ctx.takeUnretainedValue().main()
      pthread_setspecific(schedulerContextKey, nil)
      ctx.release()
      return nil
    }, raw)
    if rc != 0 {
      Unmanaged<ThreadContext>.fromOpaque(raw).release()
      monitor.withLock {
        status[id] = .finished
        log.append("\(names[id]):pthread_create failed (\(rc))")
      }
      return
    }
    pthread_detach(thread)
  }

  fileprivate func threadMain(_ ctx: ThreadContext) {
    let id = ctx.id
    monitor.withLock { tids[id] = fl_gettid() }
    park(id, "start")
    ctx.runBody()
    finish(id)
  }
}

/// What a scheduler thread knows about itself (the pthread-specific value).
final class ThreadContext: @unchecked Sendable {
  let scheduler: Scheduler
  let id: Int
  /// Dropped as soon as it returns, before the thread reports itself finished: what the body
  /// captured (a file, a CPU handle) must be gone when the controller tears the scenario down.
  private var body: (@Sendable () -> Void)?
  init(scheduler: Scheduler, id: Int, body: @escaping @Sendable () -> Void) {
    self.scheduler = scheduler
    self.id = id
    self.body = body
  }
  func main() { scheduler.threadMain(self) }
  func runBody() {
    body?()
    body = nil
  }
}

let schedulerContextKey: pthread_key_t = {
  var key = pthread_key_t()
  pthread_key_create(&key, nil)
  return key
}()
