package api

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Without credentials, an address holds at most EventStreams streams at
// once: one more is answered 429 with Retry-After, and a stream that
// closes frees its place; credentials are not counted. A stream lives
// past the server's write timeout and still delivers events.
func TestEventStreamLimits(t *testing.T) {
	n := newNode(t, RateLimit{EventStreams: 2})
	srv := httptest.NewUnstartedServer(n.h)
	const writeTimeout = 300 * time.Millisecond
	srv.Config.WriteTimeout = writeTimeout
	srv.Start()
	t.Cleanup(srv.Close) // after the streams close (cleanups run last first)

	type stream struct {
		resp   *http.Response
		cancel context.CancelFunc
	}
	open := func(token string) stream {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/events?after=0", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		t.Cleanup(func() { cancel(); resp.Body.Close() })
		return stream{resp, cancel}
	}
	a, b := open(""), open("")
	for _, s := range []stream{a, b} {
		if s.resp.StatusCode != http.StatusOK {
			t.Fatalf("stream within the limit: %d", s.resp.StatusCode)
		}
	}
	if c := open(""); c.resp.StatusCode != http.StatusTooManyRequests || c.resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a third stream from one address: %d, Retry-After %q", c.resp.StatusCode, c.resp.Header.Get("Retry-After"))
	}
	if op := open(testToken); op.resp.StatusCode != http.StatusOK {
		t.Fatalf("a stream with credentials: %d", op.resp.StatusCode)
	}
	a.cancel()
	a.resp.Body.Close()
	// The server sees the close when it next reads the connection,
	// which nothing signals: poll.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n.guard.streamsMu.Lock()
		held := 0
		for _, k := range n.guard.streams {
			held += k
		}
		n.guard.streamsMu.Unlock()
		if held == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed stream still counted: %d held", held)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if d := open(""); d.resp.StatusCode != http.StatusOK {
		t.Fatalf("a stream in the freed place: %d", d.resp.StatusCode)
	}

	// Past the server's write timeout (time passing is what is tested
	// here), the stream still carries a new event.
	time.Sleep(2 * writeTimeout)
	late := n.submit(t, fqdn("late.example"))
	got := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(b.resp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data: ") && strings.Contains(sc.Text(), late.ID) {
				got <- true
				return
			}
		}
		got <- false
	}()
	select {
	case ok := <-got:
		if !ok {
			t.Fatal("the stream ended before the event: cut by the write timeout")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no event on the stream")
	}
	_, data := n.client(t, testToken).do("GET", "/metrics", nil)
	if v := metricValue(t, string(data), `writ_http_rate_limited_total{limit="event_streams"}`); v != 1 {
		t.Errorf("event streams refused: %v, want 1", v)
	}
}
