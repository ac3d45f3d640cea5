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

func parseRecord(line []byte) (record, error) {
	var r record
	f := bytes.Fields(line)
	if len(f) != 12 || len(f[0]) != 32 {
		return r, errBadRecord
	}
	if _, err := hex.Decode(r.ID[:], f[0]); err != nil {
		return r, errBadRecord
	}
	at, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return r, errBadRecord
	}
	r.At = at
	r.Class = scan.Class(f[2])
	r.Unique = f[3][0] == '1'
	if len(f[4]) == 32 {
		if _, err := hex.Decode(r.Visit[:], f[4]); err != nil {
			return r, errBadRecord
		}
		r.HasVisit = true
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

// appendLines appends the record's InfluxDB lines (docs/gateway.md):
//   - human: qr_scans source=printed scans=1, and qr_visits class=unique
//     at the visit's window time;
//   - bot, rate_limited: qr_visits class=<class> visits=1.
func (r *record) appendLines(b []byte, window time.Duration) ([]byte, int, error) {
	var err error
	switch r.Class {
	case scan.ClassHuman:
		p := influx.Point{Measurement: influx.MeasurementQRScans, Tags: r.tags(influx.Tag{Key: "source", Value: "printed"}),
			Fields: []influx.Field{influx.Int("scans", 1)}, Time: time.Unix(0, r.scanTime())}
		if b, err = influx.AppendLine(b, &p); err != nil {
			return b, 0, err
		}
		if !r.HasVisit {
			return b, 1, nil
		}
		v := influx.Point{Measurement: influx.MeasurementQRVisits, Tags: r.tags(influx.Tag{Key: "class", Value: "unique"}),
			Fields: []influx.Field{influx.Int("visits", 1)}, Time: time.Unix(0, visitTime(r.At, r.Visit, window))}
		b, err = influx.AppendLine(b, &v)
		return b, 2, err
	case scan.ClassBot, scan.ClassRateLimited:
		p := influx.Point{Measurement: influx.MeasurementQRVisits, Tags: r.tags(influx.Tag{Key: "class", Value: string(r.Class)}),
			Fields: []influx.Field{influx.Int("visits", 1)}, Time: time.Unix(0, r.scanTime())}
		b, err = influx.AppendLine(b, &p)
		return b, 1, err
	}
	return b, 0, nil
}
