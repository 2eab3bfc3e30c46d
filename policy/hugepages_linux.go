package policy

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// adviseHugePages asks the kernel to back a large table with transparent
// huge pages. Lookups touch the name table at random; with 4 KiB pages
// nearly every probe also misses the TLB, which on virtual machines costs
// as much as the cache miss itself. The advice is best effort: where THP
// is disabled it does nothing.
func adviseHugePages[T any](s []T) {
	if len(s) == 0 {
		return
	}
	size := uintptr(len(s)) * unsafe.Sizeof(s[0])
	if size < 4<<20 {
		return
	}
	base := unsafe.Pointer(&s[0])
	start := uintptr(base)
	const page = 4096
	aligned := (start + page - 1) &^ (page - 1)
	end := (start + size) &^ (page - 1)
	if end <= aligned {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Add(base, aligned-start)), end-aligned)
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
}
