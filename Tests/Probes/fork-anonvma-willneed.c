// Host probe for issue 13, engine rules 6 and 7 (Tests/AddressSpaceTests/LinuxRulesForkMadviseTests.swift).
// Build and run: cc -O0 -Wall -o /tmp/probe fork-anonvma-willneed.c && /tmp/probe
// Output recorded in fork-anonvma-willneed.txt (Linux 6.18, x86-64, 4 KiB pages).
//
// Rule 6: MADV_WILLNEED on shmem (shared anonymous memory, a memfd, a file on /dev/shm) only swaps
// pages back in; a hole stays a hole, so mincore shows 0 for every page never written. A file on
// a disk file system is read ahead: mincore shows 1 for every page below EOF.
// Rule 7: fork gives each child VMA its own anon_vma, so two child VMAs split from one parent VMA
// do not merge again when the child restores the protection between them; in the parent they do.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096UL
#define BASE ((char *)0x7f0000000000UL)

static void check(int ok, const char *what) {
  if (!ok) {
    perror(what);
    exit(1);
  }
}

static void show_mincore(const char *label, char *p, size_t pages) {
  unsigned char v[16];
  check(mincore(p, pages * PAGE, v) == 0, "mincore");
  printf("%s:", label);
  for (size_t i = 0; i < pages; i++) printf(" %d", v[i] & 1);
  printf("\n");
}

// Prints the maps lines that lie in [lo, hi).
static void show_maps(const char *who, unsigned long lo, unsigned long hi) {
  char line[512];
  FILE *f = fopen("/proc/self/maps", "r");
  check(f != NULL, "fopen maps");
  while (fgets(line, sizeof line, f)) {
    unsigned long s, e;
    if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s >= lo && e <= hi) printf("%s: %s", who, line);
  }
  fclose(f);
}

// Shows mincore of the four pages at p before and after MADV_WILLNEED over them, then unmaps them.
static void willneed(const char *label, char *p) {
  char name[64];
  snprintf(name, sizeof name, "%s before", label);
  show_mincore(name, p, 4);
  check(madvise(p, 4 * PAGE, MADV_WILLNEED) == 0, "madvise");
  snprintf(name, sizeof name, "%s after WILLNEED", label);
  show_mincore(name, p, 4);
  munmap(p, 4 * PAGE);
}

// An unlinked temporary file made from template (mkstemp's XXXXXX form).
static int temp_file(char *template) {
  int fd = mkstemp(template);
  check(fd >= 0, template);
  unlink(template);
  return fd;
}

static void willneed_on_file(const char *label, int fd) {
  // Four pages of size; page 2 written through write(2), the others holes.
  check(ftruncate(fd, 4 * PAGE) == 0, "ftruncate");
  char buf[PAGE];
  memset(buf, 'x', PAGE);
  check(pwrite(fd, buf, PAGE, 2 * PAGE) == (ssize_t)PAGE, "pwrite");
  char *p = mmap(NULL, 4 * PAGE, PROT_READ, MAP_SHARED, fd, 0);
  check(p != MAP_FAILED, "mmap file");
  willneed(label, p);
}

int main(void) {
  // Rule 6a: shared anonymous memory, page 0 written.
  char *s = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  check(s != MAP_FAILED, "mmap shared");
  s[0] = 1;
  willneed("shared-anon", s);

  // Rule 6b: a memfd and a tmpfs file.
  int m = memfd_create("probe", 0);
  check(m >= 0, "memfd_create");
  willneed_on_file("memfd", m);
  close(m);
  char path[] = "/dev/shm/probe-XXXXXX";
  int t = temp_file(path);
  willneed_on_file("tmpfs", t);
  close(t);

  // Rule 6c, for contrast: a file on the root (ext4) file system, its cache dropped first.
  char dpath[] = "/var/tmp/probe-XXXXXX";
  int d = temp_file(dpath);
  check(ftruncate(d, 3 * PAGE + 100) == 0, "ftruncate disk");
  fsync(d);
  posix_fadvise(d, 0, 0, POSIX_FADV_DONTNEED);
  char *f = mmap(NULL, 4 * PAGE, PROT_READ, MAP_SHARED, d, 0);
  check(f != MAP_FAILED, "mmap disk");
  willneed("disk", f);
  close(d);

  // Rule 7: four written pages at BASE, the third made read-only before the fork (three VMAs
  // sharing one anon_vma); three untouched pages at BASE + 16 pages, the middle one read-only.
  char *a = mmap(BASE, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  check(a == BASE, "mmap a");
  memset(a, 1, 4 * PAGE);
  check(mprotect(a + 2 * PAGE, PAGE, PROT_READ) == 0, "mprotect a");
  char *u = mmap(BASE + 16 * PAGE, 3 * PAGE, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  check(u == BASE + 16 * PAGE, "mmap u");
  check(mprotect(u + PAGE, PAGE, PROT_READ) == 0, "mprotect u");
  unsigned long lo = (unsigned long)BASE, hi = lo + 32 * PAGE;
  show_maps("parent before fork", lo, hi);
  fflush(stdout);
  pid_t pid = fork();
  check(pid >= 0, "fork");
  if (pid == 0) {
    // A split and restore inside one child VMA merges back: both halves keep its anon_vma.
    check(mprotect(a, PAGE, PROT_READ) == 0, "child split");
    show_maps("child after splitting its first VMA", lo, hi);
    check(mprotect(a, PAGE, PROT_READ | PROT_WRITE) == 0, "child restore");
    show_maps("child after restoring that split", lo, hi);
    check(mprotect(a + 2 * PAGE, PAGE, PROT_READ | PROT_WRITE) == 0, "child mprotect a");
    check(mprotect(u + PAGE, PAGE, PROT_READ | PROT_WRITE) == 0, "child mprotect u");
    show_maps("child after restoring the parent's splits", lo, hi);
    fflush(stdout);
    _exit(0);
  }
  int status;
  waitpid(pid, &status, 0);
  check(mprotect(a + 2 * PAGE, PAGE, PROT_READ | PROT_WRITE) == 0, "parent mprotect a");
  check(mprotect(u + PAGE, PAGE, PROT_READ | PROT_WRITE) == 0, "parent mprotect u");
  show_maps("parent after restoring", lo, hi);
  return 0;
}
