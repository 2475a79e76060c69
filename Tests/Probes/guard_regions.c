/* MADV_GUARD_INSTALL/REMOVE (issue 13, rule 9). Run as root with setarch -R on Linux 6.18; output in guard_regions.txt. */
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
static sigjmp_buf jb; static volatile int sig;
static void h(int s){ sig=s; siglongjmp(jb,1);}
static int rd(volatile char*p){ sig=0; if(!sigsetjmp(jb,1)){ (void)*p; return 0;} return sig;}
static int wr(volatile char*p){ sig=0; if(!sigsetjmp(jb,1)){ *p=1; return 0;} return sig;}
#define R(x) do{ fflush(stdout); int r=(x); printf("%-50s = %d %s\n", #x, r, r?strerror(errno):""); }while(0)
static void maps(){ char b[8192]; int f=open("/proc/self/maps",O_RDONLY); int n=read(f,b,sizeof b-1); b[n]=0; close(f);
 for(char*l=strtok(b,"\n");l;l=strtok(0,"\n")) if(strstr(l,"7ffff7f")||strstr(l,"7ffff7e")) printf("  %s\n",l);}
int main(){ signal(SIGSEGV,h); signal(SIGBUS,h);
 int ps=4096; char*p=mmap(0,10*ps,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
 p[0]=5; p[ps]=6;
 R(madvise(p,ps,GI)); printf("rd p0 sig=%d wr=%d rd p1=%d val=%d\n", rd(p), wr(p), rd(p+ps), p[ps]);
 unsigned char v[10]; mincore(p,10*ps,v); printf("mincore:"); for(int i=0;i<10;i++)printf(" %d",v[i]); printf("\n");
 R(madvise(p,ps,MADV_DONTNEED)); printf("after dontneed rd=%d\n",rd(p));
 R(madvise(p,ps,MADV_FREE)); printf("after free rd=%d\n",rd(p));
 R(madvise(p,2*ps,MADV_POPULATE_READ));R(madvise(p,2*ps,MADV_POPULATE_WRITE));
 R(mprotect(p,ps,PROT_READ)); printf("after mprotect rd=%d\n",rd(p)); R(mprotect(p,ps,PROT_READ|PROT_WRITE));
 maps();
 R(madvise(p,ps,GR)); printf("after remove rd=%d val=%d\n",rd(p),p[0]);
 R(madvise(p+2*ps,ps,GI));
 pid_t c=fork(); if(!c){ printf("child rd guard=%d\n",rd(p+2*ps)); fflush(stdout); _exit(0);} waitpid(c,0,0);
 // dontfork
 char*q=mremap(p,10*ps,10*ps,MREMAP_MAYMOVE|MREMAP_FIXED,p+100*ps); printf("mremap %p->%p rd moved guard=%d\n",p,q,rd(q+2*ps));
 char*q2=mremap(q,10*ps,20*ps,MREMAP_MAYMOVE); printf("grow %p rd=%d\n",q2,rd(q2+2*ps));
 R(munmap(q2+2*ps,ps)); char*m=mmap(q2+2*ps,ps,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED,-1,0); printf("remap rd=%d\n",rd(m));
 // errors
 char*l=mmap(0,2*ps,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS|MAP_LOCKED,-1,0); R(madvise(l,ps,GI));
 R(madvise(l,ps,GR));
 char*s=mmap(0,2*ps,PROT_READ|PROT_WRITE,MAP_SHARED|MAP_ANONYMOUS,-1,0); R(madvise(s,ps,GI)); printf("shared rd=%d\n",rd(s));
 int fd=open("/tmp/hc/f",O_RDWR|O_CREAT,0600); ftruncate(fd,2*ps);
 char*f=mmap(0,2*ps,PROT_READ,MAP_PRIVATE,fd,0); R(madvise(f,ps,GI)); printf("file priv rd=%d\n",rd(f));
 c=fork(); if(!c){ printf("child file guard rd=%d\n",rd(f)); fflush(stdout); _exit(0);} waitpid(c,0,0);
 char*fs=mmap(0,2*ps,PROT_READ|PROT_WRITE,MAP_SHARED,fd,0); R(madvise(fs,ps,GI)); printf("file shared rd=%d\n",rd(fs));
 char*pn=mmap(0,2*ps,PROT_NONE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0); R(madvise(pn,ps,GI));
 R(madvise(pn+ps,ps,GI)); 
 R(madvise(0,ps,GI)); R(madvise(pn+1,ps,GI)); R(madvise(pn+100*ps,ps,GI));
 char*g=mmap(0,4*ps,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0); R(madvise(g+ps,ps,GI)); R(mlock(g,4*ps)); 
 R(madvise(g+ps,ps,GR)); R(munlock(g,4*ps)); R(madvise(g+ps,ps,GI)); R(mlock2(g,4*ps,MLOCK_ONFAULT));
 R(madvise(g,ps,MADV_WIPEONFORK)); 
 char*d=mmap(0,4*ps,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0); d[0]=1; R(madvise(d,ps,MADV_DONTFORK)); R(madvise(d,ps,GI));
 c=fork(); if(!c){ printf("child dontfork rd=%d\n",rd(d)); fflush(stdout); _exit(0);} waitpid(c,0,0);
 char*w=mmap(0,4*ps,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0); R(madvise(w,4*ps,MADV_WIPEONFORK)); R(madvise(w,ps,GI));
 c=fork(); if(!c){ printf("child wipeonfork rd=%d\n",rd(w)); fflush(stdout); _exit(0);} waitpid(c,0,0);
 R(madvise(w+ps,ps,MADV_REMOVE));
 char *h2=mmap(0,2*ps,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0); R(madvise(h2,ps,GI)); R(madvise(h2+ps,ps,GI)); 
 printf("gap1 between guard and mapped: %s\n","");
 return 0;}
