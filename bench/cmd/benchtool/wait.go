package main

import (
	"flag"
	"fmt"
	"net/http"
	"time"

	"github.com/miekg/dns"
)

// wait asks a resolver for a name every few milliseconds until it
// answers with the given response code (or, with -url, an HTTP server
// until it answers 200), and prints how long that took from -since
// (Unix nanoseconds; default: now), for start-up times.
func wait(args []string) error {
	fs := flag.NewFlagSet("wait", flag.ExitOnError)
	url := fs.String("url", "", "HTTP URL to wait for instead")
	server := fs.String("server", "", "resolver address")
	name := fs.String("name", "", "name to ask for")
	rcode := fs.String("rcode", "NXDOMAIN", "response code to wait for")
	since := fs.Int64("since", 0, "start time, Unix nanoseconds")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after")
	fs.Parse(args)
	want, ok := dns.StringToRcode[*rcode]
	if !ok {
		return fmt.Errorf("unknown rcode %q", *rcode)
	}
	start := time.Now()
	if *since != 0 {
		start = time.Unix(0, *since)
	}
	if *url != "" {
		hc := &http.Client{Timeout: time.Second}
		for time.Since(start) < *timeout {
			if resp, err := hc.Get(*url); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					fmt.Printf("%.2f\n", time.Since(start).Seconds())
					return nil
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		return fmt.Errorf("%s did not answer within %v", *url, *timeout)
	}
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(*name), dns.TypeA)
	for time.Since(start) < *timeout {
		if resp, _, err := c.Exchange(m, *server); err == nil && resp.Rcode == want {
			fmt.Printf("%.2f\n", time.Since(start).Seconds())
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer %s %s within %v", *server, *name, *rcode, *timeout)
}
