package scrape

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/lockstep-dev/lockstep/metrics-adapter/profile"
	"github.com/lockstep-dev/lockstep/metrics-adapter/series"
)

// observed records what the scraper reports.
type observed struct {
	mu   sync.Mutex
	errs []error
}

func (o *observed) Scraped(_ string, _ time.Duration, _ int, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.errs = append(o.errs, err)
}

// A target exposing more series than the limit fails as a whole (its values become errors,
// its series are not stored), in either exposition format path; one within the limit is
// scraped as usual.
func TestSeriesLimitFailsTheWholeTarget(t *testing.T) {
	const limit = 50
	exposition := func(n int) string {
		var b strings.Builder
		b.WriteString("# TYPE nginx_ingress_controller_requests counter\n")
		for i := range n {
			fmt.Fprintf(&b, "nginx_ingress_controller_requests{namespace=\"shop\",service=\"svc-%d\",ingress=\"web\",status=\"200\"} %d\n", i, i)
		}
		return b.String()
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		n := limit
		if r.URL.Path == "/hostile" {
			n = 1000
		}
		_, _ = io.WriteString(w, exposition(n))
	}))
	t.Cleanup(srv.Close)
	store := series.NewStore(8)
	obs := &observed{}
	s, err := New(Options{Store: store, Clock: clocktesting.NewFakeClock(time.Now()), Client: srv.Client(), Interval: 15 * time.Second, Timeout: 5 * time.Second,
		Profiles: profile.Builtin(), SeriesLimit: limit, Observer: obs, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	good := Target{Key: "good", Name: "ingress-nginx pod ingress/good", URL: srv.URL + "/good", Profile: "ingress-nginx"}
	hostile := Target{Key: "hostile", Name: "ingress-nginx pod ingress/hostile", URL: srv.URL + "/hostile", Profile: "ingress-nginx"}
	s.scrapeOnce(context.Background(), good, NewSeriesCache())
	s.scrapeOnce(context.Background(), hostile, NewSeriesCache())
	if store.Len() != limit {
		t.Fatalf("%d series stored, want the good target's %d alone", store.Len(), limit)
	}
	if len(obs.errs) != 2 || obs.errs[0] != nil || !errors.Is(obs.errs[1], ErrTooManySeries) {
		t.Fatalf("scrape outcomes %v, want nil then ErrTooManySeries", obs.errs)
	}

	// The expfmt path (used for protobuf and unusual text) applies the same limit.
	m, err := NewMapper(profile.Builtin()["ingress-nginx"])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.WithLimit(limit).ingestExpfmt(nil, strings.NewReader(exposition(limit+1)), "text/plain; version=0.0.4", nil, nil); !errors.Is(err, ErrTooManySeries) {
		t.Fatalf("expfmt path over the limit: %v, want ErrTooManySeries", err)
	}
}

// A body longer than the limit is an error, never cut and parsed as if it were whole.
func TestBoundedReader(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 100)
	if _, err := io.ReadAll(&boundedReader{r: io.LimitReader(bytes.NewReader(body), 101), left: 100}); err != nil {
		t.Fatalf("a body of exactly the limit: %v", err)
	}
	if _, err := io.ReadAll(&boundedReader{r: io.LimitReader(bytes.NewReader(append(body, 'y')), 101), left: 100}); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("a body over the limit: %v, want ErrBodyTooLarge", err)
	}
}
