package testbed

import "testing"

func TestUnescapeMount(t *testing.T) {
	tests := map[string]string{
		"/tmp/plain":              "/tmp/plain",
		`/tmp/with\040space`:      "/tmp/with space",
		`/tmp/tab\011and\134back`: "/tmp/tab\tand\\back",
		`/tmp/short\04`:           `/tmp/short\04`,
		`/tmp/not\999octal`:       `/tmp/not\999octal`,
	}
	for in, want := range tests {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}
