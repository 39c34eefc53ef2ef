//go:build e2e

package main

import (
	"testing"
	"time"
)

// hpaSyncPeriod is the HPA controller's default, as users run it.
const hpaSyncPeriod = 15 * time.Second

// The sales event exactly as `make demo` plays it: the default timings and the HPA's default
// 15 s sync period (`make e2e`).
func TestSalesEventFullLength(t *testing.T) {
	checkSalesEvent(t, scenarioOptions{warmUpIn: 30 * time.Second, floodAfter: 20 * time.Second, saleLength: 2 * time.Minute, bootDelay: 30 * time.Second}, time.Minute)
}
