package app_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"villagehub/hub/state"
	"villagehub/hub/testenv"
)

// TestMotionExactlyOnceKillLoop: cameras publish plain ON/OFF motion (no
// ts, QoS 1, many messages in flight) while the hub is killed with
// SIGKILL again and again: by the test at arbitrary moments, and by
// itself right after a store commit and before that batch's
// acknowledgements (state.FailpointEnv), the moment at which every
// message of the batch comes again marked DUP. Each camera must end with
// exactly as many motion events as ONs it published: none lost, none
// counted twice. Through the embedded broker and through Mosquitto.
func TestMotionExactlyOnceKillLoop(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { motionKillLoop(t, false) })
	t.Run("mosquitto", func(t *testing.T) { motionKillLoop(t, true) })
}

func motionKillLoop(t *testing.T, mosquitto bool) {
	const (
		cameras = 4
		rounds  = 6 // kills: even rounds by the failpoint, odd by the test
	)
	var h *hubProcess
	devURL := ""
	if mosquitto {
		mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
		h = newHubProcess(t, mq.URL())
		devURL = mq.URL()
	} else {
		h = newHubProcess(t, "")
		devURL = "tcp://" + h.broker
	}
	rng := rand.New(rand.NewPCG(16, 4))
	start := func(failAfter int) {
		var env []string
		if failAfter > 0 {
			env = []string{state.FailpointEnv + "=" + strconv.Itoa(failAfter)}
		}
		h.p = testenv.StartProcess(h.t, h.bin, env, "--config", h.cfgPath, "--log-level", "warn")
		if failAfter == 0 {
			testenv.WaitHTTP(h.t, "http://"+h.http+"/readyz", 20*time.Second, h.p)
		}
	}
	start(0)

	// The cameras: one persistent-session client each, which resends its
	// unacknowledged messages (DUP set, in order) when it reconnects. Each
	// publishes an ON and an OFF without waiting in between (both in
	// flight: the pattern that a redelivery would count twice), then waits
	// for both acknowledgements, until stop is closed.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, cameras)
	published := make([]int, cameras)
	for c := range cameras {
		st := paho.NewOrderedMemoryStore()
		cl := testenv.MQTT(t, devURL, fmt.Sprintf("exactly-once-cam-%d", c), func(o *paho.ClientOptions) {
			o.SetCleanSession(false).SetStore(st).SetOrderMatters(true).
				SetAutoReconnect(true).SetConnectRetry(true).SetMaxReconnectInterval(100 * time.Millisecond).
				SetConnectRetryInterval(50 * time.Millisecond)
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			topic := fmt.Sprintf("village/s1/camera/cam-%d/motion", c)
			for {
				select {
				case <-stop:
					return
				default:
				}
				on, off := cl.Publish(topic, 1, false, "ON"), cl.Publish(topic, 1, false, "OFF")
				published[c]++
				for _, tok := range []paho.Token{on, off} {
					if !tok.WaitTimeout(60 * time.Second) {
						errs <- fmt.Errorf("camera %d: publish not acknowledged in 60 s", c)
						return
					}
					if err := tok.Error(); err != nil && !connectionDied(err) {
						errs <- fmt.Errorf("camera %d: publish failed: %v", c, err)
						return
					}
				}
				// A message in flight when the hub died is resent from the
				// store after the reconnect under a new token (its first
				// token has ended, with an error or, when paho reclaims the
				// packet ID, without one). The pair is done when the store
				// is empty: paho would send a message published while it
				// still resends ahead of the resent ones, and an ON arriving
				// after the OFF that followed it is one motion event less,
				// on the device's side, not the hub's.
				for deadline := time.Now().Add(60 * time.Second); len(st.All()) > 0; testenvWait(10 * time.Millisecond) {
					if time.Now().After(deadline) {
						errs <- fmt.Errorf("camera %d: resent messages not acknowledged in 60 s", c)
						return
					}
				}
			}
		}()
	}

	for round := range rounds {
		if round%2 == 0 {
			// The hub kills itself after a few commits, between a commit
			// and its acknowledgements.
			h.p.Kill()
			start(3 + rng.IntN(10))
			testenv.WaitFor(t, 30*time.Second, "the failpoint to kill the hub", h.p.Exited)
		} else {
			// The test kills it once it has handled some messages.
			n := float64(20 + rng.IntN(100))
			testenv.WaitFor(t, 30*time.Second, "messages to flow", func() bool {
				m, err := testenv.TryScrape("http://" + h.http)
				return err == nil && handled(m) >= n
			})
			h.p.Kill()
		}
		start(0)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	want := map[string]uint64{}
	for c, n := range published {
		want[fmt.Sprintf("cam-%d", c)] = uint64(n)
	}
	counts := func() map[string]uint64 {
		var v struct{ Cameras []state.CameraView }
		getJSON(t, "http://"+h.http+"/api/v1/cameras", &v)
		out := map[string]uint64{}
		for _, c := range v.Cameras {
			out[c.ID] = c.MotionEvents
			if c.MotionActive {
				out[c.ID] += 1000000 // the last OFF must have ended it
			}
		}
		return out
	}
	var got map[string]uint64
	deadline := time.Now().Add(30 * time.Second)
	for {
		if got = counts(); fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cameras published %v ONs (and as many OFFs, the last one last); the hub counted %v motion events (+1000000: still active)", want, got)
		}
		testenvWait(100 * time.Millisecond)
	}
	t.Logf("%d cameras published %v ONs; the hub counted %v motion events after %d kills", cameras, want, got, rounds)
}

// connectionDied reports a publish whose write failed because the hub
// was killed under it. paho stored the QoS 1 message before writing it
// and keeps it until its PUBACK, so it is not lost: the client resends it
// (DUP) on reconnect and the final count must include it.
func connectionDied(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// testenvWait waits d: the cameras' own pacing while they reconnect, and
// the poll of the final count; not the test's synchronisation.
func testenvWait(d time.Duration) { <-time.After(d) }
