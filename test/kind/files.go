// Package kind carries the kind load test's files out of its in-cluster Job. The Job's images
// have no shell and no tar, so `kubectl cp` cannot fetch them; instead the Job prints each file
// into its log as base64 lines, which test/kind/kind-load-test.sh gathers back.
package kind

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
)

// FilePrefix starts every log line that carries a piece of a file.
const FilePrefix = "LOCKSTEP-FILE"

// lineBytes is how much of a file one line carries (before base64), well under the 16 KiB at
// which container runtimes split log lines.
const lineBytes = 3 * 1024

// WriteFile prints data as lines "LOCKSTEP-FILE <name> <base64>", in order.
func WriteFile(w io.Writer, name string, data []byte) error {
	if name == "" || strings.ContainsAny(name, " \t\n/") {
		return fmt.Errorf("file name %q: want a plain name", name)
	}
	for len(data) > 0 {
		n := min(lineBytes, len(data))
		if _, err := fmt.Fprintf(w, "%s %s %s\n", FilePrefix, name, base64.StdEncoding.EncodeToString(data[:n])); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// ReadFiles gathers the files WriteFile printed among other lines of r, as the script does
// with awk and base64.
func ReadFiles(r io.Reader) (map[string][]byte, error) {
	out := map[string][]byte{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 || fields[0] != FilePrefix {
			continue
		}
		piece, err := base64.StdEncoding.DecodeString(fields[2])
		if err != nil {
			return nil, fmt.Errorf("file %s: %w", fields[1], err)
		}
		out[fields[1]] = append(out[fields[1]], piece...)
	}
	return out, sc.Err()
}
