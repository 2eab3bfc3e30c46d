//go:build !linux

package policy

func adviseHugePages[T any](s []T) {}
