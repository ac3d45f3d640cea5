package state

import (
	"fmt"
	"testing"
)

func gwID(i int) string { return fmt.Sprintf("%032x", i+1) }

// A board counts each gateway scan ID once, remembers the latest
// maxGatewayIDs across a restart (its persisted record), and reads
// records written before gateways existed.
func TestGatewayIDsOncePersisted(t *testing.T) {
	var p boardPersisted
	p.ScansPrinted = 7
	old := p.appendTo(nil) // a record from before gateway scans
	var q boardPersisted
	if err := q.decode(old); err != nil || q.ScansPrinted != 7 || len(q.GatewayIDs.IDs) != 0 {
		t.Fatalf("old record: %v %+v", err, q)
	}
	for i := range maxGatewayIDs + 10 {
		if !p.GatewayIDs.add(gwID(i)) {
			t.Fatalf("new id %d refused", i)
		}
	}
	for i := 10; i < maxGatewayIDs+10; i++ {
		if p.GatewayIDs.add(gwID(i)) {
			t.Fatalf("id %d counted twice", i)
		}
	}
	if p.GatewayIDs.add("not-hex") || p.GatewayIDs.add(gwID(5)[:30]) {
		t.Fatal("a malformed id was counted")
	}
	var r boardPersisted
	if err := r.decode(p.appendTo(nil)); err != nil {
		t.Fatal(err)
	}
	for i := 10; i < maxGatewayIDs+10; i++ {
		if r.GatewayIDs.add(gwID(i)) {
			t.Fatalf("after a restart, id %d counted twice", i)
		}
	}
	if !r.GatewayIDs.add(gwID(100000)) {
		t.Fatal("after a restart, a new id was refused")
	}
	if err := r.decode(append(p.appendTo(nil), 1)); err == nil {
		t.Fatal("a record with trailing garbage decoded")
	}
}
