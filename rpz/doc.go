// Package rpz publishes the policy in force as Response Policy Zones
// (draft-vixie-dnsop-dns-rpz), one zone per jurisdiction, and serves them
// to the operator's resolvers as their primary: SOA queries, AXFR, IXFR
// from the changes kept per serial (RFC 1995), NOTIFY at every change
// (RFC 1996), an address ACL and TSIG (RFC 8945) on transfers.
//
// The zones follow the same policy snapshots as writ's DNS server, so a
// resolver fleet of BIND, Unbound or PowerDNS Recursor applies an order
// within milliseconds of its acceptance, only for the clients it maps to
// the order's jurisdiction. See README.md for the zone format and the
// resolvers' configurations.
package rpz
