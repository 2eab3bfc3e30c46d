// Package bench holds measurements of the machine itself that put writ's
// benchmark figures in context; writ's own benchmarks live beside the
// code they measure. See README.md.
package bench
