package gateway

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"
	"time"

	"villagehub/hub/influx"
	"villagehub/hub/scan"
)

// record is one counted visit in the journal: one line of space-separated
// fields, every one an ID, a number or "-" for empty:
//
//	<id> <unix ns> <class> <unique 0|1> <visit key|-> <province> <district> <commune> <village> <hub> <site> <board>
type record struct {
	ID                                                     [16]byte
	At                                                     int64 // unix ns
	Class                                                  scan.Class
	Unique                                                 bool
	Visit                                                  [16]byte
	HasVisit                                               bool
	Province, District, Commune, Village, Hub, Site, Board string
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func undash(b []byte) string {
	if len(b) == 1 && b[0] == '-' {
		return ""
	}
	return string(b)
}

func (r *record) appendTo(b []byte) []byte {
	b = hex.AppendEncode(b, r.ID[:])
	b = append(b, ' ')
	b = strconv.AppendInt(b, r.At, 10)
	b = append(b, ' ')
	b = append(b, r.Class...)
	if r.Unique {
		b = append(b, " 1 "...)
	} else {
		b = append(b, " 0 "...)
	}
	if r.HasVisit {
		b = hex.AppendEncode(b, r.Visit[:])
	} else {
		b = append(b, '-')
	}
	for _, s := range [...]string{r.Province, r.District, r.Commune, r.Village, r.Hub, r.Site, r.Board} {
		b = append(b, ' ')
		b = append(b, dash(s)...)
	}
	return append(b, '\n')
}

var errBadRecord = errors.New("malformed journal line")

// recordFields splits a journal line into its 12 fields (appendTo writes
// them with single spaces; none is empty, an empty value is "-").
func recordFields(line []byte) (f [12][]byte, ok bool) {
	for i := range len(f) - 1 {
		j := bytes.IndexByte(line, ' ')
		if j <= 0 {
			return f, false
		}
		f[i], line = line[:j], line[j+1:]
	}
	if len(line) == 0 || bytes.IndexByte(line, ' ') >= 0 {
		return f, false
	}
	f[len(f)-1] = line
	return f, true
}

// parseHead fills what differs from scan to scan (id, time, class, visit
// key) from a line's first five fields.
func (r *record) parseHead(f *[12][]byte) error {
	if len(f[0]) != 32 {
		return errBadRecord
	}
	if _, err := hex.Decode(r.ID[:], f[0]); err != nil {
		return errBadRecord
	}
	at, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return errBadRecord
	}
	r.At = at
	r.Class = scan.Class(f[2])
	r.Unique = f[3][0] == '1'
	if len(f[4]) == 32 {
		if _, err := hex.Decode(r.Visit[:], f[4]); err != nil {
			return errBadRecord
		}
		r.HasVisit = true
	}
	return nil
}

func parseRecord(line []byte) (record, error) {
	var r record
	f, ok := recordFields(line)
	if !ok {
		return r, errBadRecord
	}
	if err := r.parseHead(&f); err != nil {
		return r, err
	}
	r.Province, r.District, r.Commune, r.Village = undash(f[5]), undash(f[6]), undash(f[7]), undash(f[8])
	r.Hub, r.Site, r.Board = undash(f[9]), undash(f[10]), undash(f[11])
	return r, nil
}

// tags are the place and board tags of the record's points, sorted by
// key, empty ones left out.
func (r *record) tags(extra ...influx.Tag) []influx.Tag {
	all := []influx.Tag{
		{Key: "board", Value: r.Board}, {Key: "commune", Value: r.Commune}, {Key: "district", Value: r.District},
		{Key: "hub", Value: r.Hub}, {Key: "province", Value: r.Province}, {Key: "site", Value: r.Site},
		{Key: "village", Value: r.Village},
	}
	out := make([]influx.Tag, 0, len(all)+len(extra))
	for _, t := range all {
		if t.Value != "" {
			out = append(out, t)
		}
	}
	out = append(out, extra...)
	return out
}

// scanTime is the timestamp of the record's own point: the scan time to
// the millisecond, plus nanoseconds drawn from the scan id. The same scan
// written twice (a retry, a replay after kill -9) is the same point and
// overwrites itself; two scans of a board in one millisecond collide only
// with probability 1e-6.
func (r *record) scanTime() int64 {
	ms := r.At - r.At%int64(time.Millisecond)
	return ms + int64(binary.BigEndian.Uint32(r.ID[:4])%1e6)
}

// visitTime is the timestamp of the record's "unique" point: the start of
// its fixed unique window plus an offset drawn from the visit key, so
// that every instance writes the same point for the same phone, board
// and window.
func visitTime(at int64, visit [16]byte, window time.Duration) int64 {
	w := int64(window)
	start := at - at%w
	return start + int64(binary.BigEndian.Uint64(visit[:8])%uint64(w))
}

// series are one board's InfluxDB lines up to their timestamps, one per
// kind of point a record makes (see appendSeries): the tags of a board
// are the same on every line, so they are escaped once per board, not
// once per scan.
type series struct {
	scans, unique, bot, limited []byte
}

func newSeries(r *record) (*series, error) {
	line := func(measurement string, class influx.Tag, field string) ([]byte, error) {
		p := influx.Point{Measurement: measurement, Tags: r.tags(class), Fields: []influx.Field{influx.Int(field, 1)}, Time: time.Unix(0, 0)}
		b, err := influx.AppendLine(nil, &p)
		return bytes.TrimSuffix(b, []byte("0\n")), err
	}
	var s series
	var err [4]error
	s.scans, err[0] = line(influx.MeasurementQRScans, influx.Tag{Key: "source", Value: "printed"}, "scans")
	s.unique, err[1] = line(influx.MeasurementQRVisits, influx.Tag{Key: "class", Value: "unique"}, "visits")
	s.bot, err[2] = line(influx.MeasurementQRVisits, influx.Tag{Key: "class", Value: string(scan.ClassBot)}, "visits")
	s.limited, err[3] = line(influx.MeasurementQRVisits, influx.Tag{Key: "class", Value: string(scan.ClassRateLimited)}, "visits")
	return &s, errors.Join(err[:]...)
}

// seriesCache keeps the series of the boards a journal consumer has
// seen, keyed by a line's place and board fields. One goroutine uses it.
type seriesCache map[string]*series

// maxCachedSeries bounds the cache; past it, it starts over.
const maxCachedSeries = 1 << 16

// appendLine appends the InfluxDB lines of one journal line to b (see
// appendSeries), with its board's series from the cache.
func (c seriesCache) appendLine(b, line []byte, window time.Duration) ([]byte, int, error) {
	f, ok := recordFields(line)
	if !ok {
		return b, 0, errBadRecord
	}
	place := line[len(line)-len(f[5])-len(f[6])-len(f[7])-len(f[8])-len(f[9])-len(f[10])-len(f[11])-6:]
	s := c[string(place)] // no allocation: a conversion in a map index
	if s == nil {
		r, err := parseRecord(line)
		if err != nil {
			return b, 0, err
		}
		if s, err = newSeries(&r); err != nil {
			return b, 0, err
		}
		if len(c) >= maxCachedSeries {
			clear(c)
		}
		c[string(place)] = s
	}
	var r record
	if err := r.parseHead(&f); err != nil {
		return b, 0, err
	}
	b, n := r.appendSeries(b, s, window)
	return b, n, nil
}

// appendSeries appends the record's InfluxDB lines (docs/gateway.md),
// its board's series s followed by each point's time:
//   - human: qr_scans source=printed scans=1, and qr_visits class=unique
//     at the visit's window time;
//   - bot, rate_limited: qr_visits class=<class> visits=1.
func (r *record) appendSeries(b []byte, s *series, window time.Duration) ([]byte, int) {
	point := func(b, series []byte, t int64) []byte {
		b = append(b, series...)
		b = strconv.AppendInt(b, t, 10)
		return append(b, '\n')
	}
	switch r.Class {
	case scan.ClassHuman:
		b = point(b, s.scans, r.scanTime())
		if !r.HasVisit {
			return b, 1
		}
		return point(b, s.unique, visitTime(r.At, r.Visit, window)), 2
	case scan.ClassBot:
		return point(b, s.bot, r.scanTime()), 1
	case scan.ClassRateLimited:
		return point(b, s.limited, r.scanTime()), 1
	}
	return b, 0
}
