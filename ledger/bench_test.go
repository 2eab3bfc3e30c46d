package ledger

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/writ-project/writ/order"
)

// seqSource is an event log indexed by seq, so that reading the latest
// events costs the same however long the log: the store's reads do.
type seqSource struct{ events []order.Event }

func (s *seqSource) EventsSince(_ context.Context, after uint64, limit int) ([]order.Event, error) {
	if after >= uint64(len(s.events)) {
		return nil, nil
	}
	out := s.events[after:]
	return out[:min(limit, len(out))], nil
}

func (s *seqSource) Order(_ context.Context, id string) (*order.Order, error) {
	return testOrder(id), nil
}

// BenchmarkSync is the ledger's part of a stream of amendments: each
// operation appends 10 events, as a follower finds after 100 ms of a
// regulator's hundred amendments a second, in one batch with its signed
// checkpoint and fsync. It reports the processor time in the process per
// event (cpu-µs/event), the share of an amendment the ledger takes.
//
//	go test -run XXX -bench Sync -benchtime 1000x ./ledger
func BenchmarkSync(b *testing.B) {
	const batch = 10
	l := openLedger(b, b.TempDir())
	src := &seqSource{}
	ctx := context.Background()
	at := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	add := func(n int) {
		for range n {
			seq := uint64(len(src.events) + 1)
			src.events = append(src.events, order.Event{
				Seq: seq, OrderID: fmt.Sprintf("20261124-%08d", seq%20), Kind: order.EventAmended,
				Principal: "agcom-agent", At: at.Add(time.Duration(seq) * time.Millisecond),
				Detail: fmt.Sprintf("notice %d", seq), DocumentSHA256: fmt.Sprintf("%064x", seq), DocumentSeq: seq,
			})
		}
	}
	// A log of some size, as in service.
	add(10_000)
	if _, err := l.Sync(ctx, src); err != nil {
		b.Fatal(err)
	}
	cpu0, events := processCPU(), 0
	for b.Loop() {
		add(batch)
		n, err := l.Sync(ctx, src)
		if err != nil || n != batch {
			b.Fatalf("Sync appended %d, %v; want %d", n, err, batch)
		}
		events += n
	}
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(events), "cpu-µs/event")
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

// countingSource counts the reads of the log.
type countingSource struct {
	seqSource
	reads int
}

func (s *countingSource) EventsSince(ctx context.Context, after uint64, limit int) ([]order.Event, error) {
	s.reads++
	return s.seqSource.EventsSince(ctx, after, limit)
}

// TestSyncReadsAShortBatchOnce: the events a sync finds are appended
// from the read that found them; the log is read once more only to see
// that nothing came meanwhile.
func TestSyncReadsAShortBatchOnce(t *testing.T) {
	l := openLedger(t, t.TempDir())
	src := &countingSource{}
	for seq := uint64(1); seq <= 10; seq++ {
		src.events = append(src.events, order.Event{Seq: seq, OrderID: "20261124-00000001", Kind: order.EventAmended,
			At: time.Date(2026, 11, 24, 0, 0, int(seq), 0, time.UTC), DocumentSHA256: fmt.Sprintf("%064x", seq), DocumentSeq: seq})
	}
	n, err := l.Sync(context.Background(), src)
	if err != nil || n != 10 {
		t.Fatalf("Sync appended %d, %v; want 10", n, err)
	}
	if src.reads != 2 {
		t.Errorf("Sync read the log %d times for one short batch, want 2", src.reads)
	}
	if got := l.allEntries(t); len(got) != 10 {
		t.Errorf("%d entries, want 10", len(got))
	}
}
