# Faultline machine profile: one `key value` a line; a key left out keeps the reference value.
protection_keys none                            # /proc/cpuinfo flag ospke: none | x86
mmap_min_addr 4096                              # /proc/sys/vm/mmap_min_addr
lsm_mmap_min_addr 65536                         # CONFIG_LSM_MMAP_MIN_ADDR (probed with a hint mmap)
legacy_va_layout 0                              # /proc/sys/vm/legacy_va_layout
transparent_hugepage.enabled always             # /sys/kernel/mm/transparent_hugepage/enabled
transparent_hugepage.defrag madvise             # /sys/kernel/mm/transparent_hugepage/defrag
transparent_hugepage.shmem_enabled never        # /sys/kernel/mm/transparent_hugepage/shmem_enabled
transparent_hugepage.use_zero_page 1            # /sys/kernel/mm/transparent_hugepage/use_zero_page
transparent_hugepage.hugepages-2048kB.enabled inherit # /sys/kernel/mm/transparent_hugepage/hugepages-2048kB/enabled
nr_hugepages 0                                  # /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
nr_overcommit_hugepages 0                       # /sys/kernel/mm/hugepages/hugepages-2048kB/nr_overcommit_hugepages
hugepages-1048576kB 1                           # /sys/kernel/mm/hugepages/hugepages-1048576kB present: 0 | 1
hugepages-1048576kB.nr_hugepages 0              # /sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages
hugepages-1048576kB.nr_overcommit_hugepages 0   # /sys/kernel/mm/hugepages/hugepages-1048576kB/nr_overcommit_hugepages
hugepagesize 2048                               # /proc/meminfo Hugepagesize in kB: 2048 | 1048576
max_map_count 65530                             # /proc/sys/vm/max_map_count
overcommit_memory 0                             # /proc/sys/vm/overcommit_memory
ksm 1                                           # /sys/kernel/mm/ksm present: 0 | 1
task_size_bits 47                               # /proc/cpuinfo flag la57: 47 | 56
