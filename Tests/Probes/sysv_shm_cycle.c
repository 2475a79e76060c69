/* System V ids cycle over max(in_use*3/2, 64) indexes (issue 13 review F3): run as root under `unshare -i`. */
#include <stdio.h>
#include <sys/shm.h>
int main(){
  int first=shmget(IPC_PRIVATE,4096,IPC_CREAT|0600); shmctl(first,IPC_RMID,0); printf("first %d\n", first);
  for(int i=0;i<66;i++){ int k=shmget(IPC_PRIVATE,4096,IPC_CREAT|0600); printf("%d%s", k, i==65?"\n":" "); shmctl(k,IPC_RMID,0);} 
  int kept[50]; for(int i=0;i<50;i++) kept[i]=shmget(IPC_PRIVATE,4096,IPC_CREAT|0600);
  printf("kept %d..%d\n", kept[0], kept[49]);
  for(int i=0;i<30;i++){ int k=shmget(IPC_PRIVATE,4096,IPC_CREAT|0600); printf("%d%s", k, i==29?"\n":" "); shmctl(k,IPC_RMID,0);} 
  for(int i=0;i<50;i++) shmctl(kept[i],IPC_RMID,0);
}
