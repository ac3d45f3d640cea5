package broker

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// Batched acknowledgements.
//
// hub/state acknowledges a whole committed batch at once. Sending each
// PUBACK through mochi's Client.WritePacket costs one write system call
// and a few allocations per message: in a CPU profile of `villagesim
// bench` (embedded broker, QoS 1) the write calls were the largest single
// item. Instead, Ack appends the 4-byte PUBACK to its client's buffer and
// one flusher goroutine writes each client's buffer with one call, then
// forwards the messages to subscribers (if there are any).
//
// Order is kept: PUBACKs of one client go out in the order its messages
// arrived, each after its message is durable, as before.

// pendingAck is a QoS 1 message waiting for its durable commit.
type pendingAck struct {
	topic   string
	payload []byte
	id      uint16
	retain  bool
}

// acker is one client's queue of messages owed a PUBACK.
type acker struct {
	f  *ackFlusher
	h  *ingestHook
	cl *mqtt.Client
	// ackNext bound once: Ack for every message of this client.
	ackNext func()

	mu   sync.Mutex
	fifo []pendingAck // owed, oldest at head
	head int
	out  []byte       // encoded PUBACKs not yet written
	fwd  []pendingAck // acknowledged, to forward after the write
	// spares: the flusher's buffers from its last write, reused.
	spareOut []byte
	spareFwd []pendingAck
	queued   bool // on the flusher's list
}

// expect records a message that will be acknowledged. Called from the
// client's goroutine only, so unexpect can take back the last one.
func (a *acker) expect(p pendingAck) {
	a.mu.Lock()
	a.fifo = append(a.fifo, p)
	a.mu.Unlock()
}

// unexpect drops the message expect recorded last (it was not queued).
func (a *acker) unexpect() {
	a.mu.Lock()
	if len(a.fifo) > a.head {
		a.fifo[len(a.fifo)-1] = pendingAck{}
		a.fifo = a.fifo[:len(a.fifo)-1]
	}
	a.mu.Unlock()
}

// next acknowledges the oldest owed message: its PUBACK joins the client's
// buffer, and the client joins the flusher's list.
func (a *acker) next() {
	a.mu.Lock()
	if a.head == len(a.fifo) {
		a.mu.Unlock()
		return // cannot happen: one Ack per expected message
	}
	p := a.fifo[a.head]
	a.fifo[a.head] = pendingAck{}
	a.head++
	switch {
	case a.head == len(a.fifo):
		a.fifo, a.head = a.fifo[:0], 0
	case a.head >= 1024 && a.head*2 >= len(a.fifo):
		// A client that always has messages in flight never empties its
		// queue: compact so it does not grow without bound.
		n := copy(a.fifo, a.fifo[a.head:])
		clear(a.fifo[n:])
		a.fifo, a.head = a.fifo[:n], 0
	}
	// PUBACK, success, no properties: the same 4 bytes in MQTT 3.1.1 and
	// 5 (a v5 reason code 0 with no properties may be omitted, and mochi
	// omits it too).
	a.out = append(a.out, 0x40, 2, byte(p.id>>8), byte(p.id))
	if p.retain || a.h.subscriptions() != 0 {
		a.fwd = append(a.fwd, p)
	}
	first := !a.queued
	a.queued = true
	a.mu.Unlock()
	if first {
		a.f.schedule(a)
	}
}

// flush writes the client's PUBACKs with one call and forwards the
// acknowledged messages. Only the flusher goroutine calls it.
func (a *acker) flush() {
	a.mu.Lock()
	out, fwd := a.out, a.fwd
	a.out, a.fwd = a.spareOut[:0], a.spareFwd[:0]
	a.spareOut, a.spareFwd = nil, nil
	a.queued = false
	a.mu.Unlock()

	if len(out) > 0 {
		// mochi writes to the connection under the client's lock too;
		// its keep-alive deadline (set on every read) bounds a write to a
		// client that stopped reading.
		a.cl.Lock()
		var err error
		if conn := a.cl.Net.Conn; conn != nil && !a.cl.Closed() {
			_, err = conn.Write(out)
		}
		a.cl.Unlock()
		if err != nil {
			a.cl.Stop(err)
		} else if a.h.info != nil {
			atomic.AddInt64(&a.h.info.BytesSent, int64(len(out)))
			atomic.AddInt64(&a.h.info.PacketsSent, int64(len(out)/4))
		}
	}
	for _, p := range fwd {
		_ = a.h.forward(p.topic, p.payload, p.retain, 1)
	}
	clear(fwd)
	a.mu.Lock()
	a.spareOut, a.spareFwd = out[:0], fwd[:0]
	a.mu.Unlock()
}

// ackFlusher holds every client's acker and the list of those with
// PUBACKs to write.
type ackFlusher struct {
	mu      sync.RWMutex
	clients map[*mqtt.Client]*acker

	lmu   sync.Mutex
	list  []*acker
	spare []*acker
	wake  chan struct{}
}

func (f *ackFlusher) init() {
	f.clients = make(map[*mqtt.Client]*acker)
	f.wake = make(chan struct{}, 1)
}

// of returns cl's acker, creating it on the client's first QoS 1 message.
func (f *ackFlusher) of(h *ingestHook, cl *mqtt.Client) *acker {
	f.mu.RLock()
	a := f.clients[cl]
	f.mu.RUnlock()
	if a != nil {
		return a
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if a = f.clients[cl]; a == nil {
		a = &acker{f: f, h: h, cl: cl}
		a.ackNext = a.next
		f.clients[cl] = a
	}
	return a
}

func (f *ackFlusher) forget(cl *mqtt.Client) {
	f.mu.Lock()
	delete(f.clients, cl)
	f.mu.Unlock()
}

func (f *ackFlusher) schedule(a *acker) {
	f.lmu.Lock()
	f.list = append(f.list, a)
	f.lmu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// run writes scheduled acknowledgements until ctx ends.
func (f *ackFlusher) run(ctx context.Context) {
	for {
		select {
		case <-f.wake:
		case <-ctx.Done():
			return
		}
		// hub/state acknowledges a whole batch in a tight loop: yield once
		// so that more of it lands in the buffers this flush writes.
		runtime.Gosched()
		f.lmu.Lock()
		list := f.list
		f.list, f.spare = f.spare[:0], nil
		f.lmu.Unlock()
		for _, a := range list {
			a.flush()
		}
		clear(list)
		f.lmu.Lock()
		f.spare = list[:0]
		f.lmu.Unlock()
	}
}
