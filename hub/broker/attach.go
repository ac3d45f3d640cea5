package broker

import "sync"

// attachGuard makes the broker's shutdown safe against a connection that
// is being established as it stops. mochi v2.7.9 adds to
// Listeners.ClientsWg from the connection's own goroutine (attachClient)
// while Server.Close waits on it; sync.WaitGroup allows that only while
// the counter is above zero, and a connection accepted just before its
// listener closed panics the hub on its way down ("WaitGroup is reused
// before previous Wait has returned"; mochi-mqtt/server#508, not in a
// release). The listeners here hold the counter up themselves for each
// connection, from before establish until after it returns, and take no
// new hold once the guard has ended: mochi's own Add then always finds the
// counter positive, and Close's Wait still waits for every connection.
type attachGuard struct {
	mu    sync.RWMutex
	ended bool
	wg    *sync.WaitGroup
}

// enter holds the counter for one connection; false once shutdown began
// (the connection is then closed without being established).
func (g *attachGuard) enter() bool {
	if g == nil {
		return true
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.ended {
		return false
	}
	g.wg.Add(1)
	return true
}

// leave releases the hold enter took.
func (g *attachGuard) leave() {
	if g != nil {
		g.wg.Done()
	}
}

// end refuses further holds; called before the listeners close.
func (g *attachGuard) end() {
	if g != nil {
		g.mu.Lock()
		g.ended = true
		g.mu.Unlock()
	}
}
