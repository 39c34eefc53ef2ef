//go:build !e2e

package main

import (
	"testing"
	"time"
)

// hpaSyncPeriod is shortened so that the scenario plays in about two minutes.
const hpaSyncPeriod = 2 * time.Second

// The sales event of `make demo`, on a shorter clock (`make test`).
func TestSalesEvent(t *testing.T) {
	checkSalesEvent(t, scenarioOptions{warmUpIn: 10 * time.Second, floodAfter: 10 * time.Second, saleLength: 60 * time.Second, bootDelay: 20 * time.Second}, 0)
}
