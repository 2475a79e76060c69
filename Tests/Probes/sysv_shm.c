/* SysV shm: ids, sizes, shmat placement/flags, nattch, shmdt, IPC_RMID, fork (issue 13, rule 9). Run as root with setarch -R on Linux 6.18; output in sysv_shm.txt. */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#define M(x) do{ fflush(stdout); void* rr_=(x); printf("%-60s = %p %s\n", #x, rr_, rr_==(void*)-1?strerror(errno):""); }while(0)
#define R(x) do{ fflush(stdout); long rr_=(x); printf("%-60s = %ld %s\n", #x, rr_, rr_<0?strerror(errno):""); }while(0)
static void maps(){ char cmd[100]; sprintf(cmd,"grep -E 'SYSV|7ffff7fb|7ffff7fc[01]' /proc/%d/maps",getpid()); fflush(stdout); system(cmd);}
static int nat(int id){ struct shmid_ds d; if(shmctl(id,IPC_STAT,&d)<0) return -errno; return d.shm_nattch;}
int ps=4096;
int main(){
 int id=shmget(IPC_PRIVATE,56,IPC_CREAT|IPC_EXCL|0600); printf("id=%d\n",id);
 struct shmid_ds ds; shmctl(id,IPC_STAT,&ds); printf("segsz=%zu nattch=%lu key=%x mode=%o\n",ds.shm_segsz,ds.shm_nattch,ds.shm_perm.__key,ds.shm_perm.mode);
 char*a=shmat(id,0,0); printf("at %p nattch=%d\n",a,nat(id)); maps();
 char*b=shmat(id,0,SHM_RDONLY); printf("at ro %p nattch=%d\n",b,nat(id)); maps();
 a[0]=5; printf("b[0]=%d\n",b[0]);
 R(shmget(IPC_PRIVATE,0,IPC_CREAT|0600));
 R(shmget(0x1234,0,0600)); R(shmget(0x1234,0,IPC_CREAT|0600)); 
 int k=shmget(0x1234,3*ps+5,IPC_CREAT|0600); printf("key id=%d\n",k);
 R(shmget(0x1234,3*ps+5,IPC_CREAT|IPC_EXCL|0600)); R(shmget(0x1234,3*ps+6,0600)); R(shmget(0x1234,100,0600)); R(shmget(0x1234,0,0600));
 R(shmget(0x1234,0,IPC_CREAT|0600));
 char*c=shmat(k,0,0); printf("k at %p\n",c); maps();
 printf("c[4ps]: mapping is "); /* size rounds up */
 M(shmat(99999999,0,0)); M(shmat(-1,0,0)); M(shmat(k,(void*)0x10001,0)); M(shmat(k,(void*)0x10001,SHM_RND)); maps();
 M(shmat(k,c,0)); M(shmat(k,c,SHM_REMAP)); maps(); M(shmat(k,(void*)0x20000,SHM_REMAP)); M(shmat(k,0,SHM_REMAP));
 M(shmat(k,(void*)0x7ffffffff000,0)); M(shmat(k,(void*)0x1000,0)); M(shmat(k,(void*)0x800000000000,0));
 M(shmat(k,(void*)0x30000,SHM_EXEC)); maps();
 printf("nattch k=%d\n",nat(k));
 R(mprotect(c+ps,ps,PROT_READ)); printf("after split nattch=%d\n",nat(k)); maps();
 R(shmdt(c+ps)); R(shmdt(c+1)); printf("nattch=%d\n",nat(k));
 R(shmdt(c)); printf("after dt nattch=%d\n",nat(k)); maps();
 R(shmdt((void*)0x7fff0000)); 
 R(shmctl(k,IPC_RMID,0)); printf("after rmid nat=%d\n",nat(k)); shmctl(k,IPC_STAT,&ds); printf("key=%x mode=%o\n",ds.shm_perm.__key,ds.shm_perm.mode); maps();
 M(shmat(k,0,0)); printf("nat=%d\n",nat(k)); R(shmget(0x1234,0,0600)); 
 pid_t p=fork(); if(!p){ printf("child nat=%d\n",nat(k)); fflush(stdout); _exit(0);} waitpid(p,0,0);
 system("ipcs -m | grep -v '^$'");
 R(shmdt((void*)0x30000)); R(shmdt((void*)0x10000)); printf("nat=%d\n",nat(k));
 R(shmctl(k,IPC_STAT,&ds));
 // detach remaining
 void*x[4]={}; 
 R(shmctl(id,IPC_RMID,0)); R(shmctl(id,IPC_RMID,0)); R(shmctl(99999,IPC_RMID,0)); R(shmctl(id,1234,0));
 R(shmget(IPC_PRIVATE,1UL<<62,IPC_CREAT|0600)); 
 R(shmget(0x5555,ps,0600|IPC_EXCL));
 int z=shmget(IPC_PRIVATE,ps,IPC_CREAT|0400); M(shmat(z,0,0)); M(shmat(z,0,SHM_RDONLY)); shmctl(z,IPC_RMID,0);
 // munmap of shm area
 int y=shmget(IPC_PRIVATE,2*ps,IPC_CREAT|0600); char*ya=shmat(y,0,0); R(munmap(ya,ps)); printf("nat after munmap one page=%d\n",nat(y)); R(shmdt(ya)); R(shmdt(ya+ps)); printf("nat=%d\n",nat(y));
 char*yb=shmat(y,0,0); char*yc=mremap(yb,2*ps,4*ps,MREMAP_MAYMOVE); printf("mremap %p nat=%d\n",yc,nat(y)); maps(); R(shmdt(yc)); printf("nat=%d\n",nat(y));
 shmctl(y,IPC_RMID,0);
 return 0;}
