package uplink

import (
	"errors"
	"math"
	"sort"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// The remote-write 1.0 message (prometheus.WriteRequest), which every
// receiver accepts (Prometheus 2.x only takes 1.0):
//
//	WriteRequest { repeated TimeSeries timeseries = 1; }
//	TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//	Label        { string name = 1; string value = 2; }
//	Sample       { double value = 1; int64 timestamp = 2; }
//
// client_golang's exp/api/remote ships generated types for 2.0 only, so the
// 1.0 message is encoded here with protowire (four small messages). A
// concatenation of encoded WriteRequests is itself a valid WriteRequest.

type label struct{ Name, Value string }

type sample struct {
	Value float64
	TS    int64 // milliseconds since the epoch
}

type series struct {
	Labels  []label // sorted by name, __name__ included
	Samples []sample
}

// key identifies a series' label set.
func (s *series) key() string {
	var b strings.Builder
	for _, l := range s.Labels {
		b.WriteString(l.Name)
		b.WriteByte(0xff)
		b.WriteString(l.Value)
		b.WriteByte(0xfe)
	}
	return b.String()
}

func sortLabels(ls []label) { sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name }) }

// encodeWriteRequest appends the protobuf encoding of a WriteRequest.
func encodeWriteRequest(b []byte, ss []series) []byte {
	for i := range ss {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(seriesSize(&ss[i])))
		for _, l := range ss[i].Labels {
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(labelSize(l)))
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendString(b, l.Name)
			b = protowire.AppendTag(b, 2, protowire.BytesType)
			b = protowire.AppendString(b, l.Value)
		}
		for _, s := range ss[i].Samples {
			b = protowire.AppendTag(b, 2, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(sampleSize(s)))
			b = protowire.AppendTag(b, 1, protowire.Fixed64Type)
			b = protowire.AppendFixed64(b, math.Float64bits(s.Value))
			b = protowire.AppendTag(b, 2, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(s.TS))
		}
	}
	return b
}

func labelSize(l label) int {
	return 1 + protowire.SizeBytes(len(l.Name)) + 1 + protowire.SizeBytes(len(l.Value))
}

func sampleSize(s sample) int { return 1 + 8 + 1 + protowire.SizeVarint(uint64(s.TS)) }

func seriesSize(s *series) int {
	n := 0
	for _, l := range s.Labels {
		n += 1 + protowire.SizeBytes(labelSize(l))
	}
	for _, x := range s.Samples {
		n += 1 + protowire.SizeBytes(sampleSize(x))
	}
	return n
}

var errBadProto = errors.New("malformed remote-write message")

// decodeWriteRequest parses a WriteRequest (also a concatenation of them).
// Unknown fields are skipped.
func decodeWriteRequest(b []byte) ([]series, error) {
	var out []series
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != 1 || typ != protowire.BytesType {
			return nil
		}
		var s series
		err := eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
			switch {
			case num == 1 && typ == protowire.BytesType:
				var l label
				err := eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
					if typ == protowire.BytesType && num == 1 {
						l.Name = string(v)
					} else if typ == protowire.BytesType && num == 2 {
						l.Value = string(v)
					}
					return nil
				})
				s.Labels = append(s.Labels, l)
				return err
			case num == 2 && typ == protowire.BytesType:
				var x sample
				err := eachField(v, func(num protowire.Number, typ protowire.Type, _ []byte, n uint64) error {
					if num == 1 && typ == protowire.Fixed64Type {
						x.Value = math.Float64frombits(n)
					} else if num == 2 && typ == protowire.VarintType {
						x.TS = int64(n)
					}
					return nil
				})
				s.Samples = append(s.Samples, x)
				return err
			}
			return nil
		})
		out = append(out, s)
		return err
	})
	return out, err
}

// eachField calls fn for every field of one message: v is the payload of
// a bytes field, n the value of a varint or fixed64 field.
func eachField(b []byte, fn func(protowire.Number, protowire.Type, []byte, uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errBadProto
		}
		b = b[n:]
		var (
			v   []byte
			val uint64
		)
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			val, n = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			val, n = protowire.ConsumeFixed64(b)
		case protowire.Fixed32Type:
			var v32 uint32
			v32, n = protowire.ConsumeFixed32(b)
			val = uint64(v32)
		default:
			return errBadProto
		}
		if n < 0 {
			return errBadProto
		}
		b = b[n:]
		if err := fn(num, typ, v, val); err != nil {
			return err
		}
	}
	return nil
}

// merge groups the series of several requests (in queue order) so that a
// backlog goes up with each label set once per request and its samples in
// time order.
func merge(reqs [][]series) []series {
	idx := map[string]int{}
	var out []series
	for _, ss := range reqs {
		for i := range ss {
			k := ss[i].key()
			j, ok := idx[k]
			if !ok {
				idx[k] = len(out)
				out = append(out, series{Labels: ss[i].Labels})
				j = len(out) - 1
			}
			out[j].Samples = append(out[j].Samples, ss[i].Samples...)
		}
	}
	for i := range out {
		s := out[i].Samples
		sort.SliceStable(s, func(a, b int) bool { return s[a].TS < s[b].TS })
	}
	return out
}

// rawRequest is an already encoded WriteRequest handed to remote.API.Write,
// which takes any message with gogo-style Size/MarshalToSizedBuffer.
type rawRequest []byte

func (r rawRequest) Size() int { return len(r) }

func (r rawRequest) MarshalToSizedBuffer(b []byte) (int, error) { return copy(b, r), nil }
