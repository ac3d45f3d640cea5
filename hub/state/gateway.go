package state

import (
	"context"
	"encoding/binary"
	"encoding/hex"

	"villagehub/hub/ingest"
	"villagehub/hub/scan"
)

// Scans counted by a QR gateway at the centre (hub/gateway) come down to
// the village hub over MQTT with QoS 1, so a scan may arrive twice: the
// broker redelivers what was in flight when the connection dropped, and a
// gateway that restarts sends its last unacknowledged batch again. Each
// such scan carries a random 128-bit ID; a board remembers the IDs of its
// latest gateway scans in its persisted record, committed in the same
// transaction as the counts they added, so a redelivered scan is
// recognised after any crash and counted once.

// maxGatewayIDs is how many gateway scan IDs a board remembers. A
// redelivery repeats only what was in flight (Mosquitto's
// max_inflight_messages, 20 by default, and one gateway batch), so a
// duplicate is always among a board's latest scans.
const maxGatewayIDs = 256

// gatewayIDs is a ring of the latest gateway scan IDs of one board.
type gatewayIDs struct {
	IDs  [][16]byte
	Next int // ring position of the next ID once full
}

// add remembers id and reports whether it was new. A malformed id (not
// 32 hex digits) is never counted.
func (g *gatewayIDs) add(id string) bool {
	var k [16]byte
	if len(id) != 32 {
		return false
	}
	if _, err := hex.Decode(k[:], []byte(id)); err != nil {
		return false
	}
	for i := range g.IDs {
		if g.IDs[i] == k {
			return false
		}
	}
	if len(g.IDs) < maxGatewayIDs {
		g.IDs = append(g.IDs, k)
		return true
	}
	g.IDs[g.Next] = k
	g.Next = (g.Next + 1) % maxGatewayIDs
	return true
}

func (g *gatewayIDs) appendTo(b []byte) []byte {
	if len(g.IDs) == 0 {
		return b // records of boards without gateway scans stay as they were
	}
	b = binary.AppendUvarint(b, uint64(len(g.IDs)))
	b = binary.AppendUvarint(b, uint64(g.Next))
	for i := range g.IDs {
		b = append(b, g.IDs[i][:]...)
	}
	return b
}

func (g *gatewayIDs) decode(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || n > maxGatewayIDs {
		return errCorrupt
	}
	b = b[k:]
	next, k := binary.Uvarint(b)
	if k <= 0 || next >= maxGatewayIDs || uint64(len(b[k:])) != 16*n {
		return errCorrupt
	}
	b = b[k:]
	g.IDs, g.Next = make([][16]byte, n), int(next)
	for i := range g.IDs {
		copy(g.IDs[i][:], b[16*i:])
	}
	return nil
}

// RecordGatewayScans counts scans a gateway sent down (each with its ID)
// through the printed-scan path, waiting for room in the queue, and calls
// ack once all of them are durable in the store (the MQTT PUBACK): they
// are applied in order, so when the last is committed all are.
func (s *State) RecordGatewayScans(ctx context.Context, scans []scan.Scan, ack func()) error {
	for i := range scans {
		m := ingest.Message{Local: &ingest.Local{Scan: &scans[i]}, Received: s.now()}
		if i == len(scans)-1 {
			m.Ack = ack
		}
		if err := s.cfg.Queue.Push(ctx, m, true); err != nil {
			return err
		}
	}
	if len(scans) == 0 && ack != nil {
		ack()
	}
	return nil
}
