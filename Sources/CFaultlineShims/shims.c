#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "CFaultlineShims.h"

int fl_membarrier_register(void) {
  long r = syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0);
  return r == 0 ? 0 : -errno;
}

int fl_membarrier(void) {
  long r = syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
  return r == 0 ? 0 : -errno;
}

int fl_futex_wait(uint32_t *addr, uint32_t expected) {
  long r = syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
  return r == 0 ? 0 : -errno;
}

int fl_futex_wake(uint32_t *addr, int count) {
  long r = syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
  return r >= 0 ? (int)r : -errno;
}

int fl_pin_self_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

int fl_current_cpu(void) { return sched_getcpu(); }

int fl_online_cpus(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
  return (int)sysconf(_SC_NPROCESSORS_ONLN);
}

int fl_gettid(void) { return (int)syscall(SYS_gettid); }

uint64_t fl_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FL_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define FL_TSAN 1
#endif

#ifdef FL_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
void fl_tsan_release(void *addr) { __tsan_release(addr); }
void fl_tsan_acquire(void *addr) { __tsan_acquire(addr); }
int fl_tsan_enabled(void) { return 1; }
#else
void fl_tsan_release(void *addr) { (void)addr; }
void fl_tsan_acquire(void *addr) { (void)addr; }
int fl_tsan_enabled(void) { return 0; }
#endif

int fl_fallocate(int fd, int mode, long long offset, long long length) {
  return (int)syscall(__NR_fallocate, fd, mode, (long)offset, (long)length);
}
