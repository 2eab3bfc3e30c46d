package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/writ-project/writ/api"
)

// TestOpenAPIFrontRoutes checks the routes of api/openapi.yaml that the
// public record and the ledger serve in front of the API against a real
// writ process: every such operation is exercised, and its answer matches
// the document. (The API's own routes are checked in package api.)
func TestOpenAPIFrontRoutes(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, ct := range []string{"text/html", "text/plain", "text/csv"} {
		openapi3filter.RegisterBodyDecoder(ct, func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
			b, err := io.ReadAll(body)
			return string(b), err
		})
	}
	up := upstream(t)
	n := startNode(t, t.TempDir(), "--upstream", up.Addr(), "--scope", "FR="+frClient+"/32")
	doc.Servers = openapi3.Servers{{URL: n.httpURL}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	var o orderResp
	if code := n.api("POST", "/v1/orders", sampleOrder(t, time.Now().Add(time.Hour)), &o); code != http.StatusCreated {
		t.Fatalf("submit: %d", code)
	}
	n.awaitLedger(o.ID) // the proofs below need two entries
	seen := map[string]bool{}
	get := func(path string, want int) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "GET", n.httpURL+path, nil)
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Fatalf("GET %s is not in openapi.yaml: %v", path, err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d: %s", path, resp.StatusCode, want, body)
		}
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route}
		if err := openapi3filter.ValidateRequest(t.Context(), in); err != nil {
			t.Errorf("GET %s: request not allowed by openapi.yaml: %v", path, err)
		}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
			Body: io.NopCloser(bytes.NewReader(body)), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
		if err := openapi3filter.ValidateResponse(t.Context(), out); err != nil {
			t.Errorf("GET %s → %d does not match openapi.yaml: %v\n%s", path, resp.StatusCode, err, body)
		}
		seen[route.Path] = true
	}
	get("/", http.StatusOK)
	get("/?q=motogpstream&status=active", http.StatusOK)
	get("/orders/"+o.ID, http.StatusOK)
	get("/orders/20990101-00000000", http.StatusNotFound)
	get("/v1/report", http.StatusOK)
	get("/v1/orders/"+o.ID+"/lumen", http.StatusOK)
	get("/v1/orders/"+o.ID+"/dsa", http.StatusOK)
	get("/v1/ledger/checkpoint", http.StatusOK)
	get("/v1/ledger/key", http.StatusOK)
	get("/v1/ledger/entries?start=0&end=2", http.StatusOK)
	get("/v1/ledger/proof/inclusion?index=0&size=2", http.StatusOK)
	get("/v1/ledger/proof/consistency?first=1&second=2", http.StatusOK)
	get("/v1/ledger/documents/"+o.ID, http.StatusOK)
	for path, item := range doc.Paths.Map() {
		if !api.ServedElsewhere(path) {
			continue
		}
		for method := range item.Operations() {
			if method == "GET" && !seen[path] {
				t.Errorf("%s %s is documented but not exercised", method, path)
			}
		}
	}
}
