package sim

import (
	"context"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"villagehub/hub/testenv"
)

// TestFleetPublishesWhatItCounts runs a fleet against a real Mosquitto and
// checks, from a subscriber, that every device is online (retained status),
// that the round-robin pattern spreads work evenly, and that the fleet's
// own account of what it published matches what arrived.
func TestFleetPublishesWhatItCounts(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	var mu sync.Mutex
	perTopic := map[string]int{}
	sub := testenv.MQTT(t, mq.URL(), "counter")
	tok := sub.Subscribe("village/#", 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		perTopic[m.Topic()]++
		mu.Unlock()
	})
	tok.Wait()
	f, err := NewFleet(Config{
		Broker: mq.URL(), Cameras: Devices("cam", 4, "s1"), Boards: Devices("board", 4, "s1"),
		Rate: 400, QoS: 1, Pattern: "round-robin", RebootProb: 0.1, RepeatProb: 0.1, Seed: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := f.Run(ctx); err != nil {
		t.Fatal(err)
	}
	st := f.Stats()
	testenv.WaitFor(t, 5*time.Second, "every report delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for topic, c := range perTopic {
			if len(topic) > 6 && (topic[len(topic)-6:] == "motion" || topic[len(topic)-5:] == "scans") {
				n += c
			}
		}
		return uint64(n) == st.Published
	})
	mu.Lock()
	defer mu.Unlock()
	lo, hi := 1<<30, 0
	for _, d := range Devices("cam", 4, "s1") {
		if perTopic["village/s1/camera/"+d.ID+"/status"] == 0 {
			t.Errorf("camera %s never said it was online", d.ID)
		}
		n := perTopic["village/s1/camera/"+d.ID+"/motion"]
		lo, hi = min(lo, n), max(hi, n)
	}
	if st.Published < 300 || st.Errors != 0 || hi-lo > 2+int(st.Skipped) {
		t.Errorf("published %d, errors %d, skipped %d; per-camera messages from %d to %d", st.Published, st.Errors, st.Skipped, lo, hi)
	}
	var expected int64
	for _, n := range st.ExpectedScans {
		expected += n
	}
	if expected == 0 || st.MotionStarts == 0 {
		t.Errorf("expected scans %d, motion starts %d", expected, st.MotionStarts)
	}
}
