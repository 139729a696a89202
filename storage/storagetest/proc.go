package storagetest

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Proc is a server process a test started (a private service or a postbox
// binary), in its own process group, its output appended to a log file.
type Proc struct {
	cmd     *exec.Cmd
	done    chan struct{}
	logPath string
}

// StartProc runs name with args and env (nothing inherited unless env
// says so); stdout and stderr go to logPath.
func StartProc(t testing.TB, logPath string, env []string, name string, args ...string) *Proc {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Proc{cmd: cmd, done: make(chan struct{}), logPath: logPath}
	go func() { cmd.Wait(); logf.Close(); close(p.done) }()
	return p
}

// Kill ends the process group with SIGKILL (no shutdown, no cleanup) and
// waits for the process.
func (p *Proc) Kill() {
	if p == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Stop asks the process to shut down (SIGTERM) and kills it if it has not
// ended within grace.
func (p *Proc) Stop(grace time.Duration) {
	if p == nil || p.Exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Kill()
	}
}

// Signal sends sig to the process group.
func (p *Proc) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// Exited tells whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Logs is what the process wrote so far.
func (p *Proc) Logs() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// WaitReady polls ok until it is true; the test fails with the log's end
// when the process exits first or within passes.
func (p *Proc) WaitReady(t testing.TB, what string, within time.Duration, ok func() bool) {
	t.Helper()
	waitFor(t, what, p, p.logPath, within, ok)
}

// PeakRSS is the process's high-water mark of resident memory (VmHWM).
func (p *Proc) PeakRSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", p.Pid())
}

// ResetPeakRSS starts a new high-water mark (Linux: clear_refs 5).
func (p *Proc) ResetPeakRSS() error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.Pid()), []byte("5"), 0)
}

// waitFor polls ok every 100 ms until it is true, the process (if any)
// exits or within passes; logPath is shown on failure.
func waitFor(t testing.TB, what string, p *Proc, logPath string, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if p != nil && p.Exited() {
			t.Fatalf("%s exited during start:\n%s", what, tailFile(logPath))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %v:\n%s", what, within, tailFile(logPath))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tailFile(path string) string {
	b, _ := os.ReadFile(path)
	return Tail(string(b), 3000)
}

// Tail is the last n bytes of s, marked as cut when they are not all of it.
func Tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// HTTPOK tells whether a GET of url answers 200 within 2 seconds.
func HTTPOK(url string) bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
