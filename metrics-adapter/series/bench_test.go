package series

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// BenchmarkEvaluate answers one Service's p99 from a store holding 56,000 series (2,000
// Services × 28 series), the shape of the API benchmark.
func BenchmarkEvaluate(b *testing.B) {
	s := NewStore(8)
	for scrape := range 6 {
		at := t0 + int64(scrape)*15_000
		for _, target := range []string{"a", "b"} {
			points := make([]Point, 0, 28_000)
			for svc := range 2000 {
				k := Key{Namespace: "shop", Service: fmt.Sprintf("svc-%05d", svc), Ingress: "web"}
				for i := range 14 {
					pk := k
					if i < 4 {
						pk.Family = Requests
					} else {
						pk.Family, pk.LE = DurationBucket, float64(i)
						if i == 13 {
							pk.LE = math.Inf(1)
						}
					}
					points = append(points, Point{ID: fmt.Sprintf("%d/%d", svc, i), Key: pk, V: float64(scrape * (i + 1))})
				}
			}
			s.Scrape(target, at, points)
		}
	}
	now := t0 + 5*15_000
	q := Query{Measure: LatencyQuantile, Quantile: 0.99, Object: Object{ServiceObject, "shop", "svc-01234"}, Window: time.Minute}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Evaluate(q, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScrape records one scrape of 28,000 known series, the store's share of every
// scrape in the API benchmark.
func BenchmarkScrape(b *testing.B) {
	s := NewStore(8)
	points := make([]Point, 0, 28_000)
	for svc := range 2000 {
		for i := range 14 {
			points = append(points, Point{ID: fmt.Sprintf("%d/%d", svc, i), Key: Key{Family: Requests, Namespace: "shop", Service: fmt.Sprintf("svc-%05d", svc)}})
		}
	}
	at := t0
	b.ReportAllocs()
	for b.Loop() {
		at += 15_000
		s.Scrape("a", at, points)
	}
}
