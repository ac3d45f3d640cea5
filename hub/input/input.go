// Package input is the shape of the hub's inputs: everything that turns
// the outside world into typed events (hub/event) for hub/state, the one
// owner of device state.
//
// An input comes in one of two shapes, told apart by the interface it
// implements (as mochi-mqtt hooks and Caddy modules are):
//
//   - MQTT: it decodes the MQTT topics it declares. The MQTT side (the
//     embedded broker's hook, or the external broker client) subscribes to
//     every registered input's Filters and queues the messages Match
//     takes; hub/state decodes each one with its input, on the pipeline
//     goroutine, in order, and acknowledges it only once its effects are
//     committed. The MQTT contract (hub/input/mqtt) and Frigate
//     (hub/input/frigate) are such inputs.
//   - Runner: it runs on its own (polling ONVIF pull points, a peer hub)
//     and hands events to a Sink, which returns once the event is durable.
//
// Inputs are registered by name (Telegraf's and Caddy's way): a new input
// is one package that calls Register in its init function, plus one
// import line in hub/input/all. Its configuration is a key of the config
// file (hub/config), which its Factory reads; an input that is not
// configured returns no instances.
//
// A new input that polls something and reports motion:
//
//	package doorbell
//
//	import (
//		"context"
//		"time"
//
//		"villagehub/hub/event"
//		"villagehub/hub/input"
//	)
//
//	func init() {
//		input.Register("doorbell", func(env input.Env) ([]input.Input, error) {
//			if env.Config.Doorbell.URL == "" {
//				return nil, nil // not configured
//			}
//			return []input.Input{&bell{url: env.Config.Doorbell.URL}}, nil
//		})
//	}
//
//	type bell struct{ url string }
//
//	func (b *bell) Name() string { return "doorbell" }
//
//	func (b *bell) Run(ctx context.Context, sink input.Sink) error {
//		for ctx.Err() == nil {
//			pressed, at := poll(ctx, b.url) // the input's own protocol
//			if pressed {
//				// Returns once the event is durable: the input may now
//				// tell its source it was delivered.
//				err := sink.SubmitEvent(ctx, event.Event{
//					Type: event.Motion, Kind: event.Camera, Site: "tan-ngu-2", Device: "door",
//					Source: "doorbell", Active: true, Time: at, HasTS: true,
//				})
//				if err != nil {
//					return nil // ctx ended
//				}
//			}
//		}
//		return nil
//	}
//
// and in hub/input/all/all.go:
//
//	_ "villagehub/hub/input/doorbell"
package input

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"

	"villagehub/hub/config"
	"villagehub/hub/event"
	"villagehub/hub/state"
)

// Input is one configured instance of an input. It implements MQTT or
// Runner (or both).
type Input interface {
	// Name names the instance in logs: "mqtt", "frigate/nvr".
	Name() string
}

// MQTT is an input that reads MQTT topics.
type MQTT interface {
	Input
	// Filters are the topic filters to subscribe to on an external broker.
	Filters() []string
	// Match and Decode: see state.Decoder. Match sees every topic
	// published on the embedded broker and must be cheap.
	state.Decoder
}

// Runner is an input that runs on its own until ctx ends, handing its
// events to sink.
type Runner interface {
	Input
	Run(ctx context.Context, sink Sink) error
}

// Sink takes the events of Runners (hub/state implements it).
type Sink interface {
	// SubmitEvent applies ev in order with everything else and returns
	// once it is durable, or ctx ended. ev's strings may be the caller's:
	// the state copies what it keeps.
	SubmitEvent(ctx context.Context, ev event.Event) error
}

// Env is what a Factory is given.
type Env struct {
	Config *config.Config
	Logger *slog.Logger
}

// Factory makes an input's instances from the configuration: none when the
// input is not configured. It validates what hub/config did not.
type Factory func(env Env) ([]Input, error)

var (
	mu        sync.Mutex
	factories = map[string]Factory{}
)

// Register makes an input known under name. It is called from the input
// package's init function; registering a name twice panics (a programming
// error, found by the first test that imports both).
func Register(name string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := factories[name]; dup {
		panic("input: " + name + " registered twice")
	}
	factories[name] = f
}

// Names lists the registered inputs, sorted.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	names := make([]string, 0, len(factories))
	for n := range factories {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Build makes every registered input's instances from the configuration,
// in name order, and checks that no two MQTT inputs claim the same topics.
func Build(env Env) ([]Input, error) {
	if env.Logger == nil {
		env.Logger = slog.Default()
	}
	var out []Input
	for _, name := range Names() {
		mu.Lock()
		f := factories[name]
		mu.Unlock()
		ins, err := f(env)
		if err != nil {
			return nil, err
		}
		out = append(out, ins...)
	}
	if err := checkOverlap(MQTTInputs(out)); err != nil {
		return nil, err
	}
	return out, nil
}

// MQTTInputs returns the inputs that read MQTT.
func MQTTInputs(ins []Input) []MQTT {
	var out []MQTT
	for _, in := range ins {
		if m, ok := in.(MQTT); ok {
			out = append(out, m)
		}
	}
	return out
}

// Runners returns the inputs that run on their own.
func Runners(ins []Input) []Runner {
	var out []Runner
	for _, in := range ins {
		if r, ok := in.(Runner); ok {
			out = append(out, r)
		}
	}
	return out
}

// Decoders returns the MQTT inputs as hub/state takes them.
func Decoders(ins []Input) []state.Decoder {
	var out []state.Decoder
	for _, m := range MQTTInputs(ins) {
		out = append(out, m)
	}
	return out
}

// Filters returns every MQTT input's topic filters, for the external
// broker client's subscription.
func Filters(ins []Input) []string {
	var out []string
	for _, m := range MQTTInputs(ins) {
		for _, f := range m.Filters() {
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	return out
}

// Matcher returns whether any MQTT input takes a topic, for the embedded
// broker's hook.
func Matcher(ins []Input) func(topic string) bool {
	ms := MQTTInputs(ins)
	return func(topic string) bool {
		for _, m := range ms {
			if m.Match(topic) {
				return true
			}
		}
		return false
	}
}

// checkOverlap refuses two MQTT inputs whose topics overlap (a Frigate
// whose topic_prefix is the hub's own): each message must have one owner.
func checkOverlap(ms []MQTT) error {
	type root struct{ prefix, name string }
	var roots []root
	for _, m := range ms {
		for _, f := range m.Filters() {
			p := staticPrefix(f)
			for _, r := range roots {
				if r.name != m.Name() && (strings.HasPrefix(p, r.prefix) || strings.HasPrefix(r.prefix, p)) {
					return fmt.Errorf("inputs %s and %s both read MQTT topics under %s: give them different topic prefixes", r.name, m.Name(), min(p, r.prefix))
				}
			}
			roots = append(roots, root{p, m.Name()})
		}
	}
	return nil
}

// staticPrefix is a filter's levels before its first wildcard, with a
// trailing slash: "village/+/camera/+/+" -> "village/".
func staticPrefix(filter string) string {
	var b strings.Builder
	for _, level := range strings.Split(filter, "/") {
		if level == "+" || level == "#" {
			break
		}
		b.WriteString(level)
		b.WriteByte('/')
	}
	return b.String()
}

var _ Sink = (*state.State)(nil)
