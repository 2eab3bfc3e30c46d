package rpz

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// savedZone is what the state file keeps of a zone: its serial, and a
// hash of its content to tell whether a restart changed it.
type savedZone struct {
	Serial uint32 `json:"serial"`
	Hash   string `json:"hash"`
}

// loadState reads the state file; a missing file, or no file configured,
// is an empty state.
func loadState(path string) (map[string]savedZone, error) {
	out := map[string]savedZone{}
	if path == "" {
		return out, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("rpz state: %w", err)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("rpz state %s: %w (delete the file to start the serials afresh)", path, err)
	}
	return out, nil
}

// saveState replaces the state file atomically.
func saveState(path string, zones map[string]savedZone) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(zones, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".rpz-state-*")
	if err != nil {
		return fmt.Errorf("rpz state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("rpz state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("rpz state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("rpz state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rpz state: %w", err)
	}
	return nil
}

// hash digests everything a zone's records are made of except its
// serial: the rules and the settings that render them.
func (r *renderer) hash(rules []rule) string {
	h := sha256.New()
	put := func(s string) { h.Write([]byte(s)); h.Write([]byte{0}) }
	put(r.target)
	put(strconv.FormatUint(uint64(r.ttl), 10))
	put(r.soa.String())
	if r.recordURL != nil {
		put(r.recordURL("ID"))
	}
	for _, ru := range rules {
		put(ru.owner)
		for _, id := range ru.ids {
			put(id)
		}
		put("")
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
