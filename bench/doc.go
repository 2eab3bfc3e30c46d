// Package bench holds measurements of the machine itself that put writ's
// benchmark figures in context; writ's own benchmarks live beside the
// code they measure, and run.sh measures writ's DNS server against
// Unbound with dnsperf. See README.md.
package bench
