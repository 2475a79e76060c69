/* MAP_PRIVATE|MAP_HUGETLB across fork with room in the pool (issue 13 review F2), run as root on 6.18 with nr_hugepages=4 (0 again after); output in hugetlb_private_fork2.txt. */
#define _GNU_SOURCE
#include <stdio.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
static void pool(const char *at){ FILE*f=fopen("/proc/meminfo","r"); char l[256]; int t=0,fr=0,rs=0; while(fgets(l,sizeof l,f)){ sscanf(l,"HugePages_Total: %d",&t); sscanf(l,"HugePages_Free: %d",&fr); sscanf(l,"HugePages_Rsvd: %d",&rs);} fclose(f); printf("%s: total=%d free=%d rsvd=%d\n", at,t,fr,rs);}
int main(){
  setvbuf(stdout, 0, _IONBF, 0);
  size_t H=2<<20; int fds[2]; pipe(fds); char b;
  char *p=mmap(0,H,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB,-1,0);
  p[100]=5; pool("parent wrote");
  pid_t c=fork();
  if(c==0){
    p[100]=6; pool("child copied"); printf("child reads %d\n", p[100]);
    write(fds[1],"x",1); sleep(1);
    printf("child reads after parent's write %d\n", p[100]);
    madvise(p,H,MADV_DONTNEED); pool("child DONTNEED");
    printf("child reads after DONTNEED %d\n", p[100]); pool("child refaulted");
    _exit(0);
  }
  read(fds[0],&b,1);
  printf("parent reads %d\n", p[100]);
  p[100]=7; pool("parent wrote while child holds its copy");
  waitpid(c,0,0); pool("child exited");
  printf("parent reads %d\n", p[100]);
  munmap(p,H); pool("unmapped");
}
