//go:build linux

package cli

import (
	"os/exec"
	"syscall"
)

// setDaemonProcAttr puts a daemon started by `chat --start` in its own
// process group (keys at the terminal are the chat's, not the daemon's)
// and has the kernel stop it should the chat die without stopping it.
func setDaemonProcAttr(c *exec.Cmd) {
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
