package pstest

import (
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The platform's validation is textual: these are its rules, as its data
// model states them, including what they let through (leading zeros in
// IPv4 octets, upper case, no punycode TLD).

var fqdnRule = regexp.MustCompile(`^([a-zA-Z0-9]([a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,}$`)

func validFQDN(s string) bool { return fqdnRule.MatchString(s) }

func validIPv4(s string) bool {
	octets := strings.Split(s, ".")
	if len(octets) != 4 {
		return false
	}
	for _, o := range octets {
		if o == "" || len(o) > 3 || strings.Trim(o, "0123456789") != "" {
			return false
		}
		if n, _ := strconv.Atoi(o); n > 255 {
			return false
		}
	}
	return true
}

func validIPv6(s string) bool {
	var hextets []string
	if strings.Contains(s, "::") {
		parts := strings.Split(s, "::")
		if len(parts) > 2 {
			return false
		}
		var left, right []string
		if parts[0] != "" {
			left = strings.Split(parts[0], ":")
		}
		if parts[1] != "" {
			right = strings.Split(parts[1], ":")
		}
		zeros := 8 - len(left) - len(right)
		if zeros < 0 {
			return false
		}
		hextets = append(append(left, make([]string, zeros)...), right...)
		for i := len(left); i < len(left)+zeros; i++ {
			hextets[i] = "0"
		}
	} else {
		hextets = strings.Split(s, ":")
		if len(hextets) != 8 {
			return false
		}
	}
	for _, h := range hextets {
		if h == "" || len(h) > 4 || strings.Trim(h, "0123456789abcdefABCDEF") != "" {
			return false
		}
	}
	return true
}

func validValue(s string) bool { return validFQDN(s) || validIPv4(s) || validIPv6(s) }

// validTicketID: 32 letters or digits (a UUID4 without dashes).
func validTicketID(s string) bool {
	return len(s) == 32 && onlyChars(s, "")
}

var ddaRule = regexp.MustCompile(`^[0-9]{1,4}/[0-9]{2}/DDA$`)

// validNote: letters, digits and ` .,-&/$€@"`, 3 to 512 characters.
func validNote(s string) bool {
	n := utf8.RuneCountInString(s)
	return n >= 3 && n <= 512 && onlyChars(s, ` .,-&/$€@"`)
}

// validDescription: letters, digits and ` .,-_@/'"`, 3 to 255 characters.
func validDescription(s string) bool {
	n := utf8.RuneCountInString(s)
	return n >= 3 && n <= 255 && onlyChars(s, ` .,-_@/'"`)
}

func onlyChars(s, extra string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune(extra, r):
		default:
			return false
		}
	}
	return true
}

// parseISO8601 accepts what the platform's datetime.fromisoformat does for
// report timestamps: a date, or a date and time with optional fraction
// and offset.
func parseISO8601(s string) (time.Time, bool) {
	for _, layout := range []string{
		time.RFC3339Nano,
		"2006-01-02T15:04:05.999999999",
		"2006-01-02 15:04:05.999999999Z07:00",
		"2006-01-02 15:04:05.999999999",
		"2006-01-02T15:04Z07:00",
		"2006-01-02T15:04",
		"2006-01-02",
	} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
