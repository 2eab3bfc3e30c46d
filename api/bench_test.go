package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/writ-project/writ/internal/namegen"
)

// BenchmarkAmendOrder measures an amendment through the whole API
// handler (authentication, intake, the durable write, the policy
// update) with 1,000 orders of 100 targets in force, as a regulator's
// notices arrive during a season. Besides the time per amendment, which
// includes the fsync of the commit, it reports the processor time each
// one takes in the process (cpu-µs/op): the share an amendment takes
// from a DNS server on the same machine. "order" answers with the whole
// order, "minimal" with its summary (Prefer: return=minimal); each runs
// on a store of its own.
//
//	go test -run XXX -bench AmendOrder -benchtime 2000x ./api
func BenchmarkAmendOrder(b *testing.B) {
	for _, answer := range []string{"order", "minimal"} {
		b.Run(answer, func(b *testing.B) {
			header := map[string]string{}
			if answer == "minimal" {
				header["Prefer"] = "return=minimal"
			}
			s := newStack(b, nil)
			g := namegen.New(5)
			const orders, targets = 1000, 100
			ids := make([]string, orders)
			for k := range ids {
				body := testOrder(b, func(m map[string]any) {
					inForce(m)
					var ts []map[string]any
					for range targets {
						ts = append(ts, map[string]any{"fqdn": "season." + g.Name(), "subdomains": true})
					}
					m["targets"] = ts
				})
				var o orderResp
				if err := json.Unmarshal(serve(b, s.h, http.MethodPost, "/v1/orders", body, http.StatusCreated, nil), &o); err != nil {
					b.Fatal(err)
				}
				ids[k] = o.ID
			}
			bodies := make([][]byte, 0, 4096)
			for i := range cap(bodies) {
				body, _ := json.Marshal(map[string]any{
					"add":  []map[string]any{{"fqdn": "mirror." + g.Name(), "subdomains": true}},
					"note": fmt.Sprintf("notice %d", i),
				})
				bodies = append(bodies, body)
			}
			cpu0, i := processCPU(), 0
			for b.Loop() {
				serve(b, s.h, http.MethodPost, "/v1/orders/"+ids[i%orders]+"/amendments", bodies[i%len(bodies)], http.StatusOK, header)
				i++
			}
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(i), "cpu-µs/op")
		})
	}
}

// serve runs one authorised JSON request through h, with the extra
// headers given, and returns the body, failing unless the status is
// want.
func serve(b testing.TB, h http.Handler, method, path string, body []byte, want int, header map[string]string) []byte {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	for k, v := range authJSON {
		req.Header.Set(k, v)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != want {
		b.Fatalf("%s %s: %d, want %d: %s", method, path, rec.Code, want, rec.Body)
	}
	return rec.Body.Bytes()
}

// processCPU is the processor time the process has used, user and
// system, on every thread.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
