package main

// The side-by-side anchor (issue 13 item 7): on the same tuned Mosquitto and
// the same contract payloads, the CPU per message of a bare paho subscriber
// (in its own process, so its CPU can be read apart from the publishers'),
// the hub, and Telegraf's mqtt_consumer with the JSON parser writing to
// outputs.discard and to outputs.prometheus_client.

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// runBareSubscriber is the hidden `villagesim bare-subscriber` command: it
// subscribes, prints "ready", counts messages and, once it has --want of
// them or none came for 5 s, prints the count and exits.
func runBareSubscriber(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("villagesim bare-subscriber", flag.ContinueOnError)
	fs.SetOutput(stderr)
	broker := fs.String("broker", "", "MQTT broker URL")
	qos := fs.Int("qos", 1, "subscription QoS")
	want := fs.Int64("want", 0, "stop after this many messages")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var got atomic.Int64
	sub := paho.NewClient(paho.NewClientOptions().AddBroker(*broker).SetClientID("bench-bare-proc").SetCleanSession(true))
	if t := sub.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		fmt.Fprintln(stderr, "bare subscriber:", t.Error())
		return 1
	}
	defer sub.Disconnect(100)
	t := sub.Subscribe("village/+/qr/+/scans", byte(*qos), func(paho.Client, paho.Message) { got.Add(1) })
	if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		fmt.Fprintln(stderr, "bare subscriber:", t.Error())
		return 1
	}
	fmt.Fprintln(stdout, "ready")
	for got.Load() == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	waitStable(got.Load, *want)
	fmt.Fprintln(stdout, got.Load())
	return 0
}

// runBareProcess runs the bare subscriber as a child process and measures
// its CPU (and Mosquitto's) per message.
func runBareProcess(o benchOpts, brokerURL string, q byte, mq *mosquittoProc) (result, error) {
	self, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	cmd := exec.Command(self, "bare-subscriber", "--broker", brokerURL, "--qos", strconv.Itoa(int(q)), "--want", strconv.Itoa(o.messages/o.publishers*o.publishers))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "ready" {
		return result{}, errors.New("bare subscriber process did not start")
	}
	cpu0, mcpu0 := procCPU(cmd.Process.Pid), procCPU(mq.cmd.Process.Pid)
	start := time.Now()
	acked, _, err := publish(o, brokerURL, q, "bareproc")
	if err != nil {
		return result{}, err
	}
	if !sc.Scan() {
		return result{}, errors.New("bare subscriber process gave no count")
	}
	el := time.Since(start).Seconds()
	cpu, mcpu := procCPU(cmd.Process.Pid)-cpu0, procCPU(mq.cmd.Process.Pid)-mcpu0
	n, _ := strconv.ParseInt(sc.Text(), 10, 64)
	cmd.Wait()
	if n == 0 {
		return result{}, errors.New("bare subscriber process received nothing")
	}
	return result{rate: float64(n) / el, cpuPerMsg: cpu / float64(n), sysCPUPerMsg: (cpu + mcpu) / float64(n), lost: acked - n}, nil
}

// telegrafConf is Telegraf reading the contract's QR reports with the JSON
// parser. Its own counters (inputs.internal) go to a prometheus_client
// output the bench scrapes; the reports go to outputs.discard or to that
// prometheus_client output too.
func telegrafConf(brokerURL, promAddr string, q byte, toProm bool) string {
	pass := `namepass = ["internal_gather"]`
	discard := "[[outputs.discard]]\n  namepass = [\"mqtt_consumer\"]\n"
	if toProm {
		pass, discard = "", ""
	}
	return fmt.Sprintf(`[agent]
  interval = "1s"
  flush_interval = "100ms"
  metric_batch_size = 10000
  metric_buffer_limit = 1000000
  omit_hostname = true
  quiet = true

[[inputs.mqtt_consumer]]
  servers = [%q]
  topics = ["village/+/qr/+/scans"]
  qos = %d
  client_id = "bench-telegraf"
  persistent_session = false
  max_undelivered_messages = 10000
  data_format = "json"
  json_string_fields = ["boot"]

[[inputs.internal]]
  collect_memstats = false

%s
[[outputs.prometheus_client]]
  listen = %q
  metric_version = 2
  %s
`, brokerURL, q, discard, promAddr, pass)
}

// runTelegraf runs Telegraf against the broker and measures its CPU (and
// Mosquitto's) per message; it counts what Telegraf's mqtt_consumer
// gathered (internal_gather_metrics_gathered).
func runTelegraf(o benchOpts, tmp, brokerURL string, q byte, mq *mosquittoProc, toProm bool) (result, error) {
	dir, _ := os.MkdirTemp(tmp, "telegraf-")
	promAddr := freeAddr()
	conf := filepath.Join(dir, "telegraf.conf")
	if err := os.WriteFile(conf, []byte(telegrafConf(brokerURL, promAddr, q, toProm)), 0o644); err != nil {
		return result{}, err
	}
	cmd := exec.Command(o.telegraf, "--config", conf)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return result{}, fmt.Errorf("starting telegraf (scripts/install-telegraf.sh): %w", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	gathered := func() int64 {
		m, err := scrape(promAddr)
		if err != nil {
			return -1
		}
		var n float64
		if f := m["internal_gather_metrics_gathered"]; f != nil {
			for _, s := range f.Metric {
				for _, l := range s.Label {
					if l.GetName() == "input" && l.GetValue() == "mqtt_consumer" {
						n += s.GetUntyped().GetValue() + s.GetGauge().GetValue() + s.GetCounter().GetValue()
					}
				}
			}
		}
		return int64(n)
	}
	// Ready: its counters are served and it has subscribed (Mosquitto
	// shows the subscription only as a delivery, so wait for the first
	// internal report and a moment for the connection).
	deadline := time.Now().Add(30 * time.Second)
	for gathered() < 0 {
		if time.Now().After(deadline) {
			return result{}, errors.New("telegraf did not start")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	base := gathered()
	cpu0, mcpu0 := procCPU(cmd.Process.Pid), procCPU(mq.cmd.Process.Pid)
	start := time.Now()
	acked, _, err := publish(o, brokerURL, q, "telegraf")
	if err != nil {
		return result{}, err
	}
	var n int64
	var last time.Time
	waitStable(func() int64 {
		if g := gathered() - base; g != n {
			n, last = g, time.Now()
		}
		return n
	}, acked)
	cpu, mcpu := procCPU(cmd.Process.Pid)-cpu0, procCPU(mq.cmd.Process.Pid)-mcpu0
	if n <= 0 {
		return result{}, errors.New("telegraf gathered nothing")
	}
	// The counter is reported once a second: the rate is a lower bound.
	return result{rate: float64(n) / last.Sub(start).Seconds(), cpuPerMsg: cpu / float64(n), sysCPUPerMsg: (cpu + mcpu) / float64(n), lost: acked - n}, nil
}

// findTelegraf is the Telegraf binary to use: the flag's, else one on PATH
// or in $(go env GOPATH)/bin (scripts/install-telegraf.sh puts it there).
func findTelegraf(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if p, err := exec.LookPath("telegraf"); err == nil {
		return p
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "telegraf")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// sideBySide runs the bare subscriber process and both Telegraf variants
// on the broker the hub just ran through, and prints their rows.
func sideBySide(o benchOpts, tmp, brokerURL string, q byte, mq *mosquittoProc, ceiling float64) error {
	ratio := func(r result) float64 {
		if ceiling > 0 {
			return r.rate / ceiling
		}
		return 0
	}
	r, err := runBareProcess(o, brokerURL, q, mq)
	if err != nil {
		return err
	}
	r.print(o.out, "mosquitto", q, "bare process", ratio(r))
	for _, toProm := range []bool{false, true} {
		r, err := runTelegraf(o, tmp, brokerURL, q, mq, toProm)
		if err != nil {
			return err
		}
		who := "telegraf→discard"
		if toProm {
			who = "telegraf→prom"
		}
		r.print(o.out, "mosquitto", q, who, ratio(r))
	}
	return nil
}
