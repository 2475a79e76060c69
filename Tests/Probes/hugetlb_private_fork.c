/* MAP_PRIVATE|MAP_HUGETLB across fork (issue 13 review F2), run as root on 6.18 with nr_hugepages=3 (set for the run, 0 again after); output in hugetlb_private_fork.txt. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <setjmp.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
static sigjmp_buf jb;
static void onbus(int s){ siglongjmp(jb, 1); }
static void pool(const char *at){ FILE*f=fopen("/proc/meminfo","r"); char l[256]; int t=0,fr=0,rs=0; while(fgets(l,sizeof l,f)){ sscanf(l,"HugePages_Total: %d",&t); sscanf(l,"HugePages_Free: %d",&fr); sscanf(l,"HugePages_Rsvd: %d",&rs);} fclose(f); printf("%s: total=%d free=%d rsvd=%d\n", at,t,fr,rs); fflush(stdout);}
static int store(char *p, char v){ if(sigsetjmp(jb,1)) return -1; *(volatile char*)p=v; return 0; }
static int load(char *p){ if(sigsetjmp(jb,1)) return -1; return *(volatile char*)p; }
int main(int argc, char**argv){
  setvbuf(stdout, 0, _IONBF, 0); signal(SIGBUS, onbus);
  size_t H=2<<20;
  char *p=mmap(0,2*H,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB,-1,0);
  if(p==MAP_FAILED){perror("mmap");return 1;}
  pool("mapped 2");
  p[100]=5; pool("parent wrote page 0");
  pid_t c=fork();
  if(c==0){
    printf("child reads %d\n", load(p+100)); pool("child read");
    unsigned char v; mincore(p,2*H,&v); /* first base page only */
    unsigned char vec[1024]; mincore(p,2*H,vec); printf("child mincore page0=%d page1=%d\n", vec[0], vec[512]);
    printf("child store page1 (unfaulted, parent's reservation): %d\n", store(p+H, 1)); pool("child wrote page 1");
    printf("child store page0: %d\n", store(p+100, 6)); pool("child wrote page 0");
    printf("child reads %d\n", load(p+100));
    madvise(p,H,MADV_DONTNEED); pool("child DONTNEED page 0");
    mincore(p,2*H,vec); printf("child mincore after DONTNEED page0=%d\n", vec[0]);
    printf("child reads after DONTNEED %d\n", load(p+100)); pool("child refaulted page 0");
    fflush(stdout); _exit(0);
  }
  waitpid(c,0,0); pool("child exited");
  printf("parent reads %d\n", load(p+100));
  unsigned char vec[1024]; mincore(p,2*H,vec); printf("parent mincore page0=%d page1=%d\n", vec[0], vec[512]);
  /* parent writes first after fork */
  c=fork();
  if(c==0){ sleep(1); printf("child2 reads %d\n", load(p+100)); fflush(stdout); _exit(0);} 
  printf("parent store page0: %d\n", store(p+100, 7)); pool("parent COW page 0");
  waitpid(c,0,0); pool("child2 exited");
  printf("parent store again: %d\n", store(p+100, 8)); pool("parent reuse");
  /* pool exhausted: fill it, then child COW */
  char *q=mmap(0,H,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB|MAP_NORESERVE,-1,0);
  int qs = q==MAP_FAILED ? -2 : store(q,1); printf("q store %d\n", qs); pool("q");
  c=fork();
  if(c==0){ printf("child3 store page0 with empty pool: %d\n", store(p+100, 9)); pool("child3"); fflush(stdout); _exit(0);} 
  waitpid(c,0,0);
  c=fork();
  if(c==0){ sleep(1); printf("child4 reads %d\n", load(p+100)); fflush(stdout); _exit(0);} 
  printf("parent (owner) store page0 with empty pool: %d\n", store(p+100, 10)); pool("owner COW empty pool");
  int st; waitpid(c,&st,0); printf("child4 status %s %d\n", WIFSIGNALED(st)?"signal":"exit", WIFSIGNALED(st)?WTERMSIG(st):WEXITSTATUS(st));
  munmap(p,2*H); pool("unmapped");
  return 0;
}
