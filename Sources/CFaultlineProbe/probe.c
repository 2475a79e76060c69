// The host side of `faultline conform` (see CFaultlineProbe.h).
//
// The Swift parent is multithreaded, so after fork() the child may only use async-signal-safe
// functions: raw system calls, sigaction, sigsetjmp/siglongjmp. It never allocates; every byte it
// produces goes into one MAP_SHARED anonymous buffer the parent maps before forking.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "CFaultlineProbe.h"

#ifndef SHM_STAT_ANY
#define SHM_STAT_ANY 15
#endif
#ifndef SYS_mseal
#define SYS_mseal 462
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#if defined(__x86_64__)
#include <cpuid.h>
#ifndef SYS_pkey_mprotect
#define SYS_pkey_mprotect 329
#endif
#ifndef SYS_pkey_alloc
#define SYS_pkey_alloc 330
#endif
#ifndef SYS_pkey_free
#define SYS_pkey_free 331
#endif
#endif

/// Whether the CPU runs with protection keys enabled by the kernel: CPUID.(EAX=7,ECX=0):ECX
/// bit 4, OSPKE (CR4.PKE, what /proc/cpuinfo calls `ospke`). Without it RDPKRU and WRPKRU
/// raise #UD, so the child executes them only when this is 1.
static int probe_has_ospke(void) {
#if defined(__x86_64__)
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
  return (ecx >> 4) & 1;
#else
  return 0;
#endif
}

#if defined(__x86_64__)
static inline uint32_t probe_rdpkru(void) {
  uint32_t eax, edx;
  __asm__ volatile(".byte 0x0f,0x01,0xee" : "=a"(eax), "=d"(edx) : "c"(0));
  return eax;
}

static inline void probe_wrpkru(uint32_t value) {
  __asm__ volatile(".byte 0x0f,0x01,0xef" : : "a"(value), "c"(0), "d"(0) : "memory");
}
#else
static inline uint32_t probe_rdpkru(void) { return 0; }
static inline void probe_wrpkru(uint32_t value) { (void)value; }
#endif

/// The shared buffer: a header, the results, then the data area.
struct probe_shared {
  volatile uint32_t completed;
  uint32_t pad;
  uint64_t data_used;
};

// Child state. Each child has its own copy (fork); the signal handler reaches it through these.
static sigjmp_buf probe_jmp;
static volatile int probe_signo;
static volatile int probe_code;
static volatile uint64_t probe_addr;
/// Set only while a load or store runs: any other fault is the probe's own and kills the child.
static volatile int probe_armed;

static void probe_handler(int sig, siginfo_t *info, void *ctx) {
  (void)ctx;
  if (!probe_armed) {
    signal(sig, SIG_DFL);  // the faulting instruction runs again and the child dies of it
    return;
  }
  probe_armed = 0;
  probe_signo = sig;
  probe_code = info->si_code;
  probe_addr = (uint64_t)(uintptr_t)info->si_addr;
  siglongjmp(probe_jmp, 1);
}

int fl_probe_reserve(uint64_t start, uint64_t len) {
  void *p = mmap((void *)(uintptr_t)start, len, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
  if (p == MAP_FAILED) return errno;
  if ((uint64_t)(uintptr_t)p != start) {
    munmap(p, len);  // an old kernel that ignored MAP_FIXED_NOREPLACE
    return EEXIST;
  }
  return 0;
}

static long raw_ret(long r, int32_t *err) {
  *err = r == -1 ? errno : 0;
  return r;
}

static int parse_hex(const char *s, const char *end, uint64_t *out, const char **next) {
  uint64_t v = 0;
  int n = 0;
  while (s < end) {
    char c = *s;
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else break;
    v = (v << 4) | (uint64_t)d;
    s++;
    n++;
  }
  *out = v;
  *next = s;
  return n > 0;
}

/// Copies the maps lines overlapping [lo, hi) into out; returns the bytes written or -1 on overflow.
static long copy_maps(uint64_t lo, uint64_t hi, char *scratch, size_t scratch_cap, char *out, size_t out_cap) {
  int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t used = 0;
  for (;;) {
    if (used == scratch_cap) break;
    long n = syscall(SYS_read, fd, scratch + used, scratch_cap - used);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    used += (size_t)n;
  }
  syscall(SYS_close, fd);
  size_t written = 0;
  const char *p = scratch, *end = scratch + used;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    uint64_t s, e;
    const char *q;
    if (parse_hex(p, eol, &s, &q) && q < eol && *q == '-' && parse_hex(q + 1, eol, &e, &q)) {
      if (s < hi && e > lo) {
        size_t len = (size_t)(eol - p) + 1;
        if (written + len > out_cap) return -1;
        memcpy(out + written, p, (size_t)(eol - p));
        out[written + len - 1] = '\n';
        written += len;
      }
    }
    p = eol + 1;
  }
  return (long)written;
}

static void drop_capabilities(void) {
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  if (syscall(SYS_capset, &hdr, data) != 0) syscall(SYS_exit_group, 12);
}

static int probe_own_key(uint32_t key) {
  if (key == 0) return 0;  // IPC_PRIVATE
  return (int)((((uint32_t)syscall(SYS_getpid) & 0x7fff) << 16) | (key & 0xffff));
}

static uint64_t in_arena(uint64_t a, uint64_t len, uint64_t lo, uint64_t hi) {
  return a >= lo && a < hi && len <= hi - a;
}

__attribute__((noreturn)) static void child_main(const fl_probe_op *ops, uint32_t count, uint64_t reserve_start,
                                                 uint64_t reserve_len, uint64_t lo, uint64_t hi, int drop_caps,
                                                 struct probe_shared *hdr, fl_probe_result *results, uint8_t *data,
                                                 uint64_t data_cap, char *scratch, size_t scratch_cap) {
  if (syscall(SYS_munmap, reserve_start, reserve_len) != 0) syscall(SYS_exit_group, 10);
  if (drop_caps) drop_capabilities();
  struct rlimit memlock;
  if (syscall(SYS_prlimit64, 0, RLIMIT_MEMLOCK, NULL, &memlock) != 0 || memlock.rlim_max < FL_PROBE_MEMLOCK_LIMIT)
    syscall(SYS_exit_group, 13);
  memlock.rlim_cur = FL_PROBE_MEMLOCK_LIMIT;
  if (syscall(SYS_prlimit64, 0, RLIMIT_MEMLOCK, &memlock, NULL) != 0) syscall(SYS_exit_group, 13);
  // The break the parent left, rounded up to a page (the heap VMA already ends there), so that
  // a relative brk grows the same number of pages as on the engine, whose break starts aligned.
  uint64_t brk_base = (uint64_t)syscall(SYS_brk, 0L);
  brk_base = (brk_base + 4095) & ~(uint64_t)4095;
  syscall(SYS_brk, brk_base);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = probe_handler;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, NULL);
  sigaction(SIGBUS, &sa, NULL);
  sigset_t unblock;
  sigemptyset(&unblock);
  sigaddset(&unblock, SIGSEGV);
  sigaddset(&unblock, SIGBUS);
  sigprocmask(SIG_UNBLOCK, &unblock, NULL);
  const int has_pkeys = probe_has_ospke();
  long shm_ids[FL_PROBE_SHM_SLOTS];
  for (int s = 0; s < FL_PROBE_SHM_SLOTS; s++) shm_ids[s] = -1;

  for (uint32_t i = 0; i < count; i++) {
    const fl_probe_op *op = &ops[i];
    fl_probe_result *r = &results[i];
    const uint64_t *a = op->args;
    r->ret = 0;
    r->err = 0;
    r->signo = 0;
    r->code = 0;
    r->fault_addr = 0;
    r->data_len = 0;
    r->data_off = hdr->data_used;
    uint8_t *out = data + hdr->data_used;
    uint64_t room = data_cap - hdr->data_used;
    switch (op->kind) {
    case FL_PROBE_MMAP:
      r->ret = raw_ret(syscall(SYS_mmap, a[0], a[1], (int)a[2], (int)a[3], -1, 0L), &r->err);
      if (r->ret != -1 && a[4] == 1 && !in_arena((uint64_t)r->ret, a[1], lo, hi))
        syscall(SYS_munmap, (uint64_t)r->ret, a[1]);
      break;
    case FL_PROBE_MUNMAP:
      r->ret = raw_ret(syscall(SYS_munmap, a[0], a[1]), &r->err);
      break;
    case FL_PROBE_MPROTECT:
      r->ret = raw_ret(syscall(SYS_mprotect, a[0], a[1], (int)a[2]), &r->err);
      break;
    case FL_PROBE_MADVISE:
      r->ret = raw_ret(syscall(SYS_madvise, a[0], a[1], (int)a[2]), &r->err);
      break;
    case FL_PROBE_MREMAP:
      r->ret = raw_ret(syscall(SYS_mremap, a[0], a[1], a[2], (int)a[3], a[4]), &r->err);
      if (r->ret != -1 && a[5] == 1 && !in_arena((uint64_t)r->ret, a[2], lo, hi))
        syscall(SYS_munmap, (uint64_t)r->ret, a[2]);
      break;
    case FL_PROBE_MLOCK:
      r->ret = raw_ret(syscall(SYS_mlock, a[0], a[1]), &r->err);
      break;
    case FL_PROBE_MLOCK2:
      r->ret = raw_ret(syscall(SYS_mlock2, a[0], a[1], (int)a[2]), &r->err);
      break;
    case FL_PROBE_MUNLOCK:
      r->ret = raw_ret(syscall(SYS_munlock, a[0], a[1]), &r->err);
      break;
    case FL_PROBE_MINCORE: {
      uint64_t pages = (a[1] + 4095) / 4096;
      if (a[1] > (1ull << 40) || pages > room) {
        // Let the kernel check the arguments with a vector it cannot write past.
        r->ret = raw_ret(syscall(SYS_mincore, a[0], a[1], NULL), &r->err);
        break;
      }
      r->ret = raw_ret(syscall(SYS_mincore, a[0], a[1], out), &r->err);
      if (r->ret == 0) r->data_len = (uint32_t)pages;
      break;
    }
    case FL_PROBE_LOAD:
    case FL_PROBE_STORE: {
      uint64_t len = a[1];
      if (len > room) syscall(SYS_exit_group, 11);
      volatile uint64_t done = 0;
      probe_signo = 0;
      // The handler runs with the kernel's default PKRU and is left by siglongjmp: put the
      // thread's value back after a signal, as sigreturn would have.
      const uint32_t pkru = has_pkeys ? probe_rdpkru() : 0;
      if (sigsetjmp(probe_jmp, 1) == 0) {
        probe_armed = 1;
        volatile uint8_t *p = (volatile uint8_t *)(uintptr_t)a[0];
        if (op->kind == FL_PROBE_LOAD) {
          for (; done < len; done++) out[done] = p[done];
        } else {
          for (; done < len; done++) p[done] = (uint8_t)(a[2] + done);
        }
        probe_armed = 0;
      } else {
        if (has_pkeys) probe_wrpkru(pkru);
        r->signo = probe_signo;
        r->code = probe_code;
        r->fault_addr = probe_addr;
      }
      if (op->kind == FL_PROBE_LOAD) r->data_len = (uint32_t)done;
      break;
    }
    case FL_PROBE_MAPS: {
      long n = copy_maps(lo, hi, scratch, scratch_cap, (char *)out, (size_t)room);
      if (n < 0) syscall(SYS_exit_group, 11);
      r->data_len = (uint32_t)n;
      break;
    }
#if defined(__x86_64__)
    case FL_PROBE_PKEY_ALLOC:
      r->ret = raw_ret(syscall(SYS_pkey_alloc, a[0], a[1]), &r->err);
      break;
    case FL_PROBE_PKEY_FREE:
      r->ret = raw_ret(syscall(SYS_pkey_free, (int)a[0]), &r->err);
      break;
    case FL_PROBE_PKEY_MPROTECT:
      r->ret = raw_ret(syscall(SYS_pkey_mprotect, a[0], a[1], (int)a[2], (int)a[3]), &r->err);
      break;
#endif
    case FL_PROBE_WRPKRU:
      if (has_pkeys) {
        probe_wrpkru((uint32_t)a[0]);
      } else {
        r->ret = -1;
        r->err = EOPNOTSUPP;
      }
      break;
    case FL_PROBE_SHMGET:
      r->ret = raw_ret(syscall(SYS_shmget, probe_own_key((uint32_t)a[0]), a[1], (int)a[2]), &r->err);
      if (r->ret != -1 && a[3] < FL_PROBE_SHM_SLOTS) {
        shm_ids[a[3]] = r->ret;
        r->fault_addr = (uint64_t)r->ret;
        r->ret = (int64_t)a[3];
      }
      break;
    case FL_PROBE_SHMAT: {
      long id = a[0] < FL_PROBE_SHM_SLOTS ? shm_ids[a[0]] : -1;
      r->ret = raw_ret(syscall(SYS_shmat, (int)id, a[1], (int)a[2]), &r->err);
      break;
    }
    case FL_PROBE_SHMDT:
      r->ret = raw_ret(syscall(SYS_shmdt, a[0]), &r->err);
      break;
    case FL_PROBE_SHMCTL: {
      long id = a[0] < FL_PROBE_SHM_SLOTS ? shm_ids[a[0]] : -1;
      struct shmid_ds ds;
      memset(&ds, 0, sizeof ds);
      r->ret = raw_ret(syscall(SYS_shmctl, (int)id, (int)a[1], &ds), &r->err);
      if (r->ret != -1 && (int)a[1] == IPC_STAT) r->ret = (int64_t)ds.shm_nattch;
      break;
    }
    case FL_PROBE_BRK:
      // brk never fails: it returns the old break instead.
      r->ret = (int64_t)((uint64_t)syscall(SYS_brk, a[1] == 1 ? brk_base + a[0] : a[0]) - brk_base);
      break;
    case FL_PROBE_HEAP_MUNMAP:
      r->ret = raw_ret(syscall(SYS_munmap, brk_base + a[0], a[1]), &r->err);
      break;
    case FL_PROBE_MSEAL:
      r->ret = raw_ret(syscall(SYS_mseal, a[0], a[1], a[2]), &r->err);
      break;
    case FL_PROBE_MLOCKALL:
      r->ret = raw_ret(syscall(SYS_mlockall, (int)a[0]), &r->err);
      break;
    case FL_PROBE_MUNLOCKALL:
      r->ret = raw_ret(syscall(SYS_munlockall), &r->err);
      break;
    default:
      r->ret = -1;
      r->err = ENOSYS;
      break;
    }
    hdr->data_used += r->data_len;
    hdr->completed = i + 1;
  }
  syscall(SYS_exit_group, 0);
  __builtin_unreachable();
}

/// Removes every System V segment the (exited) child created, whatever it did with them: the
/// host keeps segments after their creator exits. Found by index (`SHM_STAT_ANY`) and matched by
/// creator pid, so a segment of another process is never touched.
static void remove_child_segments(pid_t child) {
  struct shmid_ds ds;
  int max_index = shmctl(0, SHM_INFO, &ds);
  for (int i = 0; i <= max_index; i++) {
    int id = shmctl(i, SHM_STAT_ANY, &ds);
    if (id < 0) id = shmctl(i, SHM_STAT, &ds);
    if (id >= 0 && ds.shm_cpid == child) shmctl(id, IPC_RMID, NULL);
  }
}

int fl_probe_segments_with_low_key(uint32_t low_key) {
  struct shmid_ds ds;
  int n = 0;
  int max_index = shmctl(0, SHM_INFO, &ds);
  for (int i = 0; i <= max_index; i++) {
    int id = shmctl(i, SHM_STAT_ANY, &ds);
    if (id >= 0 && ((uint32_t)ds.shm_perm.__key & 0xffff) == low_key) n++;
  }
  return n;
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int fl_probe_run(const fl_probe_op *ops, uint32_t count, uint64_t reserve_start, uint64_t reserve_len,
                 uint64_t arena_start, uint64_t arena_len, int drop_caps, fl_probe_result *results,
                 uint8_t *data, uint64_t data_cap, uint32_t timeout_ms, uint32_t *completed, int32_t *detail) {
  *completed = 0;
  *detail = 0;
  if (count > (1u << 20) || data_cap > (1ull << 32)) return FL_PROBE_BAD_ARGUMENTS;
  const size_t scratch_cap = 4u << 20;  // /proc/self/maps of the whole (forked) process
  size_t results_bytes = (size_t)count * sizeof(fl_probe_result);
  size_t total = sizeof(struct probe_shared) + results_bytes + data_cap + scratch_cap;
  total = (total + 4095) & ~(size_t)4095;
  uint8_t *shared = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) {
    *detail = errno;
    return FL_PROBE_NO_BUFFER;
  }
  struct probe_shared *hdr = (struct probe_shared *)shared;
  fl_probe_result *sresults = (fl_probe_result *)(shared + sizeof *hdr);
  uint8_t *sdata = shared + sizeof *hdr + results_bytes;
  char *scratch = (char *)sdata + data_cap;
  hdr->completed = 0;
  hdr->data_used = 0;

  pid_t pid = fork();
  if (pid < 0) {
    *detail = errno;
    munmap(shared, total);
    return FL_PROBE_FORK_FAILED;
  }
  if (pid == 0) {
    child_main(ops, count, reserve_start, reserve_len, arena_start, arena_start + arena_len, drop_caps, hdr,
               sresults, sdata, data_cap, scratch, scratch_cap);
  }
  int status = 0;
  int rc = FL_PROBE_OK;
  // Wait on a pidfd when the kernel has them (5.3+), so that the parent wakes as the child exits;
  // otherwise poll waitpid with growing sleeps.
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd >= 0) {
    struct pollfd pfd = {pidfd, POLLIN, 0};
    int n;
    do {
      n = poll(&pfd, 1, (int)timeout_ms);
    } while (n < 0 && errno == EINTR);
    close(pidfd);
    if (n == 0) {
      kill(pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
      rc = FL_PROBE_TIMEOUT;
    }
  }
  uint64_t deadline = now_ms() + timeout_ms;
  long sleep_ns = 20000;
  for (; rc == FL_PROBE_OK;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) {
      rc = FL_PROBE_CRASHED;
      break;
    }
    if (now_ms() >= deadline) {
      kill(pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
      rc = FL_PROBE_TIMEOUT;
      break;
    }
    struct timespec ts = {0, sleep_ns};
    nanosleep(&ts, NULL);
    if (sleep_ns < 2000000) sleep_ns *= 2;
  }
  if (rc == FL_PROBE_OK) {
    if (WIFSIGNALED(status)) {
      rc = FL_PROBE_CRASHED;
      *detail = WTERMSIG(status);
    } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
      rc = FL_PROBE_EXITED;
      *detail = WEXITSTATUS(status);
    }
  }
  remove_child_segments(pid);
  uint32_t done = hdr->completed;
  if (done > count) done = count;
  *completed = done;
  memcpy(results, sresults, (size_t)done * sizeof(fl_probe_result));
  uint64_t used = hdr->data_used;
  if (used > data_cap) used = data_cap;
  memcpy(data, sdata, used);
  munmap(shared, total);
  return rc;
}

int fl_probe_built_with_tsan(void) {
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
  return 1;
#endif
#endif
#if defined(__SANITIZE_THREAD__)
  return 1;
#endif
  return 0;
}
