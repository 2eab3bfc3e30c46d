package scope

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"time"

	"github.com/gaissmai/bart"
	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/writ-project/writ/jurisdiction"
)

// GeoIP is a MaxMind-format (MMDB) country database loaded fully into memory
// as a prefix table at open, so that lookups are lock- and allocation-free:
// decoding MMDB records on the query path would allocate and parse data for
// every DNS query.
type GeoIP struct {
	table *bart.Table[jurisdiction.Code]
	info  GeoIPInfo
}

// GeoIPInfo describes a loaded GeoIP database, so the operator can tell which
// edition and build is in use and how much of it was usable.
type GeoIPInfo struct {
	// DatabaseType is the database's own name for its kind, e.g.
	// "GeoLite2-Country".
	DatabaseType string
	// BuildTime is when the database was built, in UTC; a stale database
	// places moved networks in the wrong country.
	BuildTime time.Time
	// Networks is the number of networks loaded with a country.
	Networks int
	// Skipped is the number of networks left out because their record names
	// no ISO 3166-1 alpha-2 country (no code at all, or one such as "XK" or
	// "EU" that is not an assigned country); clients in them are Unknown.
	Skipped int
}

// geoRecord is the part of a country record that decides the jurisdiction.
// The registered country is the fallback for networks MaxMind could not
// place, typically anycast and satellite providers.
type geoRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	RegisteredCountry struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
}

// OpenGeoIP reads an MMDB file (GeoLite2-Country, GeoIP2-Country, DB-IP
// country lite or any MMDB with country.iso_code, falling back to
// registered_country.iso_code) and copies every network into memory; the
// file is closed before OpenGeoIP returns and may then be replaced.
// Networks without a known ISO 3166-1 alpha-2 code are skipped and counted
// in Info. Errors name the file.
func OpenGeoIP(path string) (*GeoIP, error) {
	db, err := maxminddb.Open(path)
	if err != nil {
		// The path is ours to name once; drop the copy os puts in its errors.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("scope: GeoIP database %s: %w", path, err)
	}
	defer db.Close() //nolint:errcheck // read-only; nothing to flush

	g := &GeoIP{
		table: new(bart.Table[jurisdiction.Code]),
		info: GeoIPInfo{
			DatabaseType: db.Metadata.DatabaseType,
			BuildTime:    db.Metadata.BuildTime().UTC(),
		},
	}
	// Many networks share one record; decode each record once.
	codes := make(map[uintptr]jurisdiction.Code)
	for res := range db.Networks() {
		if err := res.Err(); err != nil {
			return nil, fmt.Errorf("scope: GeoIP database %s: %w", path, err)
		}
		code, ok := codes[res.Offset()]
		if !ok {
			var rec geoRecord
			if err := res.Decode(&rec); err != nil {
				return nil, fmt.Errorf("scope: GeoIP database %s: network %s: %w", path, res.Prefix(), err)
			}
			iso := rec.Country.ISOCode
			if iso == "" {
				iso = rec.RegisteredCountry.ISOCode
			}
			code, _ = jurisdiction.Parse(iso) // Unknown when not a country
			codes[res.Offset()] = code
		}
		p := canonical(res.Prefix())
		if code == jurisdiction.Unknown || !p.IsValid() {
			g.info.Skipped++
			continue
		}
		g.table.Insert(p, code)
		g.info.Networks++
	}
	return g, nil
}

// Lookup returns the country of a, Unknown if absent. A nil GeoIP knows no
// address, so a resolver without a database needs no special case.
func (g *GeoIP) Lookup(a netip.Addr) jurisdiction.Code {
	if g == nil {
		return jurisdiction.Unknown
	}
	c, _ := g.table.Lookup(a.Unmap())
	return c
}

// Info describes the database: type, build time, networks loaded, networks
// skipped.
func (g *GeoIP) Info() GeoIPInfo {
	return g.info
}
