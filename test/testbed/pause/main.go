// Command pause is the test bed's pod sandbox process for the real node: it holds the pod's
// namespaces, reaps the zombies it inherits as the pod's PID 1 (shared process namespace), and
// exits on SIGINT or SIGTERM. It is built into an OCI archive by `make testbed` and pinned in
// containerd, so no registry is needed.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			return
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
