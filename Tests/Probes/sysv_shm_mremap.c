/* mremap(MREMAP_FIXED, equal sizes) over System V VMAs (issue 13, rule 9), 6.18 as root. Output: sysv_shm_mremap.txt. */
#define _GNU_SOURCE
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <sys/shm.h>
#include <sys/mman.h>
int main(){ int id=shmget(IPC_PRIVATE,4*4096,IPC_CREAT|0600); char*b=shmat(id,0,0);
 mprotect(b,4096,PROT_READ);
 void*r=mremap(b,8*4096,8*4096,MREMAP_MAYMOVE|MREMAP_FIXED,b-64*4096); printf("two VMAs and a hole: %s\n", r==MAP_FAILED?strerror(errno):"moved");
 r=mremap(b+4096,4*4096,4*4096,MREMAP_MAYMOVE|MREMAP_FIXED,b-64*4096); printf("one VMA and a hole: %s\n", r==MAP_FAILED?strerror(errno):"moved");
 r=mremap(b+4096,3*4096,3*4096,MREMAP_MAYMOVE|MREMAP_FIXED,b-64*4096); printf("one whole VMA: %s\n", r==MAP_FAILED?strerror(errno):"moved");
 shmdt(b); printf("shmdt(to): %d\n", shmdt(b-64*4096)); printf("shmdt(to-1p): %d\n", shmdt(b-65*4096)); struct shmid_ds d; shmctl(id,IPC_STAT,&d); printf("nattch %lu\n", d.shm_nattch); shmctl(id,IPC_RMID,0); }
