package uplink

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestWireRoundTripAndMerge(t *testing.T) {
	a := []series{
		{Labels: []label{{"__name__", "up"}, {"hub", "h1"}}, Samples: []sample{{1, 1000}}},
		{Labels: []label{{"__name__", "x"}, {"hub", "h1"}}, Samples: []sample{{2.5, 1000}}},
	}
	b := []series{
		{Labels: []label{{"__name__", "up"}, {"hub", "h1"}}, Samples: []sample{{0, 2000}}},
	}
	raw := encodeWriteRequest(nil, a)
	got, err := decodeWriteRequest(raw)
	if err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("round trip: %v %+v", err, got)
	}
	// Two encoded requests back to back are one request holding both.
	both, err := decodeWriteRequest(encodeWriteRequest(raw, b))
	if err != nil || len(both) != 3 {
		t.Fatalf("concatenation: %v %+v", err, both)
	}
	m := merge([][]series{b, a}) // out of order on purpose
	if len(m) != 2 || !reflect.DeepEqual(m[0].Samples, []sample{{1, 1000}, {0, 2000}}) {
		t.Fatalf("merge: %+v", m)
	}
	if _, err := decodeWriteRequest([]byte{0x0a, 0xff}); err == nil {
		t.Fatal("truncated message decoded")
	}
}

func TestQueueBoundDropsOldestAndSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	dropped := map[string]int{}
	onDrop := func(n int, r string) { dropped[r] += n }
	q, err := openQueue(dir, 1<<20, onDrop)
	if err != nil {
		t.Fatal(err)
	}
	// Incompressible-ish payloads of ~100 KiB: the 11th append must drop
	// the oldest.
	payload := func(i int) []byte {
		ss := []series{{Labels: []label{{"__name__", "big"}, {"v", strings.Repeat(string(rune('a'+i%26)), 10)}}}}
		rng := rand.New(rand.NewPCG(uint64(i), 1))
		for j := 0; j < 5000; j++ {
			ss[0].Samples = append(ss[0].Samples, sample{rng.Float64(), int64(i*1e6+j) + rng.Int64N(1<<40)})
		}
		return encodeWriteRequest(nil, ss)
	}
	for i := 0; i < 15; i++ {
		if err := q.append(payload(i), int64(i*1e6), 5000); err != nil {
			t.Fatal(err)
		}
	}
	bytes, oldest, recs, samples := q.stats()
	if bytes > 1<<20 || dropped["queue_full"] == 0 || dropped["queue_full"]+samples != 15*5000 {
		t.Fatalf("bytes %d, dropped %v, queued %d samples", bytes, dropped, samples)
	}
	first := q.peek(1)[0]
	if oldest != first.ts || first.ts == 0 {
		t.Fatalf("oldest %d, first %+v", oldest, first)
	}
	for _, e := range mustReadDir(t, dir) {
		if fi, _ := e.Info(); fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v", e.Name(), fi.Mode())
		}
	}
	// A torn write left by kill -9 is a .tmp file: ignored and removed.
	if err := os.WriteFile(filepath.Join(dir, "ffffffffffffffff.rec.tmp"), []byte("VHU1junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	q2, err := openQueue(dir, 1<<20, onDrop)
	if err != nil {
		t.Fatal(err)
	}
	b2, o2, r2, s2 := q2.stats()
	if b2 != bytes || o2 != oldest || r2 != recs || s2 != samples {
		t.Fatalf("reopened: %d %d %d %d, want %d %d %d %d", b2, o2, r2, s2, bytes, oldest, recs, samples)
	}
	// Reads come back in order, each exactly what was queued.
	ms := q2.peek(1 << 30)
	for i, m := range ms {
		ss, err := q2.read(m)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := decodeWriteRequest(payload(15 - len(ms) + i))
		if !reflect.DeepEqual(ss, want) {
			t.Fatalf("record %d differs", i)
		}
	}
	q2.remove(ms[:2])
	if _, _, r, _ := q2.stats(); r != recs-2 {
		t.Fatalf("after remove: %d records", r)
	}
	if q2.nextSeq <= ms[len(ms)-1].seq {
		t.Fatal("sequence restarts below existing records")
	}
	// A corrupted record is reported, not decoded.
	path := q2.path(ms[2].seq)
	b, _ := os.ReadFile(path)
	b[len(b)-1] ^= 0xff
	_ = os.WriteFile(path, b, 0o600)
	if _, err := q2.read(ms[2]); err != errCorrupt {
		t.Fatalf("corrupt record read: %v", err)
	}
}

func mustReadDir(t *testing.T, dir string) []os.DirEntry {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func TestConfigValidate(t *testing.T) {
	lat := 95.0
	probs := ValidatePlace(Place{Province: "Thanh Hoa", District: "ngoc-lac", Lat: &lat, Names: map[string]string{"hamlet": "x"}}, true)
	var keys []string
	for _, p := range probs {
		keys = append(keys, keyOf(p.Path))
	}
	for _, want := range []string{"province", "commune", "village", "lat", "names.hamlet"} {
		found := false
		for _, k := range keys {
			found = found || k == want
		}
		if !found {
			t.Errorf("no problem reported for %s (got %v)", want, keys)
		}
	}
	c := Config{RemoteWrite: []RemoteWrite{
		{URL: "https://user:s3cret@central.example.vn/api/v1/write"},
		{URL: "http://vm:8428/api/v1/write", BasicAuth: &BasicAuth{Password: "hunter2", PasswordFile: "/x"}},
		{URL: "http://vm:8428/api/v1/write", MaxBytes: 10},
	}}
	probs = c.Validate("/data")
	all := ""
	for _, p := range probs {
		all += keyOf(p.Path) + ": " + p.Msg + "\n"
	}
	for _, want := range []string{"remote_write[0].url", "remote_write[1].basic_auth.username", "remote_write[1].basic_auth.password_file", "remote_write[2].name", "remote_write[2].max_bytes"} {
		if !strings.Contains(all, want+":") {
			t.Errorf("no problem for %s in:\n%s", want, all)
		}
	}
	if strings.Contains(all, "s3cret") || strings.Contains(all, "hunter2") {
		t.Errorf("a secret leaked into config errors:\n%s", all)
	}
	if c.Interval != Duration(DefaultInterval) || c.RemoteWrite[1].Dir != "/data/uplink/vm" || c.RemoteWrite[0].Name != "central-example-vn" {
		t.Errorf("defaults: %+v", c)
	}
}

func keyOf(path []any) string {
	var b strings.Builder
	for _, k := range path {
		switch k := k.(type) {
		case int:
			b.WriteString("[" + string(rune('0'+k)) + "]")
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(k)
		}
	}
	return b.String()
}
