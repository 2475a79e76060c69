/* SysV shm errno probe (issue 13, rule 9); run as root on 6.18. Output: sysv_shm2.txt. */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/shm.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#define R(x) do{ fflush(stdout); long rr_=(x); printf("%-60s = %ld %s\n", #x, rr_, rr_<0?strerror(errno):""); }while(0)
int main(){ 
 R(shmget(IPC_PRIVATE,4096,IPC_CREAT|SHM_HUGETLB|0600));
 R(shmget(IPC_PRIVATE,1UL<<40,IPC_CREAT|0600));
 long big=shmget(IPC_PRIVATE,1UL<<40,IPC_CREAT|SHM_NORESERVE|0600); printf("%-60s = %ld\n","shmget(IPC_PRIVATE,1UL<<40,IPC_CREAT|SHM_NORESERVE|0600)",big); shmctl(big,IPC_RMID,0);
 R(shmget(IPC_PRIVATE,-1UL,IPC_CREAT|0600));
 R(shmget(IPC_PRIVATE,-1UL - (1UL<<25),IPC_CREAT|0600));
 int id=shmget(IPC_PRIVATE,4096,IPC_CREAT|0600); struct shmid_ds d; 
 R(shmctl(id,IPC_STAT|0x100,&d)); R(shmctl(id,IPC_INFO,(void*)&d)); R(shmctl(id,SHM_INFO,(void*)&d)); R(shmctl(id,SHM_LOCK,0)); R(shmctl(id,SHM_UNLOCK,0));R(shmctl(id,SHM_STAT,&d)); R(shmctl(0,SHM_STAT,&d));
 R(shmctl(id,IPC_SET,&d));
 void*a=shmat(id,0,0); R(shmdt(a)); R(shmdt(a)); R(shmctl(id,IPC_RMID,0)); R(shmctl(id,IPC_STAT,&d)); R((long)shmat(id,0,0));
 R(shmctl(-1,IPC_STAT,&d));
 R(shmctl(id+5,IPC_STAT,&d));
 R(shmctl(id+32768,IPC_STAT,&d));
 }
