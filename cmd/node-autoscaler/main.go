// Command node-autoscaler runs Karpenter's node provisioning with Lockstep's cloud providers and
// its serverless spill and move-back controllers. `node-autoscaler --help` lists every flag.
package main

import (
	"fmt"
	"os"

	nodeautoscaler "github.com/lockstep-dev/lockstep/node-autoscaler"
)

func main() {
	if err := nodeautoscaler.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "node-autoscaler:", err)
		os.Exit(1)
	}
}
