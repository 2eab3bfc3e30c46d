package piracyshield

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// Review says which targets of the platform's tickets wait for a writ
// reviewer before they block.
type Review string

// Review settings.
const (
	// ReviewSafeguards holds only what writ's safeguards hold (shared
	// infrastructure, CDN ranges, allow-listed names, wide prefixes);
	// everything else blocks at once, since the law binds the provider
	// within thirty minutes of the notice.
	ReviewSafeguards Review = "safeguards"
	// ReviewAll holds every target for a reviewer, as writ does by
	// default for any delegated reporter.
	ReviewAll Review = "all"
)

// Defaults of Config.
const (
	DefaultPollInterval   = time.Minute
	DefaultMaxBackoff     = 5 * time.Minute
	DefaultAuthority      = "agcom"
	DefaultAuthorityName  = "AGCOM (Autorità per le Garanzie nelle Comunicazioni), Piracy Shield platform"
	DefaultOrderExpiry    = 90 * 24 * time.Hour
	DefaultAlertAfter     = 20 * time.Minute
	DefaultLegalReference = "Legge 14 luglio 2023, n. 93, art. 2"
)

// Jurisdiction is where the platform's orders apply: Italy only.
const Jurisdiction = "IT"

// Config configures a Connector.
type Config struct {
	// URL is the platform's API base, https://<host>/api/v1.
	URL string
	// Email and Password are the provider account's credentials.
	Email, Password string
	// HTTPClient reaches the platform (a private CA across the VPN, a
	// proxy); nil: a default client.
	HTTPClient *http.Client
	// PollInterval is how often the lists are checked (default 60 s);
	// after errors the wait doubles, up to MaxBackoff (default 5 min).
	PollInterval, MaxBackoff time.Duration
	// Authority is the writ authority the orders are recorded under
	// (default "agcom"). If it is not registered, it is registered as a
	// delegated reporter for IT with the thirty-minute deadline.
	Authority string
	// Review says what waits for a reviewer (default ReviewSafeguards).
	Review Review
	// Points are the enforcement points whose receipts must cover an
	// item before it is reported processed. Empty: every point that has
	// sent a receipt and enforces Italy.
	Points []string
	// OrderExpiry is each order's lifetime; an order is renewed before it
	// expires while its items remain listed (default 90 days).
	OrderExpiry time.Duration
	// AlertAfter raises the deadline alert for an item still unreported
	// this long after its notification (default 20 minutes).
	AlertAfter time.Duration
	// LegalReference is the statute the orders cite.
	LegalReference string
	// StateFile is where the connector keeps its state (required).
	StateFile string
	Logger    *slog.Logger
	// Now is the connector's clock (default time.Now).
	Now func() time.Time
}

// Validate fills in the defaults and checks the configuration; every
// problem is reported, each naming its setting.
func (c *Config) Validate() error {
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.Authority == "" {
		c.Authority = DefaultAuthority
	}
	if c.Review == "" {
		c.Review = ReviewSafeguards
	}
	if c.OrderExpiry == 0 {
		c.OrderExpiry = DefaultOrderExpiry
	}
	if c.AlertAfter == 0 {
		c.AlertAfter = DefaultAlertAfter
	}
	if c.LegalReference == "" {
		c.LegalReference = DefaultLegalReference
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("piracyshield."+key+": "+format, args...))
	}
	if c.URL == "" {
		bad("url", "is empty: give the platform's API base, such as https://platform.example/api/v1")
	}
	if c.Email == "" {
		bad("email", "is empty: give the provider account's e-mail")
	}
	if c.Password == "" {
		bad("password_file", "gives no password")
	}
	if c.PollInterval < 0 {
		bad("poll_interval", "is negative")
	}
	if c.MaxBackoff < 0 {
		bad("max_backoff", "is negative")
	}
	if c.OrderExpiry < 0 {
		bad("order_expiry", "is negative")
	}
	if c.AlertAfter < 0 || c.AlertAfter >= Deadline {
		bad("alert_after", "%v: want a duration shorter than the thirty-minute deadline", c.AlertAfter)
	}
	if c.Review != ReviewSafeguards && c.Review != ReviewAll {
		bad("review", "%q: want safeguards or all", c.Review)
	}
	if c.StateFile == "" {
		errs = append(errs, errors.New("piracyshield: no state file"))
	}
	return errors.Join(errs...)
}
