package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/writ-project/writ/internal/namegen"
)

type apiClient struct {
	base  string
	token string
	http  *http.Client
	// minimal asks for the summary of a changed order rather than the
	// whole of it (Prefer: return=minimal), as a notifying feed would.
	minimal bool
}

func newAPI(base, tokenFile string) (*apiClient, error) {
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, err
	}
	return &apiClient{base: strings.TrimRight(base, "/"), token: strings.TrimSpace(string(tok)), http: &http.Client{Timeout: 2 * time.Minute}}, nil
}

func (c *apiClient) post(path string, body []byte, want int) ([]byte, error) {
	req, err := http.NewRequest("POST", c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	if c.minimal {
		req.Header.Set("Prefer", "return=minimal")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("POST %s: %s: %s", path, resp.Status, b)
	}
	return b, nil
}

// submit posts every order of DIR/orders, a few at a time.
func submit(args []string) error {
	fs := flag.NewFlagSet("submit", flag.ExitOnError)
	base := fs.String("api", "", "writ API base URL")
	token := fs.String("token", "", "API token file")
	dir := fs.String("dir", "", "directory written by gen")
	workers := fs.Int("parallel", 4, "requests in flight")
	fs.Parse(args)
	c, err := newAPI(*base, *token)
	if err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(*dir, "orders", "*.json"))
	if err != nil {
		return err
	}
	start := time.Now()
	var (
		next  atomic.Int64
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(files) {
					return
				}
				body, err := os.ReadFile(files[i])
				if err == nil {
					_, err = c.post("/v1/orders", body, http.StatusCreated)
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("%s: %w", files[i], err)
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	fmt.Printf("%d orders submitted in %.1f s\n", len(files), time.Since(start).Seconds())
	return nil
}

// amend creates a few small orders, as a court's order for a season
// starts, then amends them in turn at a steady rate for a while, each
// amendment adding a new mirror name as a regulator's notices do. It
// prints the number of amendments applied and their latency.
func amend(args []string) error {
	fs := flag.NewFlagSet("amend", flag.ExitOnError)
	base := fs.String("api", "", "writ API base URL")
	token := fs.String("token", "", "API token file")
	rate := fs.Float64("rate", 100, "amendments a second")
	duration := fs.Duration("duration", 20*time.Second, "how long to amend")
	orders := fs.Int("orders", 20, "orders to amend in turn")
	workers := fs.Int("parallel", 8, "amendments in flight at most")
	minimal := fs.Bool("minimal", true, "ask for the changed order's summary only (Prefer: return=minimal)")
	fs.Parse(args)
	c, err := newAPI(*base, *token)
	if err != nil {
		return err
	}
	c.minimal = *minimal
	g := namegen.New(77)
	now := time.Now().UTC()
	var ids []string
	for k := range *orders {
		s := submission{
			Authority:    map[string]string{"id": "bench-court", "name": "Benchmark court", "kind": "court", "jurisdiction": "FR"},
			LegalBasis:   map[string]string{"statute": "Benchmark statute", "case": fmt.Sprintf("Season order %d", k)},
			Jurisdiction: []string{"FR"},
			Effective:    now.Add(-time.Hour).Format(time.RFC3339),
			Expires:      now.Add(365 * 24 * time.Hour).Format(time.RFC3339),
		}
		for range 14 {
			s.Targets = append(s.Targets, map[string]any{"fqdn": "season." + g.Name(), "subdomains": true})
		}
		body, _ := json.Marshal(s)
		resp, err := c.post("/v1/orders", body, http.StatusCreated)
		if err != nil {
			return err
		}
		var o struct{ ID string }
		if err := json.Unmarshal(resp, &o); err != nil {
			return err
		}
		ids = append(ids, o.ID)
	}
	// A ticker paces the amendments; a few are in flight at once, as
	// from several notifying agents, so that the rate does not depend on
	// one request's latency. Ticks that find every worker busy are lost.
	ticks := make(chan int, 1)
	go func() {
		defer close(ticks)
		t := time.NewTicker(time.Duration(float64(time.Second) / *rate))
		defer t.Stop()
		end := time.After(*duration)
		for i := 0; ; i++ {
			select {
			case <-end:
				return
			case <-t.C:
			}
			select {
			case ticks <- i:
			default:
			}
		}
	}()
	start := time.Now()
	var (
		mu    sync.Mutex
		lat   []time.Duration
		first error
		wg    sync.WaitGroup
	)
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ticks {
				mu.Lock()
				name := "mirror." + g.Name()
				mu.Unlock()
				body, _ := json.Marshal(map[string]any{
					"add":  []map[string]any{{"fqdn": name, "subdomains": true}},
					"note": fmt.Sprintf("notice %d", i),
				})
				t := time.Now()
				_, err := c.post("/v1/orders/"+ids[i%len(ids)]+"/amendments", body, http.StatusOK)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				lat = append(lat, time.Since(t))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	elapsed := time.Since(start)
	fmt.Printf("amendments=%d rate=%.1f/s p50=%.1fms p99=%.1fms\n", len(lat), float64(len(lat))/elapsed.Seconds(),
		ms(percentile(lat, 50)), ms(percentile(lat, 99)))
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
