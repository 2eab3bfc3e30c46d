package config_test

// Fuzz targets for the configuration: the --scope flag and whole YAML
// files through Load and Resolve, as `writ serve --config` reads them.
//
//	go test ./internal/config -run '^$' -fuzz '^FuzzLoadResolve$' -fuzztime 30s

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/writ-project/writ/internal/config"
	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/scope"
)

// FuzzParseScopeFlag checks that --scope either fails with an error that
// names the flag, or gives a country code and the list after "=" as
// written, which `writ serve` then maps the way ParseMapping does.
func FuzzParseScopeFlag(f *testing.F) {
	for _, s := range []string{
		"FR=127.0.0.2/32", "fr=192.0.2.0/24,2001:db8::/32", " it =198.51.100.7", "FR", "192.0.2.0/24",
		"XX=192.0.2.0/24", "FRA=192.0.2.0/24", "EU=192.0.2.0/24", "=192.0.2.0/24", "FR=a=b", "FR=,,",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		code, list, err := config.ParseScopeFlag(s)
		if err != nil {
			if !strings.Contains(err.Error(), "--scope") {
				t.Fatalf("ParseScopeFlag(%q): error %q does not name --scope", s, err)
			}
			return
		}
		c, perr := jurisdiction.Parse(code)
		if perr != nil || c.String() != code {
			t.Fatalf("ParseScopeFlag(%q) = code %q, not a country code (%v)", s, code, perr)
		}
		_, after, _ := strings.Cut(s, "=")
		if !slices.Equal(list, strings.Split(after, ",")) {
			t.Fatalf("ParseScopeFlag(%q) = list %q, want what follows =", s, list)
		}
		// serve hands the result to the scopes section: either it maps or
		// the error names the scope.
		if _, err := scope.ParseMapping(code + "=" + strings.Join(list, ",")); err != nil && !strings.Contains(err.Error(), "scope mapping") {
			t.Fatalf("mapping of --scope %q: %v", s, err)
		}
	})
}

// topKeys are the top-level keys of the configuration file.
func topKeys() []string {
	var keys []string
	typ := reflect.TypeFor[config.Config]()
	for i := range typ.NumField() {
		if k, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ","); k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	return keys
}

// namesKey reports whether an error line begins with a configuration key:
// a top-level key followed by a dot, bracket, space or colon.
func namesKey(line string, keys []string) bool {
	for _, k := range keys {
		if rest, ok := strings.CutPrefix(line, k); ok && rest != "" && strings.ContainsRune(".[ :", rune(rest[0])) {
			return true
		}
	}
	return false
}

// FuzzLoadResolve writes arbitrary bytes as a configuration file and runs
// Load and Resolve on it, as `writ serve --config` does. Neither panics;
// Load's error names the file, and every line of Resolve's error names
// the setting at fault.
func FuzzLoadResolve(f *testing.F) {
	for _, path := range []string{"../../writ.example.yaml"} {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"",
		"dns:\n  upstreams: [127.0.0.1]\nscopes:\n  FR: [127.0.0.2/32]\n",
		"log:\n  level: loud\n  format: xml\ndns:\n  upstreams: [bad]\n  block_mode: sinkhole\nscopes:\n  EU: [192.0.2.0/24]\n  fr: [192.0.2.1/24]\n",
		"orders:\n  default_expiry: 90x\n  max_prefix_bits_ipv4: 40\n  allow_names: [com, '*.x']\n",
		"rpz:\n  listen: [127.0.0.1:0]\n  action: walled\n  tsig_keys: [{name: k, secret: '!!'}]\n",
		"gate:\n  listen: 127.0.0.1:0\n  origin: ftp://x\n  trusted_proxies: [nope]\n",
		"store:\n  url: postgres://writ:secret@db:x/writ\n  sync_interval: 1ms\nnode: 'bad name'\n",
		"lumen:\n  url: https://lumendatabase.org\nledger:\n  origin: 'a b'\n",
		"console:\n  idle_timeout: 1s\n",
		"data_dir: [1, 2]\n",
		"unknown_key: 1\n",
		"dns: {upstreams: [127.0.0.1], cache_entries: -5, ecs_trusted: ['10.0.0.0/8', x]}\n",
	} {
		f.Add([]byte(s))
	}
	keys := topKeys()
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		// Settings naming files are read; keep the fuzzer away from
		// device and kernel files, whose reads could block or never end.
		for _, special := range []string{"/dev", "/proc", "/sys"} {
			if bytes.Contains(data, []byte(special)) {
				return
			}
		}
		path := filepath.Join(dir, "writ.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := config.Load(path)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("Load error does not name the file: %v", err)
			}
			return
		}
		r, err := c.Resolve()
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !namesKey(line, keys) {
					t.Fatalf("Resolve error line %q names no setting; whole error:\n%v", line, err)
				}
			}
			return
		}
		if r == nil {
			t.Fatal("Resolve returned neither a configuration nor an error")
		}
	})
}
