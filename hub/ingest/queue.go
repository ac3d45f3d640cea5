package ingest

import (
	"context"
	"sync"
	"time"

	"villagehub/hub/event"
	"villagehub/hub/probe"
	"villagehub/hub/scan"
)

// Message is one MQTT message waiting to be applied.
type Message struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Received time.Time
	// Ack, if not nil, is called once the message's effects are durable
	// (or once it was rejected). For QoS 1 this sends the PUBACK.
	Ack func()
	// Done, if not nil, gets one value at the same moment: a cheaper way
	// than Ack for a producer that waits (it needs no closure).
	Done chan<- struct{}
	// Session, PacketID and Dup identify a QoS 1 delivery, so that a
	// message redelivered after a crash between the store commit and the
	// acknowledgement is recognised (hub/state, motion): the publishing
	// client's ID (embedded broker; "" for the external broker, where the
	// hub's own session numbers the deliveries), the packet ID (0: none)
	// and the DUP flag the sender sets on a redelivery.
	Session  string
	PacketID uint16
	Dup      bool
	// Local, if not nil, is typed traffic from inside the hub (an event
	// from an input that is not MQTT, an RTSP probe result, a printed-code
	// scan) instead of an MQTT message. It goes through the same queue so
	// that every change is applied in one order by one owner.
	Local *Local
}

// Local is the hub's own traffic to hub/state. Exactly one field is set.
type Local struct {
	// Event is a device event from an input that runs on its own (ONVIF
	// events, a peer hub): hub/input's Sink.
	Event *event.Event
	// Probe is an RTSP probe result.
	Probe *probe.Result
	// Scan is a visit to a printed QR code.
	Scan *scan.Scan
	// Call is run by hub/state's pipeline, in order with the messages,
	// with the state locked: its own control operations (a config reload
	// replacing the configured devices).
	Call func()
}

// Queue is the bounded queue between the MQTT network loops and hub/state.
//
// Back-pressure works differently for the two kinds of message:
//   - a producer that can wait (the embedded broker's per-client goroutine,
//     or a QoS 0 message) waits in Push until there is room;
//   - a QoS 1 message from the external broker is appended even past the
//     capacity, because blocking there would stall paho's network loop and
//     its keepalive. It is not acknowledged until it has been applied, and
//     the broker sends no more than its in-flight window of unacknowledged
//     messages (Mosquitto's max_inflight_messages), so the overshoot is
//     bounded by that window (and by 65,535 packet IDs in any case).
type Queue struct {
	mu       sync.Mutex
	items    []Message // FIFO; head at index head
	head     int
	capacity int
	notEmpty chan struct{} // 1-buffered wake-up for the consumer
	notFull  chan struct{} // closed and replaced when room appears
	waits    uint64        // pushes that found the queue full
	over     uint64        // appends past capacity (QoS 1, no wait)
}

// NewQueue returns a queue holding up to capacity messages.
func NewQueue(capacity int) *Queue {
	if capacity <= 0 {
		capacity = 10000
	}
	return &Queue{
		// Grown by append as traffic needs, not allocated whole: a full
		// default queue is 1.3 MB, most of an idle village hub's heap.
		items:    make([]Message, 0, min(capacity, 64)),
		capacity: capacity,
		notEmpty: make(chan struct{}, 1),
		notFull:  make(chan struct{}),
	}
}

// Push appends m. If the queue is full and wait is true, it waits for room
// or for ctx to end (returning ctx's error, m not queued).
func (q *Queue) Push(ctx context.Context, m Message, wait bool) error {
	q.mu.Lock()
	counted := false
	for wait && q.lenLocked() >= q.capacity {
		if !counted {
			q.waits++
			counted = true
		}
		ch := q.notFull
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		q.mu.Lock()
	}
	if q.lenLocked() >= q.capacity {
		q.over++
	}
	q.items = append(q.items, m)
	q.mu.Unlock()
	q.signal()
	return nil
}

// Force appends m even past the capacity, without counting it as an
// overflow: for a producer that never has more than one message in the
// queue at a time (hub/state's marker for the scans it tallied while the
// queue was full), so the overshoot is bounded by the number of such
// producers.
func (q *Queue) Force(m Message) {
	q.mu.Lock()
	q.items = append(q.items, m)
	q.mu.Unlock()
	q.signal()
}

// TryPush appends m only if the queue has room, for producers that must
// neither wait nor grow the queue (an HTTP request counting a scan).
func (q *Queue) TryPush(m Message) bool {
	q.mu.Lock()
	if q.lenLocked() >= q.capacity {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, m)
	q.mu.Unlock()
	q.signal()
	return true
}

func (q *Queue) lenLocked() int { return len(q.items) - q.head }

// Len is the number of messages waiting.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.lenLocked()
}

// Cap is the queue's capacity.
func (q *Queue) Cap() int { return q.capacity }

// Stats returns how often producers found the queue full: waits counts
// producers that waited, overflows QoS 1 messages held past the capacity.
func (q *Queue) Stats() (waits, overflows uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.waits, q.over
}

// Pop moves up to max messages into buf (reset to length 0) and returns it.
// It waits until at least one message is there or ctx ends.
func (q *Queue) Pop(ctx context.Context, buf []Message, max int) ([]Message, error) {
	buf = buf[:0]
	for {
		q.mu.Lock()
		if n := q.lenLocked(); n > 0 {
			if n > max {
				n = max
			}
			buf = append(buf, q.items[q.head:q.head+n]...)
			clear(q.items[q.head : q.head+n]) // drop references for the GC
			q.head += n
			if q.head == len(q.items) {
				q.items, q.head = q.items[:0], 0
			} else if q.head > q.capacity {
				// Compact so the slice does not grow without bound.
				k := copy(q.items, q.items[q.head:])
				q.items, q.head = q.items[:k], 0
			}
			if q.lenLocked() < q.capacity {
				close(q.notFull)
				q.notFull = make(chan struct{})
			}
			q.mu.Unlock()
			return buf, nil
		}
		q.mu.Unlock()
		select {
		case <-q.notEmpty:
		case <-ctx.Done():
			return buf, ctx.Err()
		}
	}
}

// signal wakes the consumer if it waits; a wake-up already pending covers
// this message too, since Pop looks at the queue before it waits again.
func (q *Queue) signal() {
	select {
	case q.notEmpty <- struct{}{}:
	default:
	}
}
