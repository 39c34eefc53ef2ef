package scrape

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/lockstep-dev/lockstep/metrics-adapter/series"
)

// BenchmarkIngest parses and maps one ingress-nginx scrape of 2,000 Services (28,000 series),
// the per-target work of the API benchmark every scrape interval.
func BenchmarkIngest(b *testing.B) {
	var body bytes.Buffer
	body.WriteString("# TYPE nginx_ingress_controller_requests counter\n")
	for i := range 2000 {
		for _, m := range []string{"GET", "POST"} {
			for _, st := range []string{"200", "503"} {
				fmt.Fprintf(&body, "nginx_ingress_controller_requests{namespace=\"shop\",ingress=\"web\",service=\"svc-%05d\",status=%q,method=%q} %d\n", i, st, m, i)
			}
		}
	}
	body.WriteString("# TYPE nginx_ingress_controller_request_duration_seconds histogram\n")
	for i := range 2000 {
		l := fmt.Sprintf("namespace=\"shop\",ingress=\"web\",service=\"svc-%05d\"", i)
		for _, le := range []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "+Inf"} {
			fmt.Fprintf(&body, "nginx_ingress_controller_request_duration_seconds_bucket{%s,le=%q} %d\n", l, le, i)
		}
		fmt.Fprintf(&body, "nginx_ingress_controller_request_duration_seconds_sum{%s} 1\nnginx_ingress_controller_request_duration_seconds_count{%s} %d\n", l, l, i)
	}
	m := mapper(b, "ingress-nginx")
	raw := body.Bytes()
	for name, ingest := range map[string]func(*SeriesCache) ([]series.Point, error){
		// Every scrape after the first: the series cache knows every line.
		"text-cached": func(c *SeriesCache) ([]series.Point, error) {
			return m.Ingest(nil, bytes.NewReader(raw), text, nil, nil, c)
		},
		// A first scrape: every line is parsed and mapped.
		"text-cold": func(*SeriesCache) ([]series.Point, error) {
			return m.Ingest(nil, bytes.NewReader(raw), text, nil, nil, NewSeriesCache())
		},
		// expfmt's metric families, the path for protobuf and unusual text.
		"expfmt": func(*SeriesCache) ([]series.Point, error) {
			return m.ingestExpfmt(nil, bytes.NewReader(raw), text, nil, nil)
		},
	} {
		b.Run(name, func(b *testing.B) {
			cache := NewSeriesCache()
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				points, err := ingest(cache)
				if err != nil || len(points) != 28_000 {
					b.Fatalf("%d points, %v", len(points), err)
				}
			}
		})
	}
}
