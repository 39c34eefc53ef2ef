package kind

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestFilesRoundTrip(t *testing.T) {
	png := make([]byte, 10*1024+17)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range png {
		png[i] = byte(r.UintN(256))
	}
	var log bytes.Buffer
	log.WriteString("t+0s    lockstep  gateway  2/2 ...\n")
	if err := WriteFile(&log, "kind-load-test.png", png); err != nil {
		t.Fatal(err)
	}
	log.WriteString("summary line\n")
	if err := WriteFile(&log, "kind-load-test.json", []byte(`{"summary":{}}`)); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(log.String(), "\n") {
		if len(line) > 8*1024 {
			t.Fatalf("a line of %d bytes", len(line))
		}
	}
	files, err := ReadFiles(&log)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(files["kind-load-test.png"], png) || string(files["kind-load-test.json"]) != `{"summary":{}}` || len(files) != 2 {
		t.Fatalf("read back %d files", len(files))
	}
}

func TestWriteFileRefusesPaths(t *testing.T) {
	for _, name := range []string{"", "a b", "../x", "dir/x"} {
		if err := WriteFile(&bytes.Buffer{}, name, []byte("x")); err == nil {
			t.Errorf("%q accepted", name)
		}
	}
}
