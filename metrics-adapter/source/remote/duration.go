package remote

import (
	"fmt"
	"time"

	"sigs.k8s.io/yaml"
)

// Duration is a time.Duration written as "15s" in configuration.
type Duration struct{ time.Duration }

// UnmarshalJSON reads "15s"-style durations.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := yaml.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes "15s"-style durations.
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }
