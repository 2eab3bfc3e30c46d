package publicrecord

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/order"
)

// LumenNotice is an order as a notice for the Lumen database, in the JSON
// its API takes (POST /notices). The schema it meets is
// schemas/lumen-notice.schema.json. The authentication token goes in a
// header, never in the notice.
type LumenNotice struct {
	Notice LumenNoticeBody `json:"notice"`
}

// LumenNoticeBody is the notice itself.
type LumenNoticeBody struct {
	Title            string      `json:"title"`
	Type             string      `json:"type"`
	Subject          string      `json:"subject,omitempty"`
	Body             string      `json:"body,omitempty"`
	DateSent         string      `json:"date_sent,omitempty"`
	DateReceived     string      `json:"date_received,omitempty"`
	JurisdictionList string      `json:"jurisdiction_list,omitempty"`
	RegulationList   string      `json:"regulation_list,omitempty"`
	CaseIDNumber     string      `json:"case_id_number,omitempty"`
	ActionTaken      string      `json:"action_taken,omitempty"`
	Roles            []LumenRole `json:"entity_notice_roles_attributes"`
	Works            []LumenWork `json:"works_attributes"`
	URLCount         int         `json:"url_count,omitempty"`
}

// LumenRole is an entity in one role on a notice: issuing_court, sender
// or recipient here.
type LumenRole struct {
	Name   string      `json:"name"`
	Entity LumenEntity `json:"entity_attributes"`
}

// LumenEntity is an organisation named on a notice.
type LumenEntity struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	CountryCode string `json:"country_code,omitempty"`
	URL         string `json:"url,omitempty"`
}

// LumenWork is what a notice concerns; for a court order, Lumen shows its
// description as the subject of the order and its infringing URLs as the
// targeted URLs.
type LumenWork struct {
	Description    string     `json:"description"`
	InfringingURLs []LumenURL `json:"infringing_urls_attributes"`
}

// LumenURL is one targeted location.
type LumenURL struct {
	URL string `json:"url"`
}

// NoticeFor returns the Lumen notice of order o, received by operator,
// whose public record is at recordURL. A court's order is a CourtOrder
// with the court as issuing_court and sender; a regulator's or a
// delegated reporter's is a GovernmentRequest with the authority as
// sender. The operator is the recipient.
func NoticeFor(o *order.Order, operator, recordURL string) LumenNotice {
	authority := LumenEntity{Name: o.Authority.Name, Kind: "organization"}
	if c, err := jurisdiction.Parse(o.Authority.Jurisdiction); err == nil {
		authority.CountryCode = c.String()
	}
	n := LumenNoticeBody{
		Type:             "GovernmentRequest",
		Subject:          fmt.Sprintf("Blocking order of %s for users in %s", o.Authority.Name, o.JurisdictionString()),
		DateReceived:     o.Received.UTC().Format(time.DateOnly),
		JurisdictionList: strings.Join(o.Jurisdiction, ", "),
		RegulationList:   o.LegalBasis.Statute,
		CaseIDNumber:     o.LegalBasis.Case,
		ActionTaken:      actionTaken(o),
		Roles: []LumenRole{
			{Name: "sender", Entity: authority},
			{Name: "recipient", Entity: LumenEntity{Name: operator, Kind: "organization"}},
		},
	}
	if o.Authority.Kind == order.Court {
		n.Type = "CourtOrder"
		n.Roles = append([]LumenRole{{Name: "issuing_court", Entity: authority}}, n.Roles...)
	}
	kind := "Government request"
	if n.Type == "CourtOrder" {
		kind = "Court order"
	}
	n.Title = fmt.Sprintf("%s from %s: %s", kind, o.Authority.Name, firstNonEmpty(o.LegalBasis.Case, o.LegalBasis.Statute, o.ID))
	if o.Issued != nil {
		n.DateSent = o.Issued.UTC().Format(time.DateOnly)
	}
	var body strings.Builder
	if o.LegalBasis.Summary != "" {
		body.WriteString(o.LegalBasis.Summary + "\n\n")
	}
	if o.LegalBasis.URL != "" {
		body.WriteString("Decision: " + o.LegalBasis.URL + "\n")
	}
	fmt.Fprintf(&body, "Applies to users in %s only. Public record, with the order's history, contests and outcomes: %s", o.JurisdictionString(), recordURL)
	n.Body = body.String()

	work := LumenWork{Description: fmt.Sprintf("Domain names (with all their subdomains where the order says so), IP addresses and URLs to which order %s requires access disabled", o.ID)}
	for _, t := range o.Targets {
		u := t.URL
		switch {
		case t.FQDN != "" && t.Subdomains:
			u = "*." + t.FQDN
		case t.FQDN != "":
			u = t.FQDN
		case t.IP != "":
			u = t.IP
		}
		work.InfringingURLs = append(work.InfringingURLs, LumenURL{URL: u})
	}
	n.Works = []LumenWork{work}
	n.URLCount = len(work.InfringingURLs)
	return LumenNotice{Notice: n}
}

// actionTaken answers Lumen's "was action taken?": Yes when every target
// blocks, Partial when some do, No when none does (all held for review,
// rejected or removed).
func actionTaken(o *order.Order) string {
	active := 0
	for _, t := range o.Targets {
		if t.State == order.TargetActive {
			active++
		}
	}
	switch {
	case active == 0:
		return "No"
	case active == len(o.Targets):
		return "Yes"
	default:
		return "Partial"
	}
}

func (s *Server) lumenExport(w http.ResponseWriter, r *http.Request) {
	o, _, err := s.lookup(r.Context(), r.PathValue("id"))
	if errors.Is(err, errNoOrder) {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "the record could not be read")
		return
	}
	writeJSON(w, NoticeFor(o, s.cfg.Operator, RecordURL(s.cfg.PublicURL, o.ID)))
}

// LumenConfig configures pushing notices to a Lumen database.
type LumenConfig struct {
	// URL is the Lumen instance, such as https://lumendatabase.org;
	// notices are posted to URL/notices.
	URL string
	// Token is the submitter's authentication token, sent in the
	// X-Authentication-Token header.
	Token string
	// StateFile records which orders were pushed and where Lumen put
	// them, so that a restart pushes nothing twice.
	StateFile string
	Client    *http.Client
	Logger    *slog.Logger
}

// Lumen pushes each order once to a Lumen database and remembers the
// notice URL Lumen answers with.
type Lumen struct {
	cfg   LumenConfig
	mu    sync.Mutex
	state map[string]LumenRecord
}

// LumenRecord is where Lumen keeps the notice of one order.
type LumenRecord struct {
	NoticeURL string    `json:"notice_url"`
	Pushed    time.Time `json:"pushed"`
}

// OpenLumen reads the push state and returns a pusher.
func OpenLumen(cfg LumenConfig) (*Lumen, error) {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: time.Minute}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	l := &Lumen{cfg: cfg, state: map[string]LumenRecord{}}
	b, err := os.ReadFile(cfg.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lumen: %w", err)
	}
	if err := json.Unmarshal(b, &l.state); err != nil {
		return nil, fmt.Errorf("lumen: state file %s: %w", cfg.StateFile, err)
	}
	return l, nil
}

// NoticeURL is where Lumen published the notice of order id, or "".
func (l *Lumen) NoticeURL(id string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state[id].NoticeURL
}

// Push posts a notice for order id unless it was pushed before, and
// records the notice URL from Lumen's Location header. It reports
// whether it posted.
func (l *Lumen) Push(ctx context.Context, id string, n LumenNotice) (bool, error) {
	l.mu.Lock()
	_, done := l.state[id]
	l.mu.Unlock()
	if done {
		return false, nil
	}
	body, err := json.Marshal(n)
	if err != nil {
		return false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(l.cfg.URL, "/")+"/notices", bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("lumen: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Authentication-Token", l.cfg.Token)
	resp, err := l.cfg.Client.Do(req)
	if err != nil {
		return false, fmt.Errorf("lumen: push order %s: %w", id, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusCreated {
		return false, fmt.Errorf("lumen: push order %s: %s: %s", id, resp.Status, bytes.TrimSpace(answer))
	}
	rec := LumenRecord{NoticeURL: resp.Header.Get("Location"), Pushed: time.Now().UTC()}
	if u, err := resp.Location(); err == nil {
		rec.NoticeURL = u.String()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.state[id] = rec
	return true, l.save()
}

// save writes the state file whole, through a rename, so that a crash
// leaves the old state or the new one. l.mu must be held.
func (l *Lumen) save() error {
	b, err := json.MarshalIndent(l.state, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(l.cfg.StateFile), ".lumen-*")
	if err != nil {
		return fmt.Errorf("lumen: state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("lumen: state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("lumen: state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("lumen: state: %w", err)
	}
	if err := os.Rename(tmp.Name(), l.cfg.StateFile); err != nil {
		return fmt.Errorf("lumen: state: %w", err)
	}
	return nil
}

// PushAll pushes every order of the record not pushed yet. It stops at
// the first failure, which it returns; the next call resumes.
func (s *Server) PushAll(ctx context.Context) (int, error) {
	l := s.cfg.Lumen
	if l == nil {
		return 0, nil
	}
	pushed := 0
	for _, o := range s.rec.Orders() {
		done, err := l.Push(ctx, o.ID, NoticeFor(o, s.cfg.Operator, RecordURL(s.cfg.PublicURL, o.ID)))
		if err != nil {
			return pushed, err
		}
		if done {
			pushed++
		}
	}
	return pushed, nil
}

// FollowLumen pushes new orders to Lumen until ctx ends: at once, then
// whenever the channel from changed is closed and every interval, which
// also retries failed pushes.
func (s *Server) FollowLumen(ctx context.Context, changed func() <-chan struct{}, interval time.Duration) {
	if s.cfg.Lumen == nil {
		return
	}
	if interval <= 0 {
		interval = time.Minute
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		var ch <-chan struct{}
		if changed != nil {
			ch = changed()
		}
		if n, err := s.PushAll(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Lumen.cfg.Logger.Error("pushing notices to Lumen failed; will retry", "err", err, "pushed", n)
		} else if n > 0 {
			s.cfg.Lumen.cfg.Logger.Info("pushed notices to Lumen", "notices", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-tick.C:
		}
	}
}
