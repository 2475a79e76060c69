// Host probe for mseal(2) and mlockall(2)/munlockall(2) (issue 13, rule 9). Build and run:
//   cc -O0 -o /tmp/probe Tests/Probes/mseal_mlockall.c
//   setpriv --reuid=65534 --regid=65534 --clear-groups /tmp/probe > Tests/Probes/mseal_mlockall.txt
// Run as an unprivileged user (no CAP_IPC_LOCK, RLIMIT_MEMLOCK as the host sets it); the output is the errno of each row and the maps/smaps facts the
// Swift tests (MsealTests, MlockallTests) pin.
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_mseal
#define SYS_mseal 462
#endif

static long P = 4096;

static int mseal_(void *a, size_t len, unsigned long flags) { return syscall(SYS_mseal, a, len, flags); }

static void row(const char *name, long rc) { printf("%-52s %s\n", name, rc == -1 ? strerrorname_np(errno) : "0"); }

static char *map(size_t n, int prot) { return mmap(0, n * P, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); }

/// The VmFlags line of the smaps entry starting at `a`.
static void vmflags(const char *label, void *a) {
  FILE *f = fopen("/proc/self/smaps", "r");
  char line[512];
  unsigned long s, e;
  int found = 0;
  while (fgets(line, sizeof line, f)) {
    if (!found && sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, ' ') == line + strcspn(line, " ") &&
        (unsigned long)a >= s && (unsigned long)a < e && line[strcspn(line, " ") + 5] == ' ')
      found = 1;
    if (found && strncmp(line, "VmFlags:", 8) == 0) {
      printf("%-52s %s", label, line);
      break;
    }
  }
  fclose(f);
}

static int prot_of(void *a) {
  FILE *f = fopen("/proc/self/maps", "r");
  char line[512];
  unsigned long s, e;
  char perms[8];
  int r = -1;
  while (fgets(line, sizeof line, f)) {
    sscanf(line, "%lx-%lx %4s", &s, &e, perms);
    if ((unsigned long)a >= s && (unsigned long)a < e) r = (perms[0] == 'r') | (perms[1] == 'w') << 1;
  }
  fclose(f);
  return r;
}

static void mincore_row(const char *label, void *a, size_t n) {
  unsigned char v[64];
  mincore(a, n * P, v);
  printf("%-52s ", label);
  for (size_t i = 0; i < n; i++) putchar('0' + (v[i] & 1));
  putchar('\n');
}

int main(void) {
  char *a = map(4, PROT_READ | PROT_WRITE);
  row("mseal flags=1", mseal_(a, P, 1));
  row("mseal unaligned addr", mseal_(a + 1, P, 0));
  row("mseal len 0", mseal_(a, 0, 0));
  row("mseal len -1 (wraps)", mseal_(a, (size_t)-1, 0));
  munmap(a + 2 * P, P);
  row("mseal over a hole", mseal_(a, 4 * P, 0));
  char *t = map(3, PROT_READ | PROT_WRITE);
  munmap(t + 2 * P, P);
  row("mseal past the end of the mapping", mseal_(t, 3 * P, 0));
  char *b = map(4, PROT_READ | PROT_WRITE);
  row("mseal middle page (unaligned len)", mseal_(b + P, 1, 0));
  vmflags("VmFlags sealed", b + P);
  row("mseal again (already sealed)", mseal_(b + P, P, 0));
  row("munmap sealed", munmap(b + P, P));
  row("munmap range ending in sealed", munmap(b, 2 * P));
  printf("%-52s %d\n", "first page still mapped (1=yes)", prot_of(b) >= 0);
  row("mprotect sealed", mprotect(b + P, P, PROT_READ));
  row("mprotect sealed, same prot", mprotect(b + P, P, PROT_READ | PROT_WRITE));
  row("mprotect [unsealed, sealed)", mprotect(b, 2 * P, PROT_READ));
  printf("%-52s %d\n", "first page prot after (1=r,3=rw)", prot_of(b));
  mprotect(b, P, PROT_READ | PROT_WRITE);
  row("mremap sealed shrink", (long)mremap(b + P, P, 0x800, 0) == -1 ? -1 : 0);
  row("mremap sealed same size", (long)mremap(b + P, P, P, 0) == -1 ? -1 : 0);
  row("mremap sealed expand", (long)mremap(b + P, P, 2 * P, MREMAP_MAYMOVE) == -1 ? -1 : 0);
  row("mremap FIXED onto sealed", (long)mremap(b + 3 * P, P, P, MREMAP_MAYMOVE | MREMAP_FIXED, b + P) == -1 ? -1 : 0);
  row("mmap FIXED over sealed", mmap(b + P, P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED ? -1 : 0);
  row("madvise DONTNEED sealed rw anon", madvise(b + P, P, MADV_DONTNEED));
  char *c = map(2, PROT_READ);
  mseal_(c, 2 * P, 0);
  row("madvise DONTNEED sealed ro anon", madvise(c, P, MADV_DONTNEED));
  row("madvise FREE sealed ro anon", madvise(c, P, MADV_FREE));
  row("madvise DONTFORK sealed ro anon", madvise(c, P, MADV_DONTFORK));
  row("madvise WIPEONFORK sealed ro anon", madvise(c, P, MADV_WIPEONFORK));
  row("madvise REMOVE sealed ro anon", madvise(c, P, MADV_REMOVE));
  row("madvise DONTNEED_LOCKED sealed ro anon", madvise(c, P, MADV_DONTNEED_LOCKED));
  row("madvise NORMAL sealed ro anon", madvise(c, P, MADV_NORMAL));
  row("madvise DONTDUMP sealed ro anon", madvise(c, P, MADV_DONTDUMP));
  char *s = mmap(0, P, PROT_READ, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  mseal_(s, P, 0);
  row("madvise DONTNEED sealed ro shared anon", madvise(s, P, MADV_DONTNEED));
  char *d = map(3, PROT_READ | PROT_WRITE);
  mseal_(d + P, P, 0);
  row("madvise DONTNEED [unsealed rw, sealed rw)", madvise(d, 2 * P, MADV_DONTNEED));
  mprotect(d, P, PROT_READ);
  row("munmap [unsealed, sealed, unsealed)", munmap(d, 3 * P));

  // mlockall / munlockall.
  row("mlockall 0", mlockall(0));
  row("mlockall 8 (unknown)", mlockall(8));
  row("mlockall ONFAULT alone", mlockall(MCL_ONFAULT));
  char *big = mmap(0, 16 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  row("mlockall CURRENT, total_vm over RLIMIT_MEMLOCK", mlockall(MCL_CURRENT));
  munmap(big, 16 << 20);
  char *cur = map(4, PROT_READ | PROT_WRITE);
  row("mlockall CURRENT|ONFAULT", mlockall(MCL_CURRENT | MCL_ONFAULT));
  vmflags("VmFlags after MCL_CURRENT|ONFAULT", cur);
  mincore_row("mincore after MCL_CURRENT|ONFAULT", cur, 4);
  row("mlockall CURRENT", mlockall(MCL_CURRENT));
  vmflags("VmFlags after MCL_CURRENT", cur);
  mincore_row("mincore after MCL_CURRENT", cur, 4);
  row("munlockall", munlockall());
  vmflags("VmFlags after munlockall", cur);
  struct rlimit rl;
  getrlimit(RLIMIT_MEMLOCK, &rl);
  rl.rlim_cur = 0;
  setrlimit(RLIMIT_MEMLOCK, &rl);
  row("mlockall FUTURE at RLIMIT_MEMLOCK 0", mlockall(MCL_FUTURE));
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_MEMLOCK, &rl);
  printf("%-52s %lu\n", "RLIMIT_MEMLOCK now (pages)", (unsigned long)(rl.rlim_cur / P));
  row("mlockall FUTURE", mlockall(MCL_FUTURE));
  char *f = map(4, PROT_READ | PROT_WRITE);
  vmflags("VmFlags after MCL_FUTURE mmap", f);
  mincore_row("mincore after MCL_FUTURE mmap", f, 4);
  row("mlockall FUTURE|ONFAULT", mlockall(MCL_FUTURE | MCL_ONFAULT));
  char *g = map(4, PROT_READ | PROT_WRITE);
  vmflags("VmFlags after MCL_FUTURE|ONFAULT mmap", g);
  mincore_row("mincore after MCL_FUTURE|ONFAULT mmap", g, 4);
  row("munlockall", munlockall());
  vmflags("VmFlags after munlockall", f);
  char *h = map(4, PROT_READ | PROT_WRITE);
  vmflags("VmFlags of an mmap after munlockall", h);
  return 0;
}
