// The host side of `faultline conform`: runs a sequence of memory operations on the real kernel
// in a forked child and records every result.
#pragma once
#include <stdint.h>

/// What one operation does. Arguments are in `fl_probe_op.args`, in the system call's order.
enum fl_probe_kind {
  /// mmap(args[0] addr, args[1] len, args[2] prot, args[3] flags, -1, 0). When `args[4]` is 1, a
  /// result outside [arena_start, arena_start + arena_len) is unmapped again at once (placement
  /// is compared modulo where it landed).
  FL_PROBE_MMAP = 1,
  FL_PROBE_MUNMAP = 2,     ///< munmap(addr, len)
  FL_PROBE_MPROTECT = 3,   ///< mprotect(addr, len, prot)
  FL_PROBE_MADVISE = 4,    ///< madvise(addr, len, advice)
  /// mremap(old, old_len, new_len, flags, new_addr); args[5] == 1: unmap a result outside the arena.
  FL_PROBE_MREMAP = 5,
  FL_PROBE_MLOCK = 6,      ///< mlock(addr, len)
  FL_PROBE_MLOCK2 = 7,     ///< mlock2(addr, len, flags)
  FL_PROBE_MUNLOCK = 8,    ///< munlock(addr, len)
  /// mincore(addr, len, vec): the vector (one byte per page, at most data room) goes to the data area.
  FL_PROBE_MINCORE = 9,
  /// Reads args[1] bytes at args[0], one byte at a time, into the data area; stops at a signal.
  FL_PROBE_LOAD = 10,
  /// Writes args[1] bytes at args[0], byte i = (args[2] + i) & 0xff; stops at a signal.
  FL_PROBE_STORE = 11,
  /// Copies the /proc/self/maps lines that overlap the arena into the data area.
  FL_PROBE_MAPS = 12,
  FL_PROBE_PKEY_ALLOC = 13,     ///< pkey_alloc(flags, access_rights)
  FL_PROBE_PKEY_FREE = 14,      ///< pkey_free(pkey)
  FL_PROBE_PKEY_MPROTECT = 15,  ///< pkey_mprotect(addr, len, prot, pkey)
  /// WRPKRU with eax = args[0] (ecx = edx = 0); ret 0. Where the CPU has no OSPKE the
  /// instruction is never executed: ret -1, err EOPNOTSUPP.
  FL_PROBE_WRPKRU = 16,
  /// shmget(args[0] key, args[1] size, args[2] flags): on success the id goes to slot args[3]
  /// (0-3) and ret is the slot (ids are the kernel's own; the slot is what both sides share),
  /// with the id in `fault_addr` for the parent's clean-up. A key other than IPC_PRIVATE is made
  /// the child's own, `(pid & 0x7fff) << 16 | (key & 0xffff)`, so that children running at the
  /// same time (parallel tests, other users of the host) never share a segment; the comparison
  /// numbers keys by first appearance.
  FL_PROBE_SHMGET = 17,
  /// shmat(id of slot args[0], args[1] addr, args[2] flags); slot -1 (or an empty slot) is id -1.
  FL_PROBE_SHMAT = 18,
  FL_PROBE_SHMDT = 19,  ///< shmdt(args[0] addr)
  /// shmctl(id of slot args[0], args[1] cmd, buf): for IPC_STAT ret is shm_nattch.
  FL_PROBE_SHMCTL = 20,
  /// brk(target): args[1] == 1: target = the child's initial break (page-aligned up) + args[0];
  /// args[1] == 0: target = args[0]. ret is the new break minus the initial one (so that it
  /// compares with any other process's heap). Relative targets must stay small and
  /// non-negative: below the initial break lies the parent's own heap.
  FL_PROBE_BRK = 21,
  /// munmap(initial break + args[0], args[1]): the heap the sequence grew (nothing of the
  /// parent lies above the initial break).
  FL_PROBE_HEAP_MUNMAP = 22,
  FL_PROBE_MSEAL = 23,       ///< mseal(addr, len, flags) (Linux 6.10)
  FL_PROBE_MLOCKALL = 24,    ///< mlockall(flags)
  FL_PROBE_MUNLOCKALL = 25,  ///< munlockall()
};

/// One operation.
typedef struct fl_probe_op {
  uint32_t kind;
  uint32_t reserved;
  uint64_t args[6];
} fl_probe_op;

/// What one operation did.
typedef struct fl_probe_result {
  /// The system call's return value (-1 on failure); 0 for loads, stores and maps.
  int64_t ret;
  /// errno when `ret` is -1, else 0.
  int32_t err;
  /// Loads and stores: 0, SIGSEGV or SIGBUS.
  int32_t signo;
  /// The signal's si_code (SEGV_MAPERR = 1, SEGV_ACCERR = 2, ...).
  int32_t code;
  /// Bytes this operation wrote into the data area.
  uint32_t data_len;
  /// The signal's si_addr.
  uint64_t fault_addr;
  /// Where this operation's bytes start in the data area.
  uint64_t data_off;
} fl_probe_result;

/// Outcomes of `fl_probe_run`.
enum fl_probe_status {
  FL_PROBE_OK = 0,
  FL_PROBE_FORK_FAILED = -1,
  /// The child ran past the timeout and was killed.
  FL_PROBE_TIMEOUT = -2,
  /// The child died of a signal it did not catch (detail: the signal).
  FL_PROBE_CRASHED = -3,
  /// The child exited early (detail: its exit status; 10 = the arena could not be freed,
  /// 11 = the data area overflowed, 12 = dropping capabilities failed, 13 = RLIMIT_MEMLOCK could
  /// not be set to FL_PROBE_MEMLOCK_LIMIT).
  FL_PROBE_EXITED = -4,
  /// The shared result buffer could not be mapped (detail: errno).
  FL_PROBE_NO_BUFFER = -5,
  /// Bad arguments (too many ops).
  FL_PROBE_BAD_ARGUMENTS = -6,
};

/// The child's soft `RLIMIT_MEMLOCK` (128 KiB, half the default window), which the engine side
/// must use too: small, so that mlock, MAP_LOCKED and mlockall(MCL_FUTURE) meet the limit. The
/// child exits with status 13 when the hard limit is lower.
#define FL_PROBE_MEMLOCK_LIMIT (128u << 10)

/// The System V segment slots a sequence may use.
#define FL_PROBE_SHM_SLOTS 4

/// The System V segments on the host whose key's low 16 bits are `low_key` (clean-up checks).
int fl_probe_segments_with_low_key(uint32_t low_key);

/// Reserves [start, start + len) in this process with a PROT_NONE mapping (MAP_FIXED_NOREPLACE),
/// so that nothing else is placed there. Returns 0 or an errno value.
int fl_probe_reserve(uint64_t start, uint64_t len);

/// 1 when this code was built with ThreadSanitizer, whose runtime refuses the probe's raw
/// mappings in a forked child (it owns large parts of the address space).
int fl_probe_built_with_tsan(void);

/// Runs `count` operations in a forked child.
///
/// A load or store that ends with a signal leaves the thread's PKRU as it was before the access:
/// the kernel runs the handler with the default PKRU, and the child leaves the handler by
/// siglongjmp rather than sigreturn, so it writes the saved value back.
///
/// The child first unmaps [reserve_start, reserve_start + reserve_len) (the reservation made by
/// `fl_probe_reserve`), drops every capability when `drop_caps` is set (so that it sees the limits of
/// an unprivileged process: mmap_min_addr, RLIMIT_MEMLOCK), sets RLIMIT_MEMLOCK to
/// FL_PROBE_MEMLOCK_LIMIT, notes its break (FL_PROBE_BRK), then runs the operations, using only
/// raw system calls and async-signal-safe functions. `results[i]` receives operation i's result;
/// bytes go to `data` (capacity `data_cap`). `*completed` receives the number of operations the
/// child finished, `*detail` the signal or exit status when the run failed.
/// The parent waits at most `timeout_ms`. Returns an `fl_probe_status`.
int fl_probe_run(const fl_probe_op *ops, uint32_t count, uint64_t reserve_start, uint64_t reserve_len,
                 uint64_t arena_start, uint64_t arena_len, int drop_caps, fl_probe_result *results,
                 uint8_t *data, uint64_t data_cap, uint32_t timeout_ms, uint32_t *completed, int32_t *detail);
