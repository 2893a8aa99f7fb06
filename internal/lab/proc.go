//go:build linux

package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// ErrTimeout is returned by Proc.Wait and Proc.WaitLog when the time is up.
var ErrTimeout = errors.New("lab: timeout")

// Proc is a long-running program started with Host.Start. It runs in its
// own process group; its stdout and stderr go to a log file in the test's
// temporary directory.
type Proc struct {
	name    string
	host    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error // valid after done is closed
}

var logNameRe = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// Start starts a program in the host's namespace (ip netns exec) with the
// test's environment plus h.Env. Output goes to a log file (see Proc.Log).
// The lab's cleanup kills it and all its children. It fails the test if the
// program cannot be started.
func (h *Host) Start(name string, args ...string) *Proc {
	l := h.lab
	l.t.Helper()
	l.mu.Lock()
	closed := l.closed
	n := len(l.procs)
	l.mu.Unlock()
	if closed {
		l.t.Fatalf("lab: Start %s on %s after cleanup", name, h.name)
	}
	base := logNameRe.ReplaceAllString(filepath.Base(name), "_")
	logPath := filepath.Join(l.dir, fmt.Sprintf("%02d-%s-%s.log", n, logNameRe.ReplaceAllString(h.name, "_"), base))
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		l.t.Fatalf("lab: %v", err)
	}
	defer f.Close() // the child keeps its own copy

	cmd := exec.Command("ip", append([]string{"netns", "exec", h.ns, name}, args...)...)
	cmd.Env = append(os.Environ(), h.Env...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &Proc{name: name, host: h.name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("lab: start %s on %s: %v", name, h.name, err)
	}
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p
}

// Pid returns the process id (also its process group id).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Log returns the output (stdout and stderr) written so far.
func (p *Proc) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("<cannot read log: %v>", err)
	}
	return string(b)
}

// WaitLog waits until the log contains substr. It returns ErrTimeout after
// timeout, or an error if the process exits first.
func (p *Proc) WaitLog(substr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if strings.Contains(p.Log(), substr) {
			return nil
		}
		if p.Exited() {
			if strings.Contains(p.Log(), substr) {
				return nil
			}
			return fmt.Errorf("lab: %s exited (%v) before logging %q", p.name, p.err, substr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s did not log %q within %v", ErrTimeout, p.name, substr, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill sends SIGKILL to the process group and waits (up to 10 s) for the
// process to exit.
func (p *Proc) Kill() {
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	_ = p.Wait(10 * time.Second)
}

// Stop sends SIGTERM to the process group and waits up to 5 s for the
// process to exit, then kills it. It returns the exit error of a process
// that stopped by itself (nil for exit status 0), or an error if it had to
// be killed.
func (p *Proc) Stop() error {
	if p.Exited() {
		return p.err
	}
	_ = syscall.Kill(-p.Pid(), syscall.SIGTERM)
	if err := p.Wait(5 * time.Second); !errors.Is(err, ErrTimeout) {
		return err
	}
	p.Kill()
	return fmt.Errorf("lab: %s did not stop within 5s after SIGTERM; killed", p.name)
}

// Wait waits up to timeout for the process to exit and returns its exit
// error (nil for exit status 0), or ErrTimeout.
func (p *Proc) Wait(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return p.err
	case <-t.C:
		return fmt.Errorf("%w: %s still running after %v", ErrTimeout, p.name, timeout)
	}
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}
