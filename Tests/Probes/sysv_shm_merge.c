/* SysV VMAs and merging (issue 13, rule 9): a whole-VMA change never merges (shm_close), run as root on 6.18. Output: sysv_shm_merge.txt. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/shm.h>
#include <sys/mman.h>
#include <unistd.h>
static void maps(const char*t){ char c[128]; printf("%s\n",t); fflush(stdout); sprintf(c,"grep SYSV /proc/%d/maps",getpid()); system(c);}
int main(){ int id=shmget(IPC_PRIVATE,4*4096,IPC_CREAT|0600); char*a=shmat(id,0,0);
 mprotect(a+4096,4096,PROT_READ); maps("after mprotect(a+1p, 1p, R):");
 mprotect(a+4096,4096,PROT_READ|PROT_WRITE); maps("after mprotect(a+1p, 1p, RW) (whole middle VMA):");
 mprotect(a+2*4096,4096,PROT_READ); maps("after mprotect(a+2p, 1p, R):");
 mprotect(a+2*4096,4096,PROT_READ|PROT_WRITE); maps("after mprotect(a+2p, 1p, RW) (whole VMA):");
 mprotect(a,2*4096,PROT_READ); maps("after mprotect(a, 2p, R) (two whole VMAs):");
 shmdt(a); shmctl(id,IPC_RMID,0); }
