/* Top-down placement next to a grows-down VMA whose guard gap (1 MiB) holds a small VMA (issue
   13 review T2): Linux's unmapped_area_topdown retries below vm_start_gap(stack), so the free
   space inside the guard region is skipped. Run with setarch -R on 6.18. The gaps above the
   test area are filled first (with 64 KiB PROT_NONE maps) so that the searches start there. */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/mman.h>
int main(){
  size_t M=1<<20, K=1<<10;
  char *r=mmap(0,64*M,PROT_NONE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0); munmap(r,64*M);
  char *t=r+64*M, *f;
  while((f=mmap(0,64*K,PROT_NONE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0)) >= t) {}
  munmap(f,64*K);
  t=f+64*K;                      /* the test area's top: no gap of 64 KiB above it */
  char *s=t-4*M;
  mmap(s,4*M,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED|MAP_GROWSDOWN,-1,0);
  char *x=mmap(s-512*K,64*K,PROT_READ,MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED,-1,0);
  char *a=mmap(0,64*K,PROT_READ,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
  char *b=mmap(0,256*K,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
  printf("stack S=%p, x at S-%#lx, then 64K at S-%#lx, 256K at S-%#lx\n", s, (unsigned long)(s-x), (unsigned long)(s-a), (unsigned long)(s-b));
}
