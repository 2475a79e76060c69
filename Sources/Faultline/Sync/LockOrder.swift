/// Faultline's lock order, written once; every other comment that needs it points here (the
/// role of "Lock ordering in mm" at the top of Linux's `mm/rmap.c`).
///
/// Read it as Linux's tree: a lock may be taken while holding any of the locks above it on its
/// own branch, and never while holding one below it. Locks on different branches are never
/// held together. A lock listed twice is reached from two places; it takes the same locks
/// below it in both.
///
/// ```
/// Inode.truncateLock                      i_rwsem
///   AddressSpace.mmapLock                 mmap_lock (fork then takes the child's, nested)
///     (mmapSeq, VMA.vmSequence)           sequence counts: made odd here, never waited for
///     VMA.vmLock                          vma_start_write; a per-VMA-locked fault's read hold
///       AddressSpace.writebackLock
///       Inode.mappingLock                 i_mmap_rwsem; ShmemFile.mappingLock alike
///         PMD lock                        split PMD-table lock (pmd_lock): huge PMD entries
///         PTL                             split PTE-table lock (ptlock)
///           PTL of a second table         mremap's move_ptes: the destination's
///           FrameAllocator.freeLock       zone->lock
///       Inode.sizeLock                    Faultline's own
///         PageCache.lock                  i_pages
///         ShmemFile.lock                  shmem's i_pages
///           FrameAllocator.freeLock
/// ```
///
/// Apart from the tree: `ShmNamespace.lock` (the machine's System V segments, `shm_ids`'
/// rwsem) is taken with no other lock held (`shmget`, `shmctl`, and `shmat` before it takes
/// `mmapLock`) and takes only `ShmemFile.mappingLock` inside it (to count `shm_nattch`).
///
/// `HugeTLBFile.faultMutex` (`hugetlb_fault_mutex`) sits between `VMA.vmLock` and the locks
/// below it: taken under `mmapLock` or a VMA read lock by a private hugetlb fault, discard and
/// unmap, it takes `ShmemFile.lock`, `ShmemFile.mappingLock` and PTLs inside it. An owner's
/// takes a fork copy's inside it (`unmap_ref_private`), never the reverse.
///
/// Holds that start lower in the tree, with nothing above them held: a per-VMA-locked fault's
/// `VMA.vmLock` (in place of `mmapLock`), a speculative fault's PTL (try-locked), writeback's
/// `mkclean` under a mapping lock and its writes under `sizeLock`, the page-cache lock of
/// `Inode.read`, and the shmem locks of a shmem hole punch.
///
/// What each lock guards, and who takes it:
/// - `Inode.truncateLock` (`i_rwsem`): one inode's size changes and writes (`truncate(to:)`,
///   `punchHole`, `write`). Taken with no other lock held.
/// - `AddressSpace.mmapLock` (`mmap_lock`): for write by every writer (mmap, munmap, mprotect,
///   `pkey_*`, mremap, madvise advice that changes flags, mlock, brk, stack growth, fork,
///   `destroy`): the VMA tree's working copy and its transaction, every VMA's bounds, flags and
///   offset (and its anon_vma, but for the first one, which a fault installs by compare-and-swap
///   under the read lock), `brk`, the `*VM` counters, the protection-key map, upper page-table
///   levels being freed or moved, and the writer's lists (`writeTouched`, `retiredVMAs`,
///   `pendingPopulate`, `vmaPreparedBacking`). For read by faults under the `mmap_lock` design
///   and every design's fallback, and by calls that only look (msync, mincore, madvise advice
///   that only zaps or reads, `/proc` rendering, populate's lookups).
/// - `VMA.vmLock` (`vma->vm_lock`, Linux 6.4): for write only for a moment in `vmaStartWrite`,
///   to wait out the VMA's fault readers; `vmLockSeq == mmLockSeq` then keeps it write-locked
///   until `mmapWriteUnlock` bumps `mmLockSeq`. For read by a per-VMA-locked fault, tried (never
///   waited for) inside an RCU read section and held over the whole fault body.
/// - `VMA.vmSequence` and `AddressSpace.mmapSeq` are sequence counts, not locks: writers make
///   them odd under `mmapLock` for write; speculative faults read them and abort, never wait.
/// - `Inode.mappingLock` / `ShmemFile.mappingLock` (`i_mmap_rwsem`, a mutex here): the backing
///   object's registry of mappings and, while held, the bounds and page tables of every VMA
///   registered there (a VMA's page tables are freed only after `unlinkFileVMA`, and mremap moves
///   entries under it), so that a zap or `mkclean` through the registry sees every entry. Taken
///   under `mmapLock` by writers (`withVMAsPrepared`, `adjustVMA`, mremap's move, `makeVMA` and
///   `unlinkFileVMA`), under `truncateLock` by truncate and hole punch, and alone by writeback's
///   `mkclean` and the registry calls.
/// - PMD lock (`PageTableWalker.pmdLock(for:)`, the PMD table frame's lock word, as Linux's
///   split `pmd_lock`): the huge (PSE) entries of one PMD table, and the chain of PTE tables
///   deposited beside them. Taken where the PTL is, never under a PTL; a PTL may be taken under
///   it. Taken by the huge faults (install, reuse, the write to the huge zero page), splits, and
///   the range operations' `*_huge_pmd` steps; nested once, as the PTL of a second table: fork
///   takes the child's under the parent's (`copy_huge_pmd`), mremap the destination's under the
///   source's (`move_huge_pmd`).
/// - PTL (`PageTableWalker.ptl(for:)`, in the table frame's metadata): the 512 entries of one
///   PTE table, and the PMD entry naming it while mremap moves the whole table. Taken under any
///   of the locks above; a speculative fault only try-locks it, inside an RCU read section.
/// - `AddressSpace.writebackLock`: `pendingWriteback`, the shared file ranges a writer
///   unmapped and writes back after its unlock. A leaf.
/// - `Inode.sizeLock`: makes writeback's "read `size`, write the page" atomic with truncate's
///   and hole punch's change of the backing store. Taken today under `truncateLock`, or alone by
///   `PageCache.writeback` around its writes.
/// - `PageCache.lock` (`i_pages`): every change to one cache's tree (inserts, removals, dirty
///   tags), `removalSequence` and counters. Lookups do not take it: a fault finds a cached page
///   under RCU (`PageCache.findRCU`) and dirties an already dirty, tagged page without it. Taken
///   under `mmapLock` or a VMA read lock (a miss, the first dirtying of a clean page,
///   `MADV_WILLNEED`), under `truncateLock` or `sizeLock`, or alone; only atomics are touched
///   under it (backing-store I/O runs outside it, and frames are put and emptied tree nodes
///   queued for a grace period after it is dropped).
/// - `ShmemFile.lock`: the shmem object's `pages`. Taken by the `mmap_lock` fault path, by
///   `MADV_PAGEOUT` under `mmapLock` for read, and alone by hole punch; it allocates frames.
/// - `FrameAllocator.freeLock` (`zone->lock`, a spinlock): the global free stack and the stack
///   of free 2 MiB blocks (split into the first under it). A leaf, like
///   `PhysicalMemory`'s cache registry.
/// - Leaves outside the mm: `FileTable`, `Namespace`, `TmpFS` and `HostFS` locks,
///   `Machine.idLock`, `VMStat` and `FaultTrace` locks, and `RCUDomain`'s `registry` and `gpLock`.
///
/// RCU:
/// - A read section nests inside anything, but nothing inside it may block: it only try-locks
///   (the PTL in `pteMapLock`, `VMA.vmLock` in `vmaStartRead`, a file in `OpenFile.tryGet`) and
///   never waits for a grace period.
/// - Waiting for a grace period (`RCUDomain.synchronize` and `barrier`, `callRCU` when its batch
///   is full, `MMUGather.finish` with `synchronous`, `Machine.drainDeferredFrees`) is allowed
///   under any lock of the tree but the two spinlocks (a PTL, `freeLock`): a reader never waits
///   for a lock, so the grace period cannot wait on the waiter. RCU callbacks run in whichever
///   thread flushes the queue and take only `freeLock` (freeing frames, tables and VMAs).
///
/// Where Faultline differs from Linux, on purpose:
/// - Nothing takes `mmapLock` under `truncateLock` (a Faultline write copies from host memory,
///   which cannot fault); the position is Linux's, so that a `write` from mapped memory would fit.
/// - No folio lock: a data frame's lock word is never taken. A file fault re-checks under the PTL
///   that the page is still cached at its index (`PageCache.owns`, `ShmemFile.owns`) and still
///   below EOF, where Linux holds the folio lock from `filemap_fault` to `finish_fault`.
/// - No `invalidate_lock`: `PageCache.removalSequence` and the EOF checks of `findOrRead`
///   keep a read that raced truncate, hole punch or invalidate from inserting a page.
/// - The page-cache lock is never taken under a PTL, where Linux's `i_pages` lock nests inside
///   it: a zap marks only the frame dirty, `MADV_PAGEOUT` tags the page after dropping the PTL,
///   and a fault sets the flag under the PTL and, for a page not yet tagged, tags it after
///   dropping it (`CPU.tagDirtyAndUnpin`).
/// - `sizeLock` has no Linux counterpart (Linux relies on the folio lock and the writeback bit).
/// - No `anon_vma->rwsem` and no `page_table_lock`: an anon_vma is an identity installed by a
///   compare-and-swap (`VMA.installAnonVMA`), and upper page-table levels are filled by one.
/// - The mapping lock is a mutex, so walks of one registry (a zap, writeback's `mkclean`)
///   serialise where Linux's `i_mmap_lock_read` lets them run together. Shmem has no
///   `truncateLock`: hole punches in one shmem object may run at once.
/// - munmap of a shared file mapping writes its dirty pages back (Linux leaves them to the
///   flusher), after the unlock: `writebackLock` carries the ranges out. Like `msync`'s,
///   writeback never runs under `mmapLock`.
public enum LockOrder {}
