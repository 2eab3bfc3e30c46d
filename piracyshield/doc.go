// Package piracyshield connects writ to Italy's Piracy Shield platform,
// run by the regulator AGCOM: it pulls the blocking tickets an Internet
// provider must apply within thirty minutes, turns each ticket into a
// writ order for Italy (its items the order's targets, new items
// amendments, vanished items removals), lets writ's safeguards hold what
// must not be blocked blindly, and reports each item back to the platform:
// processed once every enforcement point has applied it, unprocessed with
// the reason when writ holds or refuses it.
//
// Client speaks the platform's provider API; Connector runs the polling
// loop against a Writ, either the registry of the same process or a writ
// server's HTTP API. See README.md.
package piracyshield
