package input_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"villagehub/hub/config"
	"villagehub/hub/event"
	"villagehub/hub/input"
	_ "villagehub/hub/input/all"
)

func TestBuildEveryRegisteredInput(t *testing.T) {
	if got := input.Names(); !slices.Contains(got, "mqtt") || !slices.Contains(got, "frigate") {
		t.Fatalf("registered inputs %v", got)
	}
	cfg := config.Default()
	cfg.Frigate = []config.Frigate{{Name: "nvr", TopicPrefix: "frigate", Site: "s1"}, {Name: "kho", TopicPrefix: "nvr2", Site: "s1"}}
	ins, err := input.Build(input.Env{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, in := range ins {
		names = append(names, in.Name())
	}
	// The ONVIF events input is there with no camera yet, so that a reload
	// can add one.
	if strings.Join(names, " ") != "frigate/nvr frigate/kho mqtt onvif" {
		t.Fatalf("instances %v", names)
	}
	if n := len(input.Decoders(ins)); n != 3 {
		t.Fatalf("%d decoders", n)
	}
	filters := input.Filters(ins)
	for _, f := range []string{"frigate/events", "nvr2/+/motion", "village/+/camera/+/+", "village/+/qr/+/+"} {
		if !slices.Contains(filters, f) {
			t.Errorf("filters %v lack %s", filters, f)
		}
	}
	match := input.Matcher(ins)
	for topic, want := range map[string]bool{
		"village/s1/camera/c/motion": true, "village/s1/qr/b/anything": true, "village/_hub/h/status": false,
		"village/s1/alerts/c": false, "frigate/events": true, "nvr2/gate/motion": true, "frigate/gate/person": false, "other/x": false,
	} {
		if match(topic) != want {
			t.Errorf("Matcher(%q) = %v", topic, !want)
		}
	}
}

func TestBuildRefusesOverlappingTopics(t *testing.T) {
	cfg := config.Default()
	cfg.Frigate = []config.Frigate{{Name: "nvr", TopicPrefix: "village", Site: "s1"}}
	if _, err := input.Build(input.Env{Config: cfg}); err == nil || !strings.Contains(err.Error(), "village/") {
		t.Fatalf("overlapping prefixes: %v", err)
	}
}

// runner is the shape of an input that runs on its own (the package
// doc's example): it hands its events to a Sink.
type runner struct{ evs []event.Event }

func (r *runner) Name() string { return "test" }
func (r *runner) Run(ctx context.Context, sink input.Sink) error {
	for _, ev := range r.evs {
		if err := sink.SubmitEvent(ctx, ev); err != nil {
			return err
		}
	}
	return nil
}

type sink []event.Event

func (s *sink) SubmitEvent(_ context.Context, ev event.Event) error { *s = append(*s, ev); return nil }

func TestRunnersAreFoundByShape(t *testing.T) {
	r := &runner{evs: []event.Event{{Type: event.Motion, Kind: event.Camera, Site: "s1", Device: "door", Active: true}}}
	rs := input.Runners([]input.Input{r})
	if len(rs) != 1 || len(input.MQTTInputs([]input.Input{r})) != 0 {
		t.Fatalf("runners %d", len(rs))
	}
	var s sink
	if err := rs[0].Run(context.Background(), &s); err != nil || len(s) != 1 || s[0].Device != "door" {
		t.Fatalf("ran: %v %+v", err, s)
	}
}
