package policy

import (
	"net/url"
	"strings"
)

// CanonicalPath turns a decoded path into the form URL targets are
// compiled in and requests matched in: re-escaped from its decoded form,
// after resolving what origin servers resolve before they pick a
// resource, dot segments and repeated slashes. Otherwise "/a/../live",
// "//live" or "/%6Cive" would reach the resource at "/live" without
// matching a target on it, and a target written "/%6Cive" would match
// no request.
//
// The input is decoded (url.URL.Path), so an encoded slash ("%2F") counts
// as a separator, as nginx and most servers treat it.
func CanonicalPath(decoded string) string {
	p := decoded
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	if needsCleaning(p) {
		p = cleanPath(p)
	}
	if !needsEscaping(p) {
		return p
	}
	return (&url.URL{Path: p}).EscapedPath()
}

// needsCleaning reports whether p has an empty, "." or ".." segment.
func needsCleaning(p string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		rest := p[i+1:]
		switch {
		case strings.HasPrefix(rest, "/"),
			rest == ".", strings.HasPrefix(rest, "./"),
			rest == "..", strings.HasPrefix(rest, "../"):
			return true
		}
	}
	return false
}

// cleanPath resolves dot segments and merges slashes, keeping a trailing
// slash: "/live/" is a different target from "/live".
func cleanPath(p string) string {
	trailing := strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..")
	var out []string
	for _, seg := range strings.Split(p, "/") {
		switch seg {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, seg)
		}
	}
	s := "/" + strings.Join(out, "/")
	if trailing && s != "/" {
		s += "/"
	}
	return s
}

// needsEscaping reports whether p has a byte that the escaped form of a
// path writes differently; for most paths it has none and the path is
// used as it is, without allocating.
func needsEscaping(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~/!$&'()*+,;=:@", c) >= 0:
		default:
			return true
		}
	}
	return false
}
