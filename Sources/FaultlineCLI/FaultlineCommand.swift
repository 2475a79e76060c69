import ArgumentParser

/// The `faultline` command line (the executable target only calls `main()`).
public struct FaultlineCommand: ParsableCommand {
  public init() {}
  public static let configuration = CommandConfiguration(
    commandName: "faultline",
    abstract: "A Linux-faithful address space in user space, with the kernel's page-fault locking designs.",
    discussion: """
      Faultline runs VMAs, 4-level page tables, a frame arena, file systems and the mm system \
      calls in one process, and measures the page-fault path under four locking designs \
      (mmap_lock, SPF v12, Lespinasse's mm-wide sequence, per-VMA locks). \
      `faultline bench` is the main job.
      """,
    subcommands: [
      Bench.self, Demo.self, Explore.self, Conform.self, Replay.self, Profile.self, FaultCost.self, PlacementBench.self,
    ],
    defaultSubcommand: Bench.self
  )
}
