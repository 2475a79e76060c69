/* mincore of a MAP_SHARED|MAP_HUGETLB mapping (issue 13 review F6), run as root on 6.18 with nr_hugepages=1 (0 again after): the mapping's huge entry, not the file's page. */
#define _GNU_SOURCE
#include <stdio.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
int main(){
  setvbuf(stdout, 0, _IONBF, 0);
  size_t H=2<<20; unsigned char v[512];
  char *p=mmap(0,H,PROT_READ|PROT_WRITE,MAP_SHARED|MAP_ANONYMOUS|MAP_HUGETLB,-1,0);
  p[100]=5; mincore(p,H,v); printf("touched: %d %d\n", v[0], v[511]);
  pid_t c=fork();
  if(c==0){ mincore(p,H,v); printf("child before touching: %d\n", v[0]); printf("child reads %d\n", p[100]); mincore(p,H,v); printf("child after: %d\n", v[0]); _exit(0);} 
  waitpid(c,0,0);
  madvise(p,H,MADV_DONTNEED); mincore(p,H,v); printf("after DONTNEED: %d\n", v[0]);
  printf("reads %d\n", p[100]); mincore(p,H,v); printf("after refault: %d\n", v[0]);
}
