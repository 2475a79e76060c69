import Faultline
import CFaultlineShims

let t0 = fl_now_ns()
let machine = try Machine(memoryBytes: 16 << 20)
let t1 = fl_now_ns()
let mm = try AddressSpace(machine: machine)
let cpu = try CPU(mm: mm)
let t2 = fl_now_ns()
let a = try cpu.mmap(0, 8 * 4096, prot: 3, flags: 0x22)
try cpu.storeByte(a, 1)
let t3 = fl_now_ns()
try cpu.munmap(a, 8 * 4096)
let t4 = fl_now_ns()
machine.drainDeferredFrees()
let t5 = fl_now_ns()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)
