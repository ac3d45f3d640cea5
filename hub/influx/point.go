package influx

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Point is one InfluxDB point. Tags are a short ordered list (keep them
// sorted by key, as the constructors in schema.go do, so that InfluxDB does
// not have to); tags carry only IDs and small fixed sets, never free text.
type Point struct {
	Measurement string
	Tags        []Tag
	Fields      []Field
	// Time of the point. Zero means "now" (set by Append). Append may move it
	// forward by a few nanoseconds so that no two points of one series share
	// a timestamp.
	Time time.Time
}

// Tag is one tag key/value pair.
type Tag struct{ Key, Value string }

// Field is one typed field; build it with Int, Float, Bool or String.
type Field struct {
	Key  string
	kind fieldKind
	i    int64
	f    float64
	s    string
}

type fieldKind uint8

const (
	kindInt fieldKind = iota + 1
	kindFloat
	kindBool
	kindString
)

// Int is an integer field (line protocol "42i").
func Int(key string, v int64) Field { return Field{Key: key, kind: kindInt, i: v} }

// Float is a float field. NaN and ±Inf cannot be written to InfluxDB; a
// point holding one goes to the dead-letter file.
func Float(key string, v float64) Field { return Field{Key: key, kind: kindFloat, f: v} }

// Bool is a boolean field.
func Bool(key string, v bool) Field {
	f := Field{Key: key, kind: kindBool}
	if v {
		f.i = 1
	}
	return f
}

// String is a string field. Line breaks are replaced by spaces, because the
// spool and the dead-letter file hold one point per line.
func String(key string, v string) Field { return Field{Key: key, kind: kindString, s: v} }

// Value returns the field's value as int64, float64, bool or string.
func (f Field) Value() any {
	switch f.kind {
	case kindInt:
		return f.i
	case kindFloat:
		return f.f
	case kindBool:
		return f.i == 1
	case kindString:
		return f.s
	}
	return nil
}

// errInvalidPoint is the reason recorded in the dead-letter file for a point
// that cannot be encoded at all.
var errInvalidPoint = errors.New("invalid point")

// Nanosecond timestamps in int64 cover 1677-09-21 to 2262-04-11.
var (
	minTime = time.Unix(0, math.MinInt64+2)
	maxTime = time.Unix(0, math.MaxInt64-1)
)

// appendKey appends the series key (measurement and tags, escaped) of p.
// Names, keys and tag values must not hold control characters or
// backslashes: those have no unambiguous line-protocol escape in InfluxDB 1.8.
func appendKey(b []byte, p *Point) ([]byte, error) {
	if p.Measurement == "" {
		return b, errors.New("empty measurement")
	}
	if !plainName(p.Measurement) {
		return b, errors.New("measurement holds a control character or backslash")
	}
	b = appendEscaped(b, p.Measurement, false)
	for _, t := range p.Tags {
		if t.Value == "" {
			continue // InfluxDB reads a missing tag as empty; an empty value is a syntax error
		}
		if t.Key == "" || !plainName(t.Key) || !plainName(t.Value) {
			return b, errors.New("tag key or value empty or holds a control character or backslash")
		}
		b = append(b, ',')
		b = appendEscaped(b, t.Key, true)
		b = append(b, '=')
		b = appendEscaped(b, t.Value, true)
	}
	return b, nil
}

// appendFields appends " k=v,k=v" for p's fields.
func appendFields(b []byte, p *Point) ([]byte, error) {
	if len(p.Fields) == 0 {
		return b, errors.New("no fields")
	}
	for i, f := range p.Fields {
		if i == 0 {
			b = append(b, ' ')
		} else {
			b = append(b, ',')
		}
		if f.Key == "" || !plainName(f.Key) {
			return b, errors.New("field key empty or holds a control character or backslash")
		}
		b = appendEscaped(b, f.Key, true)
		b = append(b, '=')
		switch f.kind {
		case kindInt:
			b = strconv.AppendInt(b, f.i, 10)
			b = append(b, 'i')
		case kindFloat:
			if math.IsNaN(f.f) || math.IsInf(f.f, 0) {
				return b, errors.New("field " + f.Key + " is NaN or infinite")
			}
			b = strconv.AppendFloat(b, f.f, 'g', -1, 64)
		case kindBool:
			if f.i == 1 {
				b = append(b, "true"...)
			} else {
				b = append(b, "false"...)
			}
		case kindString:
			b = append(b, '"')
			for i := 0; i < len(f.s); i++ {
				switch c := f.s[i]; c {
				case '"', '\\':
					b = append(b, '\\', c)
				case '\n', '\r':
					b = append(b, ' ')
				default:
					b = append(b, c)
				}
			}
			b = append(b, '"')
		default:
			return b, errors.New("field " + f.Key + " has no value (use influx.Int, Float, Bool or String)")
		}
	}
	return b, nil
}

func plainName(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '\\' || c == 0x7f {
			return false
		}
	}
	return true
}

// appendEscaped escapes spaces and commas (and '=' in keys and tag values),
// as the line protocol requires.
func appendEscaped(b []byte, s string, eq bool) []byte {
	if !strings.ContainsAny(s, " ,=") {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' || c == ',' || (eq && c == '=') {
			b = append(b, '\\')
		}
		b = append(b, c)
	}
	return b
}

// lineKey returns the series key of one encoded line: everything before the
// first unescaped space.
func lineKey(line []byte) []byte {
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '\\':
			i++
		case ' ':
			return line[:i]
		}
	}
	return line
}

// lineTime returns the timestamp at the end of one encoded line.
func lineTime(line []byte) (int64, bool) {
	i := len(line) - 1
	for i >= 0 && line[i] != ' ' {
		i--
	}
	ts, err := strconv.ParseInt(string(line[i+1:]), 10, 64)
	return ts, err == nil
}

// AppendLine appends p as one line of line protocol, with p.Time exactly
// (nanoseconds) and a trailing newline. It is for callers that give their
// points final, unique timestamps themselves and may write the same line
// more than once (a replay must then overwrite, not add): see
// Writer.AppendLines.
func AppendLine(b []byte, p *Point) ([]byte, error) {
	if p.Time.IsZero() || p.Time.Before(minTime) || p.Time.After(maxTime) {
		return b, fmt.Errorf("%w: point has no time or one outside InfluxDB's range", errInvalidPoint)
	}
	start := len(b)
	b, err := appendKey(b, p)
	if err == nil {
		b, err = appendFields(b, p)
	}
	if err != nil {
		return b[:start], fmt.Errorf("%w: %v", errInvalidPoint, err)
	}
	b = append(b, ' ')
	b = strconv.AppendInt(b, p.Time.UnixNano(), 10)
	return append(b, '\n'), nil
}
