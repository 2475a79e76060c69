// What Swift's Glibc module does not give us: membarrier, futex, CPU pinning, the pause
// instruction, a prefetch hint, a compiler barrier and ThreadSanitizer annotations.
#pragma once
#include <stdint.h>

/// MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED. Returns 0 on success, -errno on failure.
int fl_membarrier_register(void);
/// MEMBARRIER_CMD_PRIVATE_EXPEDITED: a full barrier on every CPU running a thread of this process.
int fl_membarrier(void);
/// FUTEX_WAIT_PRIVATE on *addr while it equals expected. Returns 0 or -errno.
int fl_futex_wait(uint32_t *addr, uint32_t expected);
/// FUTEX_WAKE_PRIVATE of up to count waiters. Returns the number woken or -errno.
int fl_futex_wake(uint32_t *addr, int count);
/// Pins the calling thread to one CPU. Returns 0 or an errno value.
int fl_pin_self_to_cpu(int cpu);
/// sched_getcpu().
int fl_current_cpu(void);
/// Number of CPUs this process may run on.
int fl_online_cpus(void);
/// Linux thread id of the caller.
int fl_gettid(void);
/// Monotonic clock in nanoseconds.
uint64_t fl_now_ns(void);
/// No-ops unless built with -fsanitize=thread: tell TSan about orderings it cannot see.
void fl_tsan_release(void *addr);
void fl_tsan_acquire(void *addr);
/// 1 when built with ThreadSanitizer.
int fl_tsan_enabled(void);

static inline void fl_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield" ::: "memory");
#endif
}

/// Asks the CPU to start loading the cache line at `p` for a read (a hint: no fault, no result).
static inline void fl_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

/// fallocate(2) (not exposed by Swift's Glibc module). Returns 0, or -1 with errno set.
int fl_fallocate(int fd, int mode, long long offset, long long length);

static inline void fl_compiler_barrier(void) { __asm__ __volatile__("" ::: "memory"); }
