package broker

import (
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// drainTimeout bounds how long shutdown waits for subscribers to receive
// (QoS 0) or acknowledge (QoS 1) the hub's retained "offline" status.
const drainTimeout = 3 * time.Second

// offlineHook lets shutdown wait until the hub's "offline" status has
// reached its subscribers. mochi queues a publish for each client's writer
// goroutine and Close then writes DISCONNECT straight to the socket and
// closes it, so without the wait a subscriber got the DISCONNECT, and
// often not the status, first.
type offlineHook struct {
	mqtt.HookBase
	topic string

	mu      sync.Mutex
	pending map[string]byte   // client ID -> QoS it gets the status at
	ids     map[string]uint16 // client ID -> packet ID of its QoS 1 copy
	done    chan struct{}
}

func (h *offlineHook) ID() string { return "villagehub-offline-status" }

func (h *offlineHook) Provides(b byte) bool {
	return b == mqtt.OnPacketSent || b == mqtt.OnQosComplete
}

// arm records who must receive the status; done is closed once all have.
func (h *offlineHook) arm(srv *mqtt.Server) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pending, h.ids, h.done = map[string]byte{}, map[string]uint16{}, make(chan struct{})
	subs := srv.Topics.Subscribers(h.topic)
	for id, sub := range subs.Subscriptions {
		if cl, ok := srv.Clients.Get(id); ok && !cl.Net.Inline && !cl.Closed() {
			h.pending[id] = min(sub.Qos, 1)
		}
	}
	if len(h.pending) == 0 {
		close(h.done)
	}
	return h.done
}

func (h *offlineHook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type != packets.Publish || pk.TopicName != h.topic || string(pk.Payload) != "offline" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	qos, ok := h.pending[cl.ID]
	if !ok {
		return
	}
	// The subscriber may have acknowledged already (its PUBACK is read by
	// another goroutine than the one that wrote): then it is not inflight.
	if _, inflight := cl.State.Inflight.Get(pk.PacketID); qos == 0 || pk.FixedHeader.Qos == 0 || !inflight {
		h.doneWith(cl.ID)
		return
	}
	h.ids[cl.ID] = pk.PacketID
}

// OnQosComplete: the subscriber acknowledged its QoS 1 copy.
func (h *offlineHook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if id, ok := h.ids[cl.ID]; ok && id == pk.PacketID {
		h.doneWith(cl.ID)
	}
}

func (h *offlineHook) doneWith(id string) {
	if _, ok := h.pending[id]; !ok {
		return
	}
	delete(h.pending, id)
	delete(h.ids, id)
	if len(h.pending) == 0 {
		close(h.done)
	}
}

// publishOffline publishes the retained "offline" status and waits (at
// most drainTimeout) until every connected subscriber has it.
func (b *Broker) publishOffline() {
	done := b.offline.arm(b.srv)
	if err := b.srv.Publish(b.status, []byte("offline"), true, 1); err != nil {
		b.log.Warn("publishing hub status", "status", "offline", "err", err)
	}
	t := time.NewTimer(drainTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		b.log.Warn("not every subscriber received the hub's offline status before shutdown", "timeout", drainTimeout)
	}
}

// closeV311 closes the connections of MQTT 3.1.1 (and 3.1) clients
// without a DISCONNECT: mochi's Close sends one to every client, which
// 3.1.1 does not allow a server to send (mosquitto_sub then reports
// "Protocol error"). MQTT 5 clients get theirs, with the reason "server
// shutting down", from Close.
func (b *Broker) closeV311() {
	for _, cl := range b.srv.Clients.GetAll() {
		if !cl.Net.Inline && cl.Properties.ProtocolVersion < 5 {
			cl.Stop(packets.ErrServerShuttingDown)
		}
	}
}
