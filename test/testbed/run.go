package testbed

import (
	"fmt"
	"os"
)

// Process is a process under test started by Env.Run.
type Process struct{ p *process }

// Run starts a program under test (a Lockstep binary) like the test bed's own components: its
// output goes to <LogDir>/<name>.log, it dies with the test binary (PDEATHSIG) and Env.Stop
// stops it before the components it talks to.
func (e *Env) Run(name, binary string, args ...string) (*Process, error) {
	if _, err := os.Stat(binary); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p, err := startProcess(name, binary, args, nil, e.LogDir)
	if err != nil {
		return nil, err
	}
	e.procs = append(e.procs, p)
	return &Process{p: p}, nil
}

// Stop sends SIGTERM, then SIGKILL after a grace period, and waits for the exit.
func (p *Process) Stop() error { return p.p.stop() }

// Kill sends SIGKILL to the process group (a crash: no shutdown code runs) and waits for the exit.
func (p *Process) Kill() error { return p.p.kill() }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool { return p.p.exited() }

// Pid is the process ID.
func (p *Process) Pid() int { return p.p.cmd.Process.Pid }
