/* MAP_DROPPABLE: errno, smaps VmFlags, mlock, madvise, fork (issue 13, rule 9). Run as root with setarch -R on Linux 6.18; output in map_droppable.txt. */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/mman.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#define MAP_DROPPABLE 0x08
#define M(x) do{ fflush(stdout); void* rr_=(x); printf("%-70s = %p %s\n", #x, rr_, rr_==MAP_FAILED?strerror(errno):""); }while(0)
#define R(x) do{ fflush(stdout); int rr_=(x); printf("%-70s = %d %s\n", #x, rr_, rr_?strerror(errno):""); }while(0)
static void smaps(void*a){ char b[65536]; int f=open("/proc/self/smaps",O_RDONLY); int n=0,k; while((k=read(f,b+n,sizeof b-1-n))>0)n+=k; b[n]=0; close(f);
 char key[32]; sprintf(key,"%lx-",(unsigned long)a); char*s=strstr(b,key); if(!s)return; char*e=strstr(s+1,"VmFlags"); char*nl=strchr(e,'\n'); *nl=0; printf("%s\n",s);}
int ps=4096;
int main(){ int fd=open("/tmp/hc/f",O_RDWR|O_CREAT,0600); ftruncate(fd,2*ps);
 char*d=mmap(0,2*ps,PROT_READ|PROT_WRITE,MAP_DROPPABLE|MAP_ANONYMOUS,-1,0); d[0]=7; smaps(d);
 M(mmap(0,2*ps,PROT_READ|PROT_WRITE,MAP_DROPPABLE,fd,0));
 M(mmap(0,2*ps,PROT_READ|PROT_WRITE,MAP_DROPPABLE,-1,0));
 M(mmap(0,2*ps,PROT_READ|PROT_WRITE,MAP_DROPPABLE|MAP_ANONYMOUS|MAP_GROWSDOWN,-1,0));
 M(mmap(0,2*ps,PROT_READ|PROT_WRITE,MAP_DROPPABLE|MAP_ANONYMOUS|MAP_LOCKED,-1,0));
 void*l=mmap(0,2*ps,PROT_READ|PROT_WRITE,MAP_DROPPABLE|MAP_ANONYMOUS|MAP_LOCKED,-1,0); smaps(l);
 void*hh=mmap(0,2*ps,PROT_READ|PROT_WRITE,MAP_DROPPABLE|MAP_ANONYMOUS|MAP_HUGETLB,-1,0); printf("hugetlb %p %s\n",hh, hh==MAP_FAILED?strerror(errno):"");
 M(mmap(0,2*ps,PROT_READ|PROT_WRITE,MAP_DROPPABLE|MAP_ANONYMOUS|MAP_POPULATE|MAP_NORESERVE|MAP_STACK,-1,0));
 M(mmap(0,2*ps,PROT_READ|PROT_WRITE,MAP_DROPPABLE|MAP_SHARED|MAP_ANONYMOUS,-1,0));
 M(mmap(0,2*ps,PROT_READ|PROT_WRITE,0x0c|MAP_ANONYMOUS,-1,0));
 M(mmap(0,2*ps,PROT_READ|PROT_WRITE,0x0a|MAP_ANONYMOUS,-1,0));
 R(mlock(d,2*ps)); smaps(d);
 R(mlock2(d,2*ps,MLOCK_ONFAULT));
 R(madvise(d,ps,MADV_KEEPONFORK)); R(madvise(d,ps,MADV_DODUMP)); R(madvise(d,ps,MADV_WIPEONFORK)); R(madvise(d,ps,MADV_DONTFORK)); smaps(d);
 R(madvise(d,ps,MADV_DOFORK));
 R(madvise(d,ps,MADV_FREE)); R(madvise(d,ps,MADV_REMOVE));
 d[ps]=9; pid_t c=fork(); if(!c){ printf("child d[ps]=%d\n",d[ps]); fflush(stdout); _exit(0);} waitpid(c,0,0);
 // merge
 char*a=mmap(0,4*ps,PROT_READ|PROT_WRITE,MAP_DROPPABLE|MAP_ANONYMOUS,-1,0);
 char*b=mmap(a+4*ps,4*ps,PROT_READ|PROT_WRITE,MAP_DROPPABLE|MAP_ANONYMOUS|MAP_FIXED,-1,0);
 char*p=mmap(a+8*ps,4*ps,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED,-1,0);
 char cmd[100]; sprintf(cmd,"grep -A0 %lx /proc/%d/maps; cat /proc/%d/maps | tail -20", (unsigned long)a>>16, getpid(), getpid()); system(cmd);
 R(mlockall(MCL_CURRENT|MCL_FUTURE)); void*f2=mmap(0,2*ps,PROT_READ|PROT_WRITE,MAP_DROPPABLE|MAP_ANONYMOUS,-1,0); smaps(f2); smaps(a);
 munlockall();
 void* mr=mremap(a,8*ps,16*ps,MREMAP_MAYMOVE); printf("mremap %p\n",mr); smaps(mr);
 R(mprotect(mr,ps,PROT_READ)); smaps(mr);
 return 0;}
