package state

import "villagehub/hub/ingest"

// Motion exactly once across a crash.
//
// A QoS 1 message is acknowledged after the store commit. If the hub dies
// between the two (kill -9, power), the sender delivers the message again
// with DUP set. QR totals, statuses, detections (by id) and motion with a
// device ts are idempotent by their content, but a plain ON/OFF is not: a
// redelivered ON after the OFF that followed it would start a second
// motion event.
//
// So the hub remembers, committed in the same transaction as the motion
// they caused, the identities of the last MaxDeliveries QoS 1 messages
// that changed a camera's motion: a hash of the sender's client ID
// (embedded broker; "" for the hub's session on an external broker), the
// packet ID, the topic and the payload. A message marked DUP whose
// identity is remembered was applied already: a duplicate. Any other
// message is applied.
//
// Why this is enough: the messages that can come again are those
// committed and not acknowledged when the hub died: at most one batch
// with the embedded broker (acknowledged right after its commit), at most
// the broker's in-flight window with an external one (Mosquitto's
// max_inflight_messages, 1000 in configs/mosquitto), both far below
// MaxDeliveries. A new message is never taken for an old one: a packet ID
// is reused only after its acknowledgement, brokers and clients (Mosquitto,
// paho) number in sequence through all 65,535, and the topic and payload
// must match too. The one case left: a client that reuses a packet ID for
// a message identical in topic and payload to one of the last
// MaxDeliveries motion messages, and whose first attempt was lost in the
// crash, would have that message taken as a duplicate.

// MaxDeliveries is how many delivery identities the hub remembers.
const MaxDeliveries = 8192

// deliveryLog is the ring of remembered identities. Seq numbers them in
// the store: identity Seq-MaxDeliveries is forgotten when Seq is written,
// and the ring holds identity Seq at Seq % MaxDeliveries.
type deliveryLog struct {
	ids  []uint64 // MaxDeliveries slots once the first is used; 0 = empty
	next uint64   // sequence number of the next identity
	set  map[uint64]uint32
}

func newDeliveryLog() *deliveryLog { return &deliveryLog{set: map[uint64]uint32{}} }

func (l *deliveryLog) has(id uint64) bool { return l.set[id] > 0 }

// add remembers id, forgetting the one MaxDeliveries before it; it
// returns the sequence number under which to store it.
func (l *deliveryLog) add(id uint64) uint64 {
	seq := l.next
	l.next++
	l.put(seq, id)
	return seq
}

func (l *deliveryLog) put(seq, id uint64) {
	if l.ids == nil {
		l.ids = make([]uint64, MaxDeliveries)
	}
	i := seq % MaxDeliveries
	if old := l.ids[i]; old != 0 {
		if l.set[old]--; l.set[old] == 0 {
			delete(l.set, old)
		}
	}
	l.ids[i] = id
	l.set[id]++
}

// load puts back an identity read from the store, in sequence order.
func (l *deliveryLog) load(seq, id uint64) {
	l.put(seq, id)
	l.next = seq + 1
}

// deliveryID is the identity of a QoS 1 delivery (0: none). FNV-1a, 64
// bits: stable across restarts and builds; it runs only for motion.
func deliveryID(m *ingest.Message) uint64 {
	if m == nil || m.PacketID == 0 {
		return 0
	}
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	add := func(b byte) { h ^= uint64(b); h *= prime }
	for i := 0; i < len(m.Session); i++ {
		add(m.Session[i])
	}
	add(0)
	add(byte(m.PacketID >> 8))
	add(byte(m.PacketID))
	for i := 0; i < len(m.Topic); i++ {
		add(m.Topic[i])
	}
	add(0)
	for _, b := range m.Payload {
		add(b)
	}
	if h == 0 {
		h = 1
	}
	return h
}

// DeliveryLoader is a Store that keeps delivery identities (hub/store).
type DeliveryLoader interface {
	// LoadDeliveries calls fn for every stored identity in sequence order.
	LoadDeliveries(fn func(seq, id uint64) error) error
}
