package piracyshield

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// State is what the connector remembers across restarts: the checksums
// of the lists it last applied whole, and for each ticket the writ order
// it became and what was reported for each item. It is written to a file
// atomically after every round that changes it, and before any report is
// sent, so that a restart neither reports anything again nor loses a
// report (see ItemRecord.Sending); an order recorded just before a crash
// is found again by its ticket, not recorded twice.
type State struct {
	// Checksums are those of the lists last applied in full; an unchanged
	// checksum means nothing to do.
	Checksums map[Genre]string         `json:"checksums,omitempty"`
	Tickets   map[string]*TicketRecord `json:"tickets"`
	// LastSuccess is when the platform last answered a whole poll.
	LastSuccess time.Time `json:"last_success,omitzero"`
}

// TicketRecord is the connector's record of one ticket.
type TicketRecord struct {
	// Order is the writ order the ticket became; empty while none could
	// be recorded (every item refused).
	Order string `json:"order,omitempty"`
	// Expires is the order's expiry, at which it is renewed if items
	// remain listed.
	Expires   time.Time `json:"expires,omitzero"`
	FirstSeen time.Time `json:"first_seen"`
	// Items are keyed by the value exactly as the platform lists it.
	Items map[string]*ItemRecord `json:"items"`
}

// ItemRecord is the connector's record of one item of a ticket.
type ItemRecord struct {
	Genre Genre `json:"genre"`
	// Target is the writ target the value stands for (a lower-case name
	// or an address); empty when writ refuses the value.
	Target string `json:"target,omitempty"`
	// Refused says why writ cannot block the value.
	Refused string `json:"refused,omitempty"`
	// Since starts the thirty minutes: the ticket's creation, or when the
	// connector first saw an item added later.
	Since time.Time `json:"since"`
	// ActiveVersion is the policy version from which the target is
	// enforced; zero until it is seen active.
	ActiveVersion uint64 `json:"active_version,omitempty"`
	// Reported is the status last reported, empty before the first
	// report; Note what it said.
	Reported   Status    `json:"reported,omitempty"`
	ReportedAt time.Time `json:"reported_at,omitzero"`
	Note       string    `json:"note,omitempty"`
	// Sending is a report written down before it is sent and not yet
	// known to have arrived: the connector stopped (or lost the answer)
	// between sending it and recording it as Reported. Before anything
	// else is sent about the item, the platform's own state of it says
	// whether the report arrived: if so it is recorded as reported,
	// otherwise it is dropped and sent again if still due. So a report is
	// never sent twice, and never lost.
	Sending *Intent `json:"sending,omitempty"`
	// Closed items get no more reports: the platform's window has passed
	// or it refused the report for good.
	Closed bool `json:"closed,omitempty"`
	// Alerted is set once the deadline alert for the item was raised.
	Alerted bool `json:"alerted,omitempty"`
}

// Intent is a report about to be sent: what it says, and when.
type Intent struct {
	Status Status    `json:"status"`
	Note   string    `json:"note"`
	At     time.Time `json:"at"`
}

// arrived reports whether the platform's state of an item is the one
// the intent sets. The connector sends a status only when it differs
// from the one last reported, and settles each intent before sending
// another, so the platform shows the intent's status and note only if
// the intent's report arrived.
func (in *Intent) arrived(s ItemState) bool {
	if s.Status != string(in.Status) || s.Note != in.Note {
		return false
	}
	return in.Status != Unprocessed || s.Reason == string(Undefined)
}

const stateVersion = 1

type stateFile struct {
	Version int `json:"version"`
	*State
}

// LoadState reads a state file; a missing file is an empty state.
func LoadState(path string) (*State, error) {
	st := &State{Tickets: map[string]*TicketRecord{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("piracy shield state: %w", err)
	}
	f := stateFile{State: st}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("piracy shield state %s: %w (move the file aside to start afresh: writ then finds its orders by ticket and reports again what it cannot tell was reported)", path, err)
	}
	if f.Version != stateVersion {
		return nil, fmt.Errorf("piracy shield state %s: version %d, this writ reads version %d", path, f.Version, stateVersion)
	}
	if st.Tickets == nil {
		st.Tickets = map[string]*TicketRecord{}
	}
	for _, t := range st.Tickets {
		if t.Items == nil {
			t.Items = map[string]*ItemRecord{}
		}
	}
	return st, nil
}

// Save writes the state to path atomically: a temporary file in the same
// directory, synced, renamed over the old one, and the directory synced,
// so that a crash leaves either the old state or the new one.
func (s *State) Save(path string) error {
	b, err := json.MarshalIndent(stateFile{Version: stateVersion, State: s}, "", " ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".piracyshield-state-*")
	if err != nil {
		return fmt.Errorf("piracy shield state: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("piracy shield state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("piracy shield state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("piracy shield state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("piracy shield state: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("piracy shield state: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("piracy shield state: %w", err)
	}
	return nil
}
