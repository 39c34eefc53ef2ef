package framework

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// ProcMemory returns the memory lines of /proc/<pid>/status (VmRSS, VmHWM, RssAnon, RssFile,
// …) in MiB.
func ProcMemory(pid int) (map[string]float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, fmt.Errorf("reading process memory: %w", err)
	}
	defer f.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[2] != "kB" {
			continue
		}
		if kb, err := strconv.ParseFloat(fields[1], 64); err == nil {
			out[strings.TrimSuffix(fields[0], ":")] = kb / 1024
		}
	}
	return out, sc.Err()
}

// Parallel runs fn(0..n-1) on workers goroutines and fails tb on the first error.
func Parallel(tb testing.TB, n, workers int, fn func(i int) error) {
	tb.Helper()
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		tb.Fatal(first)
	}
}
