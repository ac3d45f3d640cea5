package scan

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// memoryHolds walks everything reachable from v (pointers, structs, slices,
// arrays, maps, interfaces; unexported fields included) and reports where any
// string or byte sequence contains one of needles.
func memoryHolds(v reflect.Value, needles [][]byte) []string {
	var found []string
	seen := map[uintptr]bool{}
	var bytesBuf []byte
	var walk func(v reflect.Value, path string, depth int)
	check := func(b []byte, path string) {
		for _, n := range needles {
			if bytes.Contains(b, n) {
				found = append(found, fmt.Sprintf("%s holds %q", path, n))
			}
		}
	}
	walk = func(v reflect.Value, path string, depth int) {
		if !v.IsValid() || depth > 200 {
			return
		}
		switch v.Kind() {
		case reflect.Pointer:
			if v.IsNil() || seen[v.Pointer()] {
				return
			}
			seen[v.Pointer()] = true
			walk(v.Elem(), path, depth+1)
		case reflect.Interface:
			walk(v.Elem(), path, depth+1)
		case reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				walk(v.Field(i), path+"."+v.Type().Field(i).Name, depth+1)
			}
		case reflect.String:
			check([]byte(v.String()), path)
		case reflect.Slice, reflect.Array:
			if v.Kind() == reflect.Slice {
				if v.IsNil() {
					return
				}
				if seen[v.Pointer()] && v.Len() > 0 {
					return
				}
				seen[v.Pointer()] = true
			}
			if v.Type().Elem().Kind() == reflect.Uint8 {
				bytesBuf = bytesBuf[:0]
				for i := 0; i < v.Len(); i++ {
					bytesBuf = append(bytesBuf, byte(v.Index(i).Uint()))
				}
				check(bytesBuf, path)
				return
			}
			for i := 0; i < v.Len(); i++ {
				walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i), depth+1)
			}
		case reflect.Map:
			if v.IsNil() || seen[v.Pointer()] {
				return
			}
			seen[v.Pointer()] = true
			it := v.MapRange()
			for it.Next() {
				walk(it.Key(), path+"{key}", depth+1)
				walk(it.Value(), path+"{value}", depth+1)
			}
		}
	}
	walk(v, "Handler", 0)
	return found
}

func TestNoRawAddressIsKept(t *testing.T) {
	x := newHub(t, nil)
	v4 := "203.0.113.77"
	v6 := "2001:db8:77:1:aaaa:bbbb:cccc:dddd"
	for _, ip := range []string{v4, v6} {
		for _, ua := range []string{humanAgents["zalo-android"], humanAgents["safari-ios"]} {
			x.scan(t, noFollow, "GET", "market-07", ip, ua, nil)
			x.scan(t, noFollow, "GET", "gate", ip, ua, nil)
		}
	}
	x.scan(t, noFollow, "GET", "market-07", v4, botAgents["mj12bot"], nil) // fills the agent cache
	expectTally(t, x.rec.tally("market-07"), tally{human: 4, unique: 4, bot: 1})

	a4, a6 := netip.MustParseAddr(v4), netip.MustParseAddr(v6)
	b4, b6 := a4.As4(), a6.As16()
	needles := [][]byte{
		[]byte(v4), []byte(v6), []byte("2001:db8:77:1"), // as text, and the /64 the handler works with
		b4[:], b6[:], b6[:8], // as raw bytes
	}

	// 1. What leaves the package: the recorder's Scan values carry no
	// address, in any form.
	for _, s := range x.rec.all() {
		if found := memoryHolds(reflect.ValueOf(s), needles); len(found) > 0 {
			t.Fatalf("recorded scan %+v: %v", s, found)
		}
	}
	scanType := reflect.TypeOf(Scan{})
	var fields []string
	for i := 0; i < scanType.NumField(); i++ {
		fields = append(fields, scanType.Field(i).Name)
	}
	// ID is a random scan id (gateway scans); visit is the same salted
	// 16-byte hash the handler keys its uniqueness memory with (checked in
	// 3. below), never an address; request is a hash of the load
	// balancer's own request id, which holds no client data.
	if got := strings.Join(fields, ","); got != "Board,Site,At,Class,Unique,ID,visit,request" {
		t.Fatalf("Scan grew fields %s: check none can carry client data", got)
	}

	// 2. What stays: every byte reachable from the handler, including the
	// uniqueness and rate-limit maps and the agent cache.
	if found := memoryHolds(reflect.ValueOf(x.h), needles); len(found) > 0 {
		t.Fatalf("handler memory holds a raw address:\n%s", strings.Join(found, "\n"))
	}

	// 3. The map keys are salted hashes: 16 bytes, one per phone+board in
	// the uniqueness map (2 addresses × 2 agents × 2 boards) and one per
	// client in the rate limiter (2 addresses), none of them the address.
	if n, _ := x.h.mem.lens(); n != 8 {
		t.Fatalf("uniqueness map has %d keys, want 8", n)
	}
	if _, n := x.h.mem.lens(); n != 2 {
		t.Fatalf("rate-limit map has %d keys, want 2", n)
	}
	// And the walk would have seen an address had one been there: the same
	// walker finds a planted one.
	x.h.agents.verdict.Add("planted "+v4, false)
	if found := memoryHolds(reflect.ValueOf(x.h), needles); len(found) == 0 {
		t.Fatal("the memory walk cannot see into the agent cache")
	}
	x.h.agents.verdict.Purge()
	var raw clientKey
	copy(raw[:], b6[:])
	x.h.mem.shard(raw).buckets.Add(raw, nil)
	if found := memoryHolds(reflect.ValueOf(x.h), needles); len(found) == 0 {
		t.Fatal("the memory walk cannot see the rate limiter's keys")
	}
	x.h.mem.shard(raw).buckets.Remove(raw)
	copy(raw[:], b4[:])
	x.h.mem.shard(raw).seen.Add(raw, 0)
	if found := memoryHolds(reflect.ValueOf(x.h), needles); len(found) == 0 {
		t.Fatal("the memory walk cannot see the uniqueness keys")
	}
}

func TestMemoryIsBounded(t *testing.T) {
	x := newHub(t, func(c *Config) { c.MaxClients = 10 })
	for i := 0; i < 30; i++ {
		x.scan(t, noFollow, "GET", "market-07", fmt.Sprintf("198.51.100.%d", i), humanAgents["chrome-android"], nil)
	}
	if seen, buckets := x.h.mem.lens(); seen != 10 || buckets != 10 {
		t.Fatalf("maps hold %d and %d clients, cap is 10", seen, buckets)
	}
	expectTally(t, x.rec.tally("market-07"), tally{human: 30, unique: 30})
}

// seenKeys lists the uniqueness keys of every shard.
func (m *memory) seenKeys() []clientKey {
	var out []clientKey
	for i := range m.shards {
		out = append(out, m.shards[i].seen.Keys()...)
	}
	return out
}

// The memory's shards share MaxClients: with many clients it holds no more
// than the cap in all, and each shard its share.
func TestMemoryShardsShareTheCap(t *testing.T) {
	const max = memShards * shardMin
	key := func(i int) (k clientKey) {
		sum := sha256.Sum256([]byte(strconv.Itoa(i)))
		copy(k[:], sum[:])
		return k
	}
	m, err := newMemory(max)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.shards) != memShards {
		t.Fatalf("%d shards for %d clients, want %d", len(m.shards), max, memShards)
	}
	for i := range 3 * max {
		m.swapSeen(key(i), int64(i))
		m.bucket(key(i), 1, 1)
	}
	seen, buckets := m.lens()
	if seen != max || buckets != max {
		t.Fatalf("memory holds %d and %d clients, cap is %d", seen, buckets, max)
	}
	// The most recent client is remembered, with its time.
	if last, ok := m.swapSeen(key(3*max-1), 0); !ok || last != 3*max-1 {
		t.Fatalf("last client: %d, %v", last, ok)
	}
	if m1, _ := newMemory(max - 1); len(m1.shards) != 1 {
		t.Fatalf("%d shards for %d clients, want 1 (exact LRU)", len(m1.shards), max-1)
	}
}
