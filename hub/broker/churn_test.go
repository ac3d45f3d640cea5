package broker

import (
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"villagehub/hub/auth"
)

// TestShutdownWhileClientsChurn: the broker shuts down while devices keep
// connecting and disconnecting, on its listener. mochi's own shutdown
// deadlocks when a client comes or goes between the two read locks it
// takes on its clients map (mochi-mqtt/server#488); Shutdown takes it
// once. Each round must end within its deadline, every time.
func TestShutdownWhileClientsChurn(t *testing.T) {
	for round := range 10 {
		b, _, cancel, done := runTestBroker(t, auth.Config{})
		addr := b.Addr()

		// Devices that connect (a raw MQTT 3.1.1 CONNECT), wait for the
		// CONNACK and hang up, again and again, until the broker is gone.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		connected := 0
		for d := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					c, err := net.DialTimeout("tcp", addr, time.Second)
					if err != nil {
						continue // the broker is closing: keep knocking until stop
					}
					_, _ = c.Write(connectPacket(fmt.Sprintf("churn-%d-%d", d, i)))
					_ = c.SetReadDeadline(time.Now().Add(time.Second))
					buf := make([]byte, 4)
					if n, _ := io.ReadFull(c, buf); n == 4 && buf[0] == 0x20 {
						mu.Lock()
						connected++
						mu.Unlock()
					}
					c.Close()
				}
			}()
		}
		waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return connected >= 50 })
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: the broker did not shut down within 20 s while clients came and went", round)
		}
		close(stop)
		wg.Wait()
	}
}

// connectPacket is an MQTT 3.1.1 CONNECT with a clean session, keep-alive
// 30 s and no credentials.
func connectPacket(id string) []byte { return connectPacketKA(id, 30) }

// connectPacketKA is connectPacket with a keep-alive of ka seconds.
func connectPacketKA(id string, ka uint16) []byte {
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, byte(ka >> 8), byte(ka), byte(len(id) >> 8), byte(len(id))}
	body = append(body, id...)
	return append([]byte{0x10, byte(len(body))}, body...)
}
