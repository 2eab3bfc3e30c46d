package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/writ-project/writ/order"
)

// helperEnv, when set, turns TestHelperWriter into the writer process of
// TestKillDurability; its value is the database path.
const helperEnv = "WRIT_STORE_HELPER_DB"

const (
	helperMaxOrders = 5000
	idPrefix        = "committed "
)

// TestHelperWriter is not a test on its own: TestKillDurability runs the
// test binary again with only this test selected, and it creates orders
// until it is killed, printing each id once CreateOrder has returned.
func TestHelperWriter(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper process for TestKillDurability")
	}
	ctx := context.Background()
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := range helperMaxOrders {
		id := fmt.Sprintf("kill-%05d", i)
		if _, err := s.CreateOrder(ctx, fullOrder(id, base), events(id, base, order.EventReceived)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		// Unbuffered: the line leaves the process before the next order.
		fmt.Fprintln(os.Stdout, idPrefix+id)
	}
	s.Close()
}

// TestKillDurability checks that an order whose CreateOrder returned is
// still there after the writing process is killed with SIGKILL, which
// gives SQLite no chance to clean up. (Power loss additionally needs the
// fsync that synchronous=FULL performs; no test here can cut the power.)
func TestKillDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a subprocess")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	path := filepath.Join(t.TempDir(), "writ.db")

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperWriter$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	const before = 200
	var committed []string
	lines := bufio.NewScanner(out)
	killed := false
	for lines.Scan() {
		id, ok := strings.CutPrefix(lines.Text(), idPrefix)
		if !ok {
			continue
		}
		committed = append(committed, id)
		if len(committed) == before && !killed {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatalf("kill: %v", err)
			}
			killed = true
			// Keep reading: lines already in the pipe were printed after
			// their CreateOrder returned, so those orders count too.
		}
	}
	if err := lines.Err(); err != nil {
		t.Fatalf("reading helper output: %v", err)
	}
	werr := cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("helper did not finish in time (%d ids seen): %v", len(committed), ctx.Err())
	}
	if !killed {
		t.Fatalf("helper exited (%v) after %d ids, before it could be killed", werr, len(committed))
	}
	t.Logf("killed after %d committed orders (%v)", len(committed), werr)

	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	list, version, err := s.Orders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, o := range list {
		have[o.ID] = true
	}
	for _, id := range committed {
		if !have[id] {
			t.Errorf("order %s was committed before the kill but is gone", id)
		}
	}
	// An order may have committed without its id reaching the pipe, never
	// the other way round, and each carries exactly one event.
	if len(list) < len(committed) || version != uint64(len(list)) {
		t.Errorf("%d orders, version %d, %d committed", len(list), version, len(committed))
	}
}
