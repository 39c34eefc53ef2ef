package scrape

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// textLine is one sample of the text exposition format (version 0.0.4), as written.
type textLine struct {
	// series is the metric name and label set exactly as written: the scrape cache's key.
	series []byte
	name   []byte
	// labels is the text between the braces, parsed only on a cache miss.
	labels []byte
	value  float64
}

// errTextSyntax marks input the fast parser does not accept; the caller falls back to expfmt,
// which either parses it (rare forms such as quoted UTF-8 names) or reports the error.
var errTextSyntax = errors.New("text exposition syntax")

// textScanner walks a text exposition line by line without building metric families, so that
// a scrape costs a few allocations for series the cache already knows. Samples of families
// typed gauge (not counters) and the quantile lines of summaries are skipped, as in expand.
type textScanner struct {
	data  []byte
	pos   int
	types map[string]string
}

func newTextScanner(data []byte) *textScanner {
	return &textScanner{data: data, types: map[string]string{}}
}

// next returns the next sample; ok is false at the end of the input.
func (s *textScanner) next() (textLine, bool, error) {
	for s.pos < len(s.data) {
		end := bytes.IndexByte(s.data[s.pos:], '\n')
		if end < 0 {
			end = len(s.data) - s.pos
		}
		line := s.data[s.pos : s.pos+end]
		s.pos += end + 1
		line = bytes.TrimLeft(line, " \t")
		if len(line) == 0 {
			continue
		}
		if line[0] == '#' {
			s.comment(line)
			continue
		}
		l, err := parseSampleLine(line)
		if err != nil {
			return textLine{}, false, err
		}
		if t := s.types[string(l.name)]; t == "histogram" || t == "gaugehistogram" {
			// A histogram sample must be a _bucket, _sum or _count line; expfmt reads a bare
			// one leniently, so leave such a body to it.
			return textLine{}, false, fmt.Errorf("%w: histogram sample without a suffix", errTextSyntax)
		}
		if s.skipped(l) {
			continue
		}
		return l, true, nil
	}
	return textLine{}, false, nil
}

// comment records "# TYPE name type" lines.
func (s *textScanner) comment(line []byte) {
	f := bytes.Fields(line[1:])
	if len(f) >= 3 && string(f[0]) == "TYPE" {
		// expfmt reads the type case-insensitively.
		s.types[string(f[1])] = strings.ToLower(string(f[2]))
	}
}

func (s *textScanner) skipped(l textLine) bool {
	switch s.types[string(l.name)] {
	case "gauge":
		return true
	case "summary":
		return true // the quantile lines; _sum and _count carry other names
	}
	return false
}

func isNameStart(c byte) bool {
	return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isNameChar(c byte) bool { return isNameStart(c) || (c >= '0' && c <= '9') }

// parseSampleLine reads `name{labels} value [timestamp]`.
func parseSampleLine(line []byte) (textLine, error) {
	var l textLine
	i := 0
	if !isNameStart(line[0]) {
		return l, fmt.Errorf("%w: metric name", errTextSyntax)
	}
	for i < len(line) && isNameChar(line[i]) {
		i++
	}
	l.name = line[:i]
	if i < len(line) && line[i] == '{' {
		end, err := labelsEnd(line, i+1)
		if err != nil {
			return l, err
		}
		l.labels = line[i+1 : end]
		i = end + 1
	}
	l.series = line[:i]
	rest := line[i:]
	if len(rest) == 0 || (rest[0] != ' ' && rest[0] != '\t') {
		return l, fmt.Errorf("%w: no value", errTextSyntax)
	}
	value, rest := nextField(rest)
	stamp, rest := nextField(rest)
	if extra, _ := nextField(rest); len(value) == 0 || len(extra) > 0 {
		return l, fmt.Errorf("%w: value", errTextSyntax)
	}
	v, err := parseValue(value)
	if err != nil {
		return l, err
	}
	if len(stamp) > 0 {
		if _, err := strconv.ParseInt(string(stamp), 10, 64); err != nil {
			return l, fmt.Errorf("%w: timestamp", errTextSyntax)
		}
	}
	l.value = v
	return l, nil
}

// nextField returns the next run of non-blank bytes and what follows it, without allocating.
func nextField(b []byte) (field, rest []byte) {
	i := 0
	for i < len(b) && isBlank(b[i]) {
		i++
	}
	j := i
	for j < len(b) && !isBlank(b[j]) {
		j++
	}
	return b[i:j], b[j:]
}

// isBlank is what bytes.Fields splits on in a line.
func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' }

// parseValue accepts what the format allows: a Go float without underscores or hex, and
// Inf/NaN spellings.
func parseValue(b []byte) (float64, error) {
	for _, c := range b {
		if c == '_' || c == 'x' || c == 'X' || c == 'p' || c == 'P' {
			return 0, fmt.Errorf("%w: value", errTextSyntax)
		}
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return 0, fmt.Errorf("%w: value", errTextSyntax)
	}
	return v, nil
}

// labelsEnd finds the closing brace of a label set starting at i, checking its syntax.
func labelsEnd(line []byte, i int) (int, error) {
	for {
		i = skipBlanks(line, i)
		if i < len(line) && line[i] == '}' {
			return i, nil
		}
		var err error
		if i, err = labelPair(line, i); err != nil {
			return 0, err
		}
		i = skipBlanks(line, i)
		switch {
		case i < len(line) && line[i] == ',':
			i++
		case i < len(line) && line[i] == '}':
			return i, nil
		default:
			return 0, fmt.Errorf("%w: ',' or '}' after a label", errTextSyntax)
		}
	}
}

// labelPair checks `name="value"` at i and returns the index after the closing quote.
func labelPair(line []byte, i int) (int, error) {
	if i >= len(line) || !isNameStart(line[i]) || line[i] == ':' {
		return 0, fmt.Errorf("%w: label name", errTextSyntax)
	}
	for i < len(line) && isNameChar(line[i]) && line[i] != ':' {
		i++
	}
	i = skipBlanks(line, i)
	if i >= len(line) || line[i] != '=' {
		return 0, fmt.Errorf("%w: '=' after a label name", errTextSyntax)
	}
	i = skipBlanks(line, i+1)
	if i >= len(line) || line[i] != '"' {
		return 0, fmt.Errorf("%w: label value", errTextSyntax)
	}
	for i++; i < len(line) && line[i] != '"'; i++ {
		if line[i] == '\\' {
			i++
			if i >= len(line) || (line[i] != '\\' && line[i] != '"' && line[i] != 'n') {
				return 0, fmt.Errorf("%w: escape", errTextSyntax)
			}
		}
	}
	if i >= len(line) {
		return 0, fmt.Errorf("%w: unterminated label value", errTextSyntax)
	}
	return i + 1, nil
}

func skipBlanks(line []byte, i int) int {
	for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	return i
}

// parseLabels splits a checked label section into name/value pairs, unescaping values.
// Duplicate names are an error, as in expfmt.
func parseLabels(b []byte) ([][2]string, error) {
	var out [][2]string
	i := 0
	for {
		for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == ',') {
			i++
		}
		if i >= len(b) {
			return out, nil
		}
		start := i
		for i < len(b) && isNameChar(b[i]) {
			i++
		}
		name := string(b[start:i])
		for i < len(b) && b[i] != '"' {
			i++
		}
		i++
		var val []byte
		for ; i < len(b) && b[i] != '"'; i++ {
			c := b[i]
			if c == '\\' {
				i++
				switch b[i] {
				case 'n':
					c = '\n'
				default:
					c = b[i]
				}
			}
			val = append(val, c)
		}
		i++
		for _, p := range out {
			if p[0] == name {
				return nil, fmt.Errorf("%w: duplicate label %q", errTextSyntax, name)
			}
		}
		out = append(out, [2]string{name, string(val)})
	}
}
