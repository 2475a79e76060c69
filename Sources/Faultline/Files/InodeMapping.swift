/// What an inode's mapping registry (`i_mmap`) can ask of a registered mapping: a VMA, or
/// whatever the address-space layer registers through `Inode.addMapping`.
///
/// Tokens that do not conform are only counted; tokens that conform are asked to zap their
/// page-table entries when the file shrinks (`unmap_mapping_range`).
package protocol InodeMapping: AnyObject {
  /// Removes every PTE of this mapping that maps file page `index` or beyond
  /// (`unmap_mapping_range(mapping, holebegin, 0, 1)`), private COW copies included, as truncate
  /// requires.
  ///
  /// Called with the inode's mapping lock held (Linux's `i_mmap_rwsem`; its place is in
  /// `LockOrder`): the implementation takes PTLs only; it must not take `mmap_lock`, the
  /// page-cache lock, or call back into the inode's registry.
  func unmapMappingRange(of inode: Inode, fromPage index: UInt64)
  /// Removes the PTEs of this mapping that map file pages in `[first, last)` (a hole punched
  /// in the file). The default zaps from `first` on, which is never too little.
  func unmapMappingRange(of inode: Inode, fromPage first: UInt64, toPage last: UInt64)
}

extension InodeMapping {
  package func unmapMappingRange(of inode: Inode, fromPage first: UInt64, toPage last: UInt64) {
    unmapMappingRange(of: inode, fromPage: first)
  }
}
