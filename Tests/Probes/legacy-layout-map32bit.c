// Host probe for issue 13, engine rules 8 (the legacy layout) and 9 (MAP_32BIT)
// (Tests/AddressSpaceTests/LinuxLayoutTests.swift).
// Build and run, with ASLR off, in both layouts:
//   cc -static -O0 -Wall -o /tmp/probe legacy-layout-map32bit.c
//   setarch -R /tmp/probe; setarch -L -R /tmp/probe
// Output recorded in legacy-layout-map32bit.txt (Linux 6.18, x86-64, 4 KiB pages).
//
// Static, so that no shared library lands where the legacy layout starts; the vDSO still may,
// so every address is printed, and the tests compare offsets from the first mapping's start.
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <unistd.h>

#define PAGE 4096UL
#define MIB (1UL << 20)

static unsigned long map(unsigned long hint, unsigned long len, int prot, int flags) {
  void *p = mmap((void *)hint, len, prot, flags, -1, 0);
  return p == MAP_FAILED ? 0 : (unsigned long)p;
}

static void show(const char *what, unsigned long addr) {
  if (addr) printf("%s: %#lx\n", what, addr);
  else printf("%s: failed, %s\n", what, strerrorname_np(errno));
}

static void show_maps(unsigned long lo, unsigned long hi) {
  char line[512];
  FILE *f = fopen("/proc/self/maps", "r");
  while (fgets(line, sizeof line, f)) {
    unsigned long s = strtoul(line, NULL, 16);
    if (s >= lo && s < hi) printf("maps: %s", line);
  }
  fclose(f);
}

int main(void) {
  const int rw = PROT_READ | PROT_WRITE, anon = MAP_PRIVATE | MAP_ANONYMOUS;
  int pers = personality(0xffffffff);
  printf("personality %#x (ADDR_COMPAT_LAYOUT %s)\n", pers, pers & ADDR_COMPAT_LAYOUT ? "set" : "clear");
  printf("all maps at start:\n");
  show_maps(0, ~0UL);

  // Hint-less mappings: in the legacy layout each is placed above the last, from
  // TASK_UNMAPPED_BASE (0x2aaaaaaab000) past whatever the kernel put there (the vDSO).
  unsigned long a = map(0, 4 * PAGE, rw, anon);
  unsigned long b = map(0, PAGE, PROT_READ, anon);
  unsigned long c = map(0, 2 * PAGE, rw, anon);
  show("a (4 pages)", a);
  show("b (1 page, r--)", b);
  show("c (2 pages)", c);
  munmap((void *)a, 4 * PAGE);
  unsigned long d = map(0, 2 * PAGE, PROT_READ, anon);
  show("d (2 pages, r--, after munmap of a)", d);
  // A 2 MiB private anonymous mapping: thp_get_unmapped_area pads and aligns; top-down moves an
  // already aligned result up by 2 MiB, bottom-up does not.
  unsigned long h = map(0, 2 * MIB, rw, anon);
  show("h (2 MiB)", h);

  // MAP_32BIT: bottom-up in [1 GiB, 2 GiB) in either layout.
  unsigned long e = map(0, PAGE, rw, anon | MAP_32BIT);
  unsigned long f = map(0, 3 * PAGE, PROT_READ, anon | MAP_32BIT);
  show("e (MAP_32BIT, 1 page)", e);
  show("f (MAP_32BIT, 3 pages, r--)", f);
  unsigned long g = map(0x10000000, PAGE, rw, anon | MAP_32BIT);
  show("g (MAP_32BIT, hint 0x10000000)", g);
  unsigned long i = map(0x7f0000000000, PAGE, rw, anon | MAP_32BIT);
  show("i (MAP_32BIT, hint 0x7f0000000000)", i);
  unsigned long j = map(0, 2 * MIB, rw, anon | MAP_32BIT);
  show("j (MAP_32BIT, 2 MiB)", j);
  show("k (MAP_32BIT, 1 GiB + 1 page)", map(0, (1UL << 30) + PAGE, PROT_NONE, anon | MAP_32BIT | MAP_NORESERVE));
  show("l (MAP_32BIT, 1 GiB)", map(0, 1UL << 30, PROT_NONE, anon | MAP_32BIT | MAP_NORESERVE));
  // Fill what is left of the window with 256 MiB pieces, then one more page.
  for (int n = 0; n < 4; n++) show("fill (MAP_32BIT, 256 MiB)", map(0, 256 * MIB, PROT_NONE, anon | MAP_32BIT | MAP_NORESERVE));
  unsigned long rest = 0;
  show("rest (MAP_32BIT, the largest power-of-two left)", rest = ({
    unsigned long got = 0;
    for (unsigned long len = 128 * MIB; len >= PAGE && !got; len >>= 1) got = map(0, len, PROT_NONE, anon | MAP_32BIT | MAP_NORESERVE);
    got;
  }));
  for (int n = 0; n < 16; n++) {
    unsigned long len = 0, got = 0;
    for (len = 128 * MIB; len >= PAGE && !got; len >>= 1) got = map(0, len, PROT_NONE, anon | MAP_32BIT | MAP_NORESERVE);
    if (!got) break;
  }
  show("full (MAP_32BIT, 1 page)", map(0, PAGE, rw, anon | MAP_32BIT));
  show_maps(0x40000000, 0x40400000);
  // mremap does not remember MAP_32BIT: growing e where f blocks it moves it where the layout
  // places any mapping.
  show("mremap e to 2 pages, MAYMOVE", (unsigned long)({
    void *p = mremap((void *)e, PAGE, 2 * PAGE, MREMAP_MAYMOVE);
    p == MAP_FAILED ? 0 : (unsigned long)p;
  }));

  // A grows-down VMA keeps stack_guard_gap (256 pages, 1 MiB) free below it. A hole of 32 MiB
  // and a page (no 2 MiB multiple, so no THP padding) is made and the VMA put 4 MiB into it:
  // 3 MiB fit below its guard gap, 3 MiB and a page do not.
  unsigned long r = map(0, 32 * MIB + PAGE, rw, anon);
  show("r (32 MiB + 1 page, unmapped again)", r);
  munmap((void *)r, 32 * MIB + PAGE);
  show("s (1 page, MAP_GROWSDOWN, at r + 4 MiB)", map(r + 4 * MIB, PAGE, rw, anon | MAP_GROWSDOWN | MAP_FIXED_NOREPLACE));
  show("3 MiB + 1 page", map(0, 3 * MIB + PAGE, PROT_READ, anon));
  show("3 MiB", map(0, 3 * MIB, rw | PROT_EXEC, anon));
  show_maps(r - 4 * MIB, r + 36 * MIB);
  return 0;
}
