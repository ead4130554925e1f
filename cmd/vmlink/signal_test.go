package main

// Signals: a lab or an up that is interrupted — Ctrl-C, kill, a closed
// terminal (SIGHUP), a closed pipe (`vmlink lab | head -1`, SIGPIPE) —
// removes what it created and exits 128+N; a killed lab's namespaces are
// found again by `lab --down`.

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmlink/vmlink/dataplane"
	"github.com/vmlink/vmlink/internal/netns"
)

// helperCmd is the test binary run as vmlink with args (see
// TestVmlinkHelperProcess).
func helperCmd(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestVmlinkHelperProcess$")
	cmd.Env = append(os.Environ(), "VMLINK_HELPER_ARGS="+strings.Join(args, "\x1f"))
	return cmd
}

// namespacesWith lists the named namespaces starting with prefix.
func namespacesWith(prefix string) []string {
	var out []string
	names, _ := netns.List()
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

// cleanupPrefix removes whatever a failed test left under prefix.
func cleanupPrefix(t *testing.T, prefix string) {
	t.Cleanup(func() {
		for _, n := range namespacesWith(prefix) {
			netns.Delete(n)
		}
	})
}

// waitExit waits for cmd at most d, killing it after that.
func waitExit(t *testing.T, cmd *exec.Cmd, d time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err == nil {
			return 0
		}
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				t.Errorf("vmlink died of %v instead of cleaning up and exiting", ws.Signal())
				return -1
			}
			return ee.ExitCode()
		}
		t.Fatal(err)
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		t.Fatalf("vmlink still ran after %s", d)
	}
	return -1
}

func TestLabSignals(t *testing.T) {
	requireLabRoot(t)
	for _, sig := range []syscall.Signal{syscall.SIGPIPE, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT} {
		t.Run(signalName(sig), func(t *testing.T) {
			cmd := helperCmd(t, "lab", "modes")
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			prefix := dataplane.LabPrefix(cmd.Process.Pid)
			cleanupPrefix(t, prefix)
			// The first line, as `head -1` reads it, then wait until the lab
			// has built something.
			rd := bufio.NewReader(stdout)
			if _, err := rd.ReadString('\n'); err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(30 * time.Second); len(namespacesWith(prefix)) == 0; {
				if time.Now().After(deadline) {
					t.Fatal("the lab built no namespace in 30s")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if sig == syscall.SIGPIPE {
				stdout.Close() // head exits: the lab's next write breaks the pipe
			} else {
				cmd.Process.Signal(sig)
				go func() { _, _ = rd.WriteTo(discard{}) }()
			}
			code := waitExit(t, cmd, 90*time.Second)
			if want := exitSignal + int(sig); code != want {
				t.Errorf("exit %d, want %d (stderr %q)", code, want, stderr.String())
			}
			if !strings.Contains(stderr.String(), "interrupted by "+signalName(sig)) {
				t.Errorf("stderr does not name the signal: %q", stderr.String())
			}
			if strings.Contains(stderr.String(), "need root") {
				t.Errorf("an interruption blamed on privileges: %q", stderr.String())
			}
			if l := namespacesWith(prefix); len(l) > 0 {
				t.Errorf("left behind: %v", l)
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// A lab killed with -9 cannot clean up; `lab --down` alone finds its
// namespaces by the dead PID in their prefix and removes them, and the
// prefix without its trailing dash works too.
func TestLabDownAfterKill(t *testing.T) {
	requireLabRoot(t)
	cmd := helperCmd(t, "lab", "modes")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	prefix := dataplane.LabPrefix(cmd.Process.Pid)
	cleanupPrefix(t, prefix)
	rd := bufio.NewScanner(stdout)
	for rd.Scan() && !strings.HasPrefix(rd.Text(), "== phase") {
	}
	cmd.Process.Kill()
	cmd.Wait()
	left := namespacesWith(prefix)
	if len(left) == 0 {
		t.Fatal("the killed lab left nothing: the test proves nothing")
	}
	orphans, err := dataplane.OrphanLabPrefixes()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range orphans {
		found = found || p == prefix
	}
	if !found {
		t.Fatalf("OrphanLabPrefixes %v lacks %s", orphans, prefix)
	}
	code, out, errOut := runLabCLI("lab", "--down", strings.TrimSuffix(prefix, "-"))
	if code != exitOK || !strings.Contains(out, "removed lab "+prefix) {
		t.Fatalf("lab --down %s: exit %d %q %q", strings.TrimSuffix(prefix, "-"), code, out, errOut)
	}
	if l := namespacesWith(prefix); len(l) > 0 {
		t.Errorf("left behind after lab --down: %v", l)
	}
	// Nothing left: the same prefix again is refused, not a silent success.
	code, _, errOut = runLabCLI("lab", "--down", prefix)
	if code != exitFailed || !strings.Contains(errOut, "no lab namespace starts with "+prefix) {
		t.Errorf("lab --down of nothing: exit %d %q, want %d naming the prefix", code, errOut, exitFailed)
	}
}

// `lab --down` alone removes an orphan: a namespace vmlab-PID- of a PID
// that is gone, even one no lab topology marked (killed before marking).
func TestLabDownOrphans(t *testing.T) {
	requireLabRoot(t)
	gone := helperCmd(t, "help") // any process that has exited: its PID is free
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	prefix := dataplane.LabPrefix(gone.Process.Pid)
	cleanupPrefix(t, prefix)
	ns, err := netns.Create(prefix + "c1")
	if err != nil {
		t.Fatal(err)
	}
	ns.Close()
	code, out, errOut := runLabCLI("lab", "--down")
	if code != exitOK || !strings.Contains(out, "removed lab "+prefix) {
		t.Fatalf("lab --down: exit %d %q %q", code, out, errOut)
	}
	if l := namespacesWith(prefix); len(l) > 0 {
		t.Errorf("left behind: %v", l)
	}
	for _, bad := range []string{"vmlab-", "vmlab-x-", "lab-12-", "vmlab-12-c1"} {
		if code, _, errOut := runLabCLI("lab", "--down", bad); code != exitUsage || !strings.Contains(errOut, fmt.Sprintf("%q", strings.TrimSuffix(bad, "-"))) {
			t.Errorf("lab --down %s: exit %d %q, want %d naming it", bad, code, errOut, exitUsage)
		}
	}
}

// `vmlink up -v 2>&1 | head -1`: the pipe closes after the first progress
// line; the next write breaks it, and up rolls back instead of dying
// half-way.
func TestUpRollsBackOnSIGPIPE(t *testing.T) {
	requireLabRoot(t)
	prefix := fmt.Sprintf("vmlt-sp%d-", os.Getpid())
	cleanupPrefix(t, prefix)
	f := filepath.Join(t.TempDir(), "topo.yaml")
	os.WriteFile(f, []byte(fmt.Sprintf(`
name: %[1]stopo
host: %[1]shost
parents:
  - {name: p0, sandbox: {switch: %[1]ssw}}
networks:
  - {name: a, parent: p0, mode: bridge, subnets: [10.3.0.0/24]}
endpoints:
  - {name: c1, netns: %[1]sc1, interfaces: [{network: a}]}
  - {name: c2, netns: %[1]sc2, interfaces: [{network: a}]}
`, prefix)), 0o644)
	cmd := helperCmd(t, "up", "-v", "-f", f)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if _, err := bufio.NewReader(pr).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	pr.Close() // head -1 is done
	code := waitExit(t, cmd, 90*time.Second)
	if code != exitSignal+int(syscall.SIGPIPE) {
		t.Errorf("exit %d, want %d", code, exitSignal+int(syscall.SIGPIPE))
	}
	if l := namespacesWith(prefix); len(l) > 0 {
		t.Errorf("left behind: %v", l)
	}
}
