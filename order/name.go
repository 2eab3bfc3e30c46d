package order

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// NormalizeName checks a domain name given as a blocking target and returns
// its canonical form: lower-case, IDNA A-labels, no trailing dot. The error
// completes a sentence that starts with the quoted name, for example
// `"com" is a public suffix alone, ...`.
func NormalizeName(s string) (string, error) {
	switch {
	case s == "":
		return "", errors.New("is empty")
	case !utf8.ValidString(s):
		// IDNA would encode the bad bytes as U+FFFD, giving an A-label
		// that is no valid name.
		return "", errors.New("is not valid UTF-8")
	case strings.Contains(s, "://") || strings.ContainsAny(s, "/?#"):
		return "", errors.New("is a URL, not a domain name: give the host name alone (with \"subdomains\": true to cover everything under it), or use a url target for the HTTP gate")
	case strings.HasPrefix(s, "*"):
		return "", errors.New("uses wildcard syntax, which is not a target: give the parent name with \"subdomains\": true")
	case strings.IndexFunc(s, unicode.IsSpace) >= 0:
		return "", errors.New("contains whitespace, which no domain name can hold")
	}
	name := strings.TrimSuffix(s, ".")
	if _, err := netip.ParseAddr(name); err == nil {
		return "", errors.New("is an IP address: use an ip target")
	}
	if len(name) > 253 {
		return "", fmt.Errorf("is %d octets long; a domain name has at most 253", len(name))
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" {
			return "", errors.New("has an empty label (two dots in a row, or a leading dot)")
		}
	}
	ascii := strings.ToLower(name)
	if !isASCII(name) || strings.Contains(ascii, "xn--") {
		a, err := idna.Lookup.ToASCII(name)
		if err != nil {
			return "", fmt.Errorf("is not a valid internationalised domain name (IDNA 2008/UTS 46): %v", err)
		}
		ascii = a
	}
	if len(ascii) > 253 {
		return "", fmt.Errorf("is %d octets long once encoded as A-labels; a domain name has at most 253", len(ascii))
	}
	labels := strings.Split(ascii, ".")
	for _, l := range labels {
		if err := checkLabel(l); err != nil {
			return "", err
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "", errors.New("ends in an all-numeric label, which no top-level domain is: if this is an IP address, use an ip target")
	}
	// A lone unknown label is its own "public suffix" under the list's
	// default rule; only a listed suffix is reported as one.
	suffix, icann := publicsuffix.PublicSuffix(ascii)
	if suffix == ascii && (icann || len(labels) > 1) {
		section := "ICANN"
		if !icann {
			section = "private"
		}
		return "", fmt.Errorf("is a public suffix alone (%s section of the Public Suffix List): blocking it would block every domain registered under it", section)
	}
	if len(labels) < 2 {
		return "", errors.New("is a single label; a blocking target needs a registered domain such as example.com")
	}
	return ascii, nil
}

func checkLabel(l string) error {
	if l == "" {
		// IDNA can map a label to nothing ("xn--").
		return errors.New("has an empty label once encoded as A-labels")
	}
	if len(l) > 63 {
		return fmt.Errorf("has a label of %d octets; a label has at most 63", len(l))
	}
	if l[0] == '-' {
		return fmt.Errorf("has the label %q, which starts with a hyphen", l)
	}
	if l[len(l)-1] == '-' {
		return fmt.Errorf("has the label %q, which ends with a hyphen", l)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("has the character %q in label %q; host names hold only letters, digits and hyphens", c, l)
		}
	}
	return nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
