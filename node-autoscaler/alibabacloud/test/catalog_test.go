package test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"

	"github.com/lockstep-dev/lockstep/internal/alibabacloud/alifake"
	"github.com/lockstep-dev/lockstep/node-autoscaler/alibabacloud"
	"github.com/lockstep-dev/lockstep/test/framework"
)

// The catalogue refreshes in the background: a type whose price calls are refused (throttled
// here, with no retries left) is not offered until it has a price, and a metric counts it; while
// a later refresh waits on a slow API, the last good catalogue keeps being served, and the
// refresh's result shows once it ends.
func TestCatalogRefreshesInTheBackground(t *testing.T) {
	f := newFixture(t)
	api, err := alibabacloud.NewAPI(alibabacloud.ClientConfig{Region: region, Endpoint: f.endpoint, Scheme: "http", Clock: f.clock, Retries: -1},
		credentials.NewStaticAKCredentialsProvider(keyID, keySecret))
	if err != nil {
		t.Fatal(err)
	}
	priceErrors := prometheus.NewCounter(prometheus.CounterOpts{Name: "price_errors"})
	cat := alibabacloud.NewCatalog(api, f.clock, alibabacloud.CatalogConfig{PriceErrors: priceErrors, PriceConcurrency: 2})
	ctx := context.Background()
	f.fake.FailWhere("DescribePrice", func(p url.Values) bool { return p.Get("InstanceType") == bigType }, alifake.Throttled)
	names := func() ([]string, error) {
		its, err := cat.InstanceTypes(ctx, region, []string{zoneH})
		return typeNames(its), err
	}
	got, err := names()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(got, bigType) || !slices.Contains(got, smallType) {
		t.Errorf("offered %v: want %s without its price left out, the others in", got, bigType)
	}
	if n := testutil.ToFloat64(priceErrors); n != 2 {
		t.Errorf("%g price errors counted, want 2 (on-demand and spot)", n)
	}

	// An hour later the prices come back, slowly: the last good catalogue is served meanwhile.
	f.fake.FailWhere("DescribePrice", nil, nil)
	release := f.fake.Gate("DescribePrice")
	defer release()
	f.clock.Step(time.Hour)
	served := make(chan error, 1)
	go func() {
		got, err := names()
		if err == nil && slices.Contains(got, bigType) {
			err = fmt.Errorf("offered %v before the refresh ended", got)
		}
		served <- err
	}()
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("InstanceTypes waited for a refresh while a catalogue was there to serve")
	}
	release()
	framework.Eventually(t, 30*time.Second, func(context.Context) error {
		got, err := names()
		if err != nil || !slices.Contains(got, bigType) {
			return fmt.Errorf("offered %v (%w), want %s back once the refresh ended", got, err, bigType)
		}
		return nil
	})
}

// A first load that fails is an error for the caller that waited for it, and the next caller
// tries again.
func TestCatalogFirstLoadFailure(t *testing.T) {
	f := newFixture(t)
	cat := alibabacloud.NewCatalog(f.api, f.clock, alibabacloud.CatalogConfig{})
	f.fake.FailWhere("DescribeInstanceTypes", func(url.Values) bool { return true }, alifake.Forbidden)
	if _, err := cat.InstanceTypes(context.Background(), region, []string{zoneH}); err == nil {
		t.Fatal("InstanceTypes without any catalogue succeeded")
	}
	f.fake.FailWhere("DescribeInstanceTypes", nil, nil)
	its, err := cat.InstanceTypes(context.Background(), region, []string{zoneH})
	if err != nil || len(its) == 0 {
		t.Fatalf("InstanceTypes after the API recovered: %d types, %v", len(its), err)
	}
}

func typeNames(its []*cloudprovider.InstanceType) []string {
	out := make([]string, 0, len(its))
	for _, it := range its {
		out = append(out, it.Name)
	}
	return out
}
