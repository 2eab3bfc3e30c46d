// Package pgtest runs a throwaway PostgreSQL server for tests: a new
// cluster in a temporary directory, listening on a free loopback port,
// removed when the test ends. It uses Debian's postgresql binaries (the
// test command installs them); when run as root it runs them as the
// postgres user, since PostgreSQL refuses to run as root.
package pgtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// Server is a running throwaway PostgreSQL server.
type Server struct {
	dir  string
	port int
	bin  string
	as   string // user to run as, or ""
}

// bindir finds the directory of initdb and postgres.
func bindir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(real), nil
		}
		return filepath.Dir(p), nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return "", fmt.Errorf("PostgreSQL is not installed: initdb not found on PATH or in /usr/lib/postgresql/*/bin (Debian: apt-get install -y postgresql; ./test.sh installs it)")
	}
	return filepath.Dir(matches[len(matches)-1]), nil
}

// Start starts a server for the test, stopped and removed at its end.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// New starts a server shared by a package's tests (from TestMain); the
// caller stops it.
func New() (*Server, error) {
	bin, err := bindir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "writ-pg")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres user to run PostgreSQL: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
		s.as = "postgres"
	}
	data := filepath.Join(dir, "data")
	if out, err := s.run("initdb", "-D", data, "-U", "writ", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s.port = port
	logFile := filepath.Join(dir, "postgres.log")
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c max_connections=200", port, dir)
	// pg_ctl -w waits until the server accepts connections: no sleep.
	if out, err := s.run("pg_ctl", "-D", data, "-l", logFile, "-o", opts, "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(logFile)
		return nil, fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	if out, err := s.run("createdb", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "writ", "writ"); err != nil {
		s.Stop()
		return nil, fmt.Errorf("createdb: %v\n%s", err, out)
	}
	return s, nil
}

func (s *Server) run(prog string, args ...string) ([]byte, error) {
	path := filepath.Join(s.bin, prog)
	var cmd *exec.Cmd
	if s.as != "" {
		cmd = exec.Command("runuser", append([]string{"-u", s.as, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = s.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// DSN returns the connection string of the server's writ database.
func (s *Server) DSN() string {
	return fmt.Sprintf("postgres://writ@127.0.0.1:%d/writ?sslmode=disable", s.port)
}

// CreateDatabase creates another empty database and returns its DSN, for
// tests that need a fresh store on the same server.
func (s *Server) CreateDatabase(t testing.TB, name string) string {
	t.Helper()
	if out, err := s.run("createdb", "-h", "127.0.0.1", "-p", strconv.Itoa(s.port), "-U", "writ", name); err != nil {
		t.Fatalf("createdb %s: %v\n%s", name, err, out)
	}
	return strings.Replace(s.DSN(), "/writ?", "/"+name+"?", 1)
}

var dbNames atomic.Int64

// FreshDatabase creates a new, uniquely named empty database and returns
// its DSN.
func (s *Server) FreshDatabase(t testing.TB) string {
	t.Helper()
	return s.CreateDatabase(t, fmt.Sprintf("t%d", dbNames.Add(1)))
}

// Stop stops the server and removes its files.
func (s *Server) Stop() {
	// -w waits for the server to be gone before its files are removed.
	s.run("pg_ctl", "-D", filepath.Join(s.dir, "data"), "-m", "immediate", "-w", "-t", "30", "stop")
	os.RemoveAll(s.dir)
}
