/* issue 13 review of System V shm: run as root under `unshare -i` (fresh IPC namespace); the child
   drops to nobody. */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>
#ifndef SHM_HUGETLB
#define SHM_HUGETLB 04000
#endif
#ifndef SHM_NORESERVE
#define SHM_NORESERVE 010000
#endif
static void r(const char *what, int v){ printf("%s = %d%s%s\n", what, v, v<0?" ":"", v<0?strerror(errno):""); }
int main(){
  int id=shmget(IPC_PRIVATE,4096,IPC_CREAT|0x80000000|0600); r("shmget(IPC_CREAT|0x80000000|0600)", id);
  struct shmid_ds ds; shmctl(id,IPC_STAT,&ds); printf("mode=%o\n", ds.shm_perm.mode); shmctl(id,IPC_RMID,0);
  for(int i=0;i<66;i++){ int k=shmget(IPC_PRIVATE,4096,IPC_CREAT|0600); if(i<2||i>61) printf("cycle %d: id %d\n", i, k); shmctl(k,IPC_RMID,0);} 
  /* 3 kept, then cycle */
  r("root SHM_HUGETLB", shmget(IPC_PRIVATE,2<<20,IPC_CREAT|SHM_HUGETLB|0600));
  int h=shmget(IPC_PRIVATE,2<<20,IPC_CREAT|SHM_HUGETLB|SHM_NORESERVE|0600); r("root SHM_HUGETLB|SHM_NORESERVE", h);
  if(h>=0){ char*p=shmat(h,0,0); printf("attach %p\n", p); shmctl(h,IPC_STAT,&ds); printf("segsz=%zu\n", ds.shm_segsz); shmdt(p); shmctl(h,IPC_RMID,0);} 
  int z=shmget(IPC_PRIVATE,4096,IPC_CREAT|0000);
  int w=shmget(IPC_PRIVATE,4096,IPC_CREAT|0600);
  r("root IPC_STAT 0000", shmctl(z,IPC_STAT,&ds));
  fflush(stdout);
  if(fork()==0){ setgid(65534); setuid(65534);
    int z2=shmget(IPC_PRIVATE,4096,IPC_CREAT|0000); int w2=shmget(IPC_PRIVATE,4096,IPC_CREAT|0200);
    r("nobody IPC_STAT own 0000", shmctl(z2,IPC_STAT,&ds));
    r("nobody IPC_STAT own 0200", shmctl(w2,IPC_STAT,&ds));
    int idx=z2 & 0x7fff;
    r("nobody SHM_STAT own 0000", shmctl(idx,SHM_STAT,&ds));
    r("nobody SHM_STAT_ANY own 0000", shmctl(idx,SHM_STAT_ANY,&ds));
    r("nobody SHM_HUGETLB", shmget(IPC_PRIVATE,2<<20,IPC_CREAT|SHM_HUGETLB|0600));
    r("nobody SHM_HUGETLB|SHM_NORESERVE", shmget(IPC_PRIVATE,2<<20,IPC_CREAT|SHM_HUGETLB|SHM_NORESERVE|0600));
    r("nobody SHM_HUGETLB existing-key path? IPC_RMID own", shmctl(z2,IPC_RMID,0)); shmctl(w2,IPC_RMID,0);
    fflush(stdout); _exit(0);}
  wait(0); shmctl(z,IPC_RMID,0); shmctl(w,IPC_RMID,0);
}
