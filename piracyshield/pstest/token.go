package pstest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// The platform's tokens are HS256 JWTs, one secret for access tokens and
// another for refresh tokens, carrying the account and its role. The
// double signs its own the same way, so that a client that reads the
// expiry from the token (as a careful one does) sees what it would see.

type claims struct {
	AccountID string         `json:"account_id"`
	Email     string         `json:"email"`
	Role      string         `json:"role"`
	Flags     map[string]any `json:"flags"`
	IssuedAt  float64        `json:"iat"`
	Expires   float64        `json:"exp"`
	// Serial makes two tokens issued in the same instant different, so
	// that logging one out never blacklists the other.
	Serial string `json:"jti"`
	// Generation lets a test expire every token issued so far.
	Generation int `json:"gen"`
}

type signer struct{ key []byte }

func newSigner() signer {
	k := make([]byte, 32)
	rand.Read(k)
	return signer{key: k}
}

var b64 = base64.RawURLEncoding

func (s signer) sign(c claims) string {
	var serial [8]byte
	rand.Read(serial[:])
	c.Serial = b64.EncodeToString(serial[:])
	header := b64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	body, _ := json.Marshal(c)
	unsigned := header + "." + b64.EncodeToString(body)
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(unsigned))
	return unsigned + "." + b64.EncodeToString(mac.Sum(nil))
}

var (
	errTokenInvalid = errors.New("token non valid")
	errTokenExpired = errors.New("token expired")
)

// verify checks the signature and the expiry of a token.
func (s signer) verify(token string, now time.Time) (claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return claims{}, errTokenInvalid
	}
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	sig, err := b64.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, mac.Sum(nil)) {
		return claims{}, errTokenInvalid
	}
	body, err := b64.DecodeString(parts[1])
	if err != nil {
		return claims{}, errTokenInvalid
	}
	var c claims
	if err := json.Unmarshal(body, &c); err != nil || c.Email == "" {
		return claims{}, errTokenInvalid
	}
	if float64(now.Unix()) >= c.Expires {
		return c, errTokenExpired
	}
	return c, nil
}
