package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

var (
	reQPS  = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	reLost = regexp.MustCompile(`Queries lost:\s+\d+ \(([0-9.]+)%\)`)
	reAvg  = regexp.MustCompile(`Average Latency \(s\):\s+([0-9.]+)`)
	reCode = regexp.MustCompile(`Response codes:\s+(.*)`)
	reSent = regexp.MustCompile(`Queries sent:\s+(\d+)`)
)

// parseDnsperf prints, for a dnsperf output file, "qps avg-ms lost-%
// rcodes" on one line, tab-separated.
func parseDnsperf(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: benchtool dnsperf FILE")
	}
	b, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	get := func(re *regexp.Regexp) string {
		if m := re.FindSubmatch(b); m != nil {
			return string(m[1])
		}
		return ""
	}
	qps := get(reQPS)
	if qps == "" {
		return fmt.Errorf("%s: no result in dnsperf output:\n%s", args[0], b)
	}
	avg, _ := strconv.ParseFloat(get(reAvg), 64)
	fmt.Printf("%s\t%.3f\t%s\t%s\n", qps, avg*1000, get(reLost), strings.ReplaceAll(get(reCode), "\t", " "))
	return nil
}

// latency reads dnsperf -v output on stdin and prints the 50th, 90th, 99th
// and 99.9th percentiles of the query latencies in milliseconds, the
// number of answers and the number of queries sent.
func latency([]string) error {
	var lat []time.Duration
	sent := 0
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if m := reSent.FindStringSubmatch(sc.Text()); m != nil {
			sent, _ = strconv.Atoi(m[1])
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 5 || f[0] != ">" || f[1] == "T" {
			continue
		}
		s, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		lat = append(lat, time.Duration(s*float64(time.Second)))
	}
	if err := sc.Err(); err != nil {
		return err
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))].Microseconds()) / 1000
	}
	fmt.Printf("%.3f\t%.3f\t%.3f\t%.3f\t%d\t%d\n", q(0.50), q(0.90), q(0.99), q(0.999), len(lat), sent)
	return nil
}

// report turns the results file of run.sh into markdown tables: medians
// of the interleaved runs, and the ratio writ/Unbound.
//
// Lines of the results file, tab-separated:
//
//	qps    N mix server run qps avg-ms lost-% rcodes
//	lat    N mix server p50 p90 p99 p99.9 answers
//	start  N server seconds
//	rss    N server kB
//	amend  phase run qps avg-ms lost-% rcodes processors
//	amendlog text
//	amendlat phase p50 p90 p99 p99.9 answers sent
func report(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: benchtool report RESULTS")
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	return writeReport(f, os.Stdout)
}

func writeReport(r io.Reader, w io.Writer) error {
	qps := map[string][]float64{} // N/mix/server
	lat := map[string][]string{}  // N/mix/server → p50 p90 p99 p999
	start := map[string]string{}  // N/server
	rss := map[string]string{}
	amend := map[string][]float64{}    // phase → qps by run
	amendCPU := map[string][]float64{} // phase → processors writ used, by run
	var amendLog []string
	amendLat := map[string][]string{} // phase → p50 p90 p99 p999 answers sent
	var ns, mixes []string
	addOnce := func(list *[]string, v string) {
		if !slices.Contains(*list, v) {
			*list = append(*list, v)
		}
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		switch f[0] {
		case "qps":
			if len(f) < 8 {
				continue
			}
			addOnce(&ns, f[1])
			addOnce(&mixes, f[2])
			k := f[1] + "/" + f[2] + "/" + f[3]
			v, _ := strconv.ParseFloat(f[5], 64)
			qps[k] = append(qps[k], v)
		case "lat":
			if len(f) >= 8 {
				lat[f[1]+"/"+f[2]+"/"+f[3]] = f[4:8]
			}
		case "start":
			start[f[1]+"/"+f[2]] = f[3]
		case "rss":
			rss[f[1]+"/"+f[2]] = f[3]
		case "amend":
			if len(f) < 8 {
				continue
			}
			v, _ := strconv.ParseFloat(f[3], 64)
			c, _ := strconv.ParseFloat(f[7], 64)
			amend[f[1]] = append(amend[f[1]], v)
			amendCPU[f[1]] = append(amendCPU[f[1]], c)
		case "amendlat":
			if len(f) >= 8 {
				amendLat[f[1]] = f[2:8]
			}
		case "amendlog":
			amendLog = append(amendLog, strings.Join(f[1:], " "))
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}

	fmt.Fprintln(w, "| blocked names | mix | writ qps | Unbound qps | writ/Unbound | writ p50 / p99 ms | Unbound p50 / p99 ms |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|")
	for _, n := range ns {
		for _, mix := range mixes {
			wq, uq := qps[n+"/"+mix+"/writ"], qps[n+"/"+mix+"/unbound"]
			if len(wq) == 0 || len(uq) == 0 {
				continue
			}
			wm, um := median(wq), median(uq)
			fmt.Fprintf(w, "| %s | %s | %s %s | %s %s | **%.2f** | %s | %s |\n", humanN(n), mix,
				thousands(wm), spread(wq), thousands(um), spread(uq), wm/um,
				latCell(lat[n+"/"+mix+"/writ"]), latCell(lat[n+"/"+mix+"/unbound"]))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| blocked names | writ start-up | Unbound start-up | writ peak RSS | Unbound peak RSS |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|")
	for _, n := range ns {
		fmt.Fprintf(w, "| %s | %s s | %s s | %s | %s |\n", humanN(n), start[n+"/writ"], start[n+"/unbound"], mib(rss[n+"/writ"]), mib(rss[n+"/unbound"]))
	}
	if len(amend) > 0 {
		writeAmend(w, amend, amendCPU)
		if len(amendLat) > 0 {
			fmt.Fprintln(w)
			fmt.Fprintln(w, "| writ, cached mix at a fixed rate | answered | p50 / p90 / p99 / p99.9 ms |")
			fmt.Fprintln(w, "|---|---:|---:|")
			for _, phase := range []string{"steady", "amending"} {
				v := amendLat[phase]
				if len(v) < 6 {
					continue
				}
				got, _ := strconv.ParseFloat(v[4], 64)
				sent, _ := strconv.ParseFloat(v[5], 64)
				answered := "—"
				if sent > 0 {
					answered = fmt.Sprintf("%.2f%%", 100*got/sent)
				}
				fmt.Fprintf(w, "| %s | %s | %s / %s / %s / %s |\n", phase, answered, v[0], v[1], v[2], v[3])
			}
		}
		for _, l := range amendLog {
			fmt.Fprintf(w, "\n%s\n", l)
		}
	}
	return nil
}

// writeAmend reports the cached mix steady and under amendments, run by
// run: the ratio of each pair of runs, and the processor time the
// amendments took from the DNS server. With the same processor time per
// query in both, a run at ratio r spent r times the steady run's
// processor time on queries; the rest of what writ used went to the 100
// amendments a second.
func writeAmend(w io.Writer, qps, cpu map[string][]float64) {
	steady, busy := qps["steady"], qps["amending"]
	n := min(len(steady), len(busy))
	var ratios, perAmend []float64
	for i := range n {
		if steady[i] <= 0 {
			continue
		}
		r := busy[i] / steady[i]
		ratios = append(ratios, r)
		if i < len(cpu["steady"]) && i < len(cpu["amending"]) {
			perAmend = append(perAmend, (cpu["amending"][i]-r*cpu["steady"][i])*1000/100)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| writ, cached mix | qps (median) | runs | processors writ used (median) |")
	fmt.Fprintln(w, "|---|---:|---|---:|")
	fmt.Fprintf(w, "| steady | %s | %s | %.2f |\n", thousands(median(steady)), joinF(steady), median(cpu["steady"]))
	fmt.Fprintf(w, "| 100 amendments/s | %s | %s | %.2f |\n", thousands(median(busy)), joinF(busy), median(cpu["amending"]))
	if len(ratios) > 0 {
		fmt.Fprintf(w, "| ratio, run by run | **%.3f** (median) | %s | |\n", median(ratios), joinRatio(ratios))
	}
	if len(perAmend) > 0 {
		fmt.Fprintf(w, "| processor time per amendment | **%.2f ms** (median) | %s | |\n", median(perAmend), joinMs(perAmend))
	}
}

func joinRatio(v []float64) string {
	var out []string
	for _, x := range v {
		out = append(out, fmt.Sprintf("%.2f", x))
	}
	return strings.Join(out, ", ")
}

func joinMs(v []float64) string {
	var out []string
	for _, x := range v {
		out = append(out, fmt.Sprintf("%.1f", x))
	}
	return strings.Join(out, ", ")
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// spread shows the range of the runs behind a median.
func spread(v []float64) string {
	if len(v) < 2 {
		return ""
	}
	return fmt.Sprintf("(%s–%s)", thousands(slices.Min(v)), thousands(slices.Max(v)))
}

func thousands(v float64) string {
	return fmt.Sprintf("%.1fk", v/1000)
}

func joinF(v []float64) string {
	var out []string
	for _, x := range v {
		out = append(out, thousands(x))
	}
	return strings.Join(out, ", ")
}

func latCell(v []string) string {
	if len(v) < 4 {
		return "—"
	}
	return v[0] + " / " + v[2]
}

func humanN(n string) string {
	switch n {
	case "1000000":
		return "1M"
	case "10000":
		return "10k"
	case "100000":
		return "100k"
	}
	return n
}

func mib(kb string) string {
	v, err := strconv.ParseFloat(kb, 64)
	if err != nil {
		return "—"
	}
	return fmt.Sprintf("%.0f MiB", v/1024)
}
