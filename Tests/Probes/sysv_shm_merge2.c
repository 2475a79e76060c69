/* Partial change merges into the neighbour (issue 13, rule 9). Output: sysv_shm_merge2.txt. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/shm.h>
#include <sys/mman.h>
#include <unistd.h>
static void maps(const char*t){ char c[128]; printf("%s\n",t); fflush(stdout); sprintf(c,"grep SYSV /proc/%d/maps",getpid()); system(c);}
int main(){ int id=shmget(IPC_PRIVATE,4*4096,IPC_CREAT|0600); char*a=shmat(id,0,0);
 mprotect(a,4096,PROT_READ); maps("after mprotect(a, 1p, R):");
 mprotect(a+4096,4096,PROT_READ); maps("after mprotect(a+1p, 1p, R) (part of the second VMA):");
 shmdt(a); shmctl(id,IPC_RMID,0); }
