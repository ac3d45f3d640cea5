package qrcode

import (
	"net/url"
	"testing"
)

// FuzzParseOptions: whatever query a client sends to /qr/<board>.png,
// the options either fail with an error or are within bounds.
func FuzzParseOptions(f *testing.F) {
	for _, q := range []string{"size=512&margin=4&ec=M", "size=99999", "size=-1", "margin=1e9", "ec=X", "size=64&ec=h", "size=0x10"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		v, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		o, err := ParseOptions(v)
		if err != nil {
			return
		}
		if err := o.Validate(); err != nil {
			t.Fatalf("ParseOptions(%q) accepted %+v that does not validate: %v", q, o, err)
		}
		if o.Size > MaxSize || o.Margin > MaxMargin || o.Size < 0 || o.Margin < 0 {
			t.Fatalf("ParseOptions(%q) = %+v out of bounds", q, o)
		}
	})
}
