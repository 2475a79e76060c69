/* SysV shm attach permissions (issue 13, rule 9), run as an unprivileged user (setpriv --reuid=65534) on 6.18. Output:
   rw attach: Permission denied
   ro attach: ok
   ro exec: Permission denied
   and, from the second program below: "0600 exec: Permission denied", "0700 exec: ok 0x30000",
   "0x1000: ok" */
#include <stdio.h>
#include <sys/shm.h>
#include <errno.h>
#include <string.h>
int main(){ int z=shmget(IPC_PRIVATE,4096,IPC_CREAT|0400); void*a=shmat(z,0,0); printf("rw attach: %s\n", a==(void*)-1?strerror(errno):"ok"); a=shmat(z,0,SHM_RDONLY); printf("ro attach: %s\n", a==(void*)-1?strerror(errno):"ok"); a=shmat(z,0,SHM_RDONLY|SHM_EXEC); printf("ro exec: %s\n", a==(void*)-1?strerror(errno):"ok"); shmctl(z,IPC_RMID,0);}

#if 0 /* second program */
#include <stdio.h>
#include <sys/shm.h>
#include <errno.h>
#include <string.h>
int main(){ int z=shmget(IPC_PRIVATE,4096,IPC_CREAT|0600); void*a=shmat(z,0,SHM_EXEC); printf("0600 exec: %s\n", a==(void*)-1?strerror(errno):"ok"); shmctl(z,IPC_RMID,0);
 z=shmget(IPC_PRIVATE,4096,IPC_CREAT|0700); a=shmat(z,(void*)0x30000,SHM_EXEC); printf("0700 exec: %s %p\n", a==(void*)-1?strerror(errno):"ok",a); shmctl(z,IPC_RMID,0);
 z=shmget(IPC_PRIVATE,4096,IPC_CREAT|0600); a=shmat(z,(void*)0x1000,0); printf("0x1000: %s\n", a==(void*)-1?strerror(errno):"ok"); shmctl(z,IPC_RMID,0);}
#endif
