/* MADV_GUARD_* across fork/mremap/mseal, holes (issue 13, rule 9). Run as root with setarch -R on Linux 6.18; output in guard_regions2.txt. */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/mman.h>
#include <signal.h>
#include <setjmp.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/wait.h>
#define GI 102
#define GR 103
#include <sys/syscall.h>
#define mseal(a,l,f) syscall(462,a,l,f)
#define MAP_DROPPABLE 0x08
static sigjmp_buf jb; static volatile int sig;
static void h(int s){ sig=s; siglongjmp(jb,1);}
static int rd(volatile char*p){ sig=0; if(!sigsetjmp(jb,1)){ (void)*p; return 0;} return sig;}
#define R(x) do{ fflush(stdout); int rr_=(x); printf("%-50s = %d %s\n", #x, rr_, rr_?strerror(errno):""); }while(0)
int main(){ signal(SIGSEGV,h); signal(SIGBUS,h); int ps=4096; pid_t c;
 char*s=mmap(0,2*ps,PROT_READ|PROT_WRITE,MAP_SHARED|MAP_ANONYMOUS,-1,0); s[0]=1; R(madvise(s,ps,GI));
 c=fork(); if(!c){ printf("child shared guard rd=%d\n",rd(s)); fflush(stdout); _exit(0);} waitpid(c,0,0);
 char*q=mremap(s,2*ps,2*ps,MREMAP_MAYMOVE|MREMAP_FIXED,s+1000*ps); printf("shared moved rd=%d\n",rd(q));
 char*h=mmap(0,4*ps,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0); munmap(h+ps,ps);
 R(madvise(h,4*ps,GI)); printf("after hole: rd0=%d rd2=%d\n",rd(h),rd(h+2*ps));
 R(madvise(h,4*ps,GR));
 char*r=mmap(0,2*ps,PROT_READ,MAP_PRIVATE|MAP_ANONYMOUS,-1,0); R(mseal(r,2*ps,0)); R(madvise(r,ps,GI)); R(madvise(r,ps,GR)); R(madvise(r,ps,MADV_DONTNEED));
 char*w=mmap(0,2*ps,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0); R(mseal(w,2*ps,0)); R(madvise(w,ps,GI)); printf("sealed rw rd=%d\n",rd(w));
 char*d=mmap(0,2*ps,PROT_READ|PROT_WRITE,MAP_DROPPABLE|MAP_ANONYMOUS,-1,0); printf("drop %p\n",d); R(madvise(d,ps,GI)); printf("drop rd=%d\n",rd(d));
 char*p=mmap(0,2*ps,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS|MAP_POPULATE,-1,0); R(madvise(p,2*ps,GI)); unsigned char v[2]; mincore(p,2*ps,v); printf("mincore %d %d\n",v[0],v[1]);
 R(madvise(p,ps,MADV_POPULATE_READ));
 R(madvise(p,ps,MADV_WILLNEED)); R(madvise(p,ps,MADV_COLD)); R(madvise(p,ps,MADV_PAGEOUT));
 char*m=mmap(0,4*ps,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0); R(madvise(m+ps,ps,GI)); m[0]=1;
 char*nm=mremap(m,4*ps,8*ps,MREMAP_MAYMOVE|MREMAP_DONTUNMAP); printf("dontunmap new rd1=%d old rd1=%d\n",rd(nm+ps),rd(m+ps));
 R(madvise(m,ps,100));
 return 0;}
