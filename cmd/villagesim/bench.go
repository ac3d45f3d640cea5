package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"villagehub/devices/payload"
)

const benchUsage = `villagesim bench — end-to-end benchmark of villagehub.

For each broker (Mosquitto with configs/mosquitto/mosquitto.conf, and the
hub's embedded broker) and each QoS, it publishes --messages QR reports from
--publishers connections, first to a bare subscriber that only counts (the
ceiling), then through the hub (a villagehub process with a fresh data
directory), and prints messages/s, the hub's CPU per message, latency and
messages lost. Then it registers --devices cameras and as many boards and
reports the hub's memory per device.

Flags:
`

type benchOpts struct {
	messages, publishers, window, boards, devices int
	qos                                           []byte
	modes                                         []string
	hubBin, mosquittoConf                         string
	influxURL, influxBucket                       string
	// profileDir, if set, receives a CPU profile of the hub during each
	// hub run (from its /debug/pprof/profile), named <broker>-qos<N>.pprof.
	profileDir string
	// profileSecs is how long each profile samples.
	profileSecs int
	// sideBySide adds, through Mosquitto, a bare subscriber in its own
	// process and Telegraf (binary telegraf) to discard and to
	// prometheus_client (sidebyside.go).
	sideBySide bool
	telegraf   string
	out        io.Writer
}

func runBench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("villagesim bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), benchUsage); fs.PrintDefaults() }
	o := benchOpts{out: stdout}
	fs.IntVar(&o.messages, "messages", 100000, "messages per run")
	fs.IntVar(&o.publishers, "publishers", 8, "publishing connections")
	fs.IntVar(&o.window, "window", 100, "QoS 1 messages in flight per publisher")
	fs.IntVar(&o.boards, "boards", 50, "boards per publisher")
	fs.IntVar(&o.devices, "devices", 10000, "cameras (and as many boards) registered for the memory figure; 0 skips it")
	qos := fs.String("qos", "1,0", "QoS levels to run")
	modes := fs.String("brokers", "mosquitto,embedded", "brokers to run through")
	fs.StringVar(&o.hubBin, "hub-bin", "", "villagehub binary (default: build ./cmd/villagehub)")
	fs.StringVar(&o.mosquittoConf, "mosquitto-conf", "configs/mosquitto/mosquitto.conf", "Mosquitto config whose tuning to use")
	fs.StringVar(&o.influxURL, "influx-url", "", "also write the hub's history to this InfluxDB (with its durable spool), e.g. http://127.0.0.1:8086")
	fs.StringVar(&o.influxBucket, "influx-bucket", "village/autogen", "InfluxDB bucket (database/retention-policy for 1.8)")
	fs.StringVar(&o.profileDir, "cpuprofile-dir", "", "write a CPU profile of the hub during each hub run to this directory (go tool pprof -top FILE)")
	fs.IntVar(&o.profileSecs, "cpuprofile-seconds", 5, "seconds each CPU profile samples, from the first publish")
	fs.BoolVar(&o.sideBySide, "side-by-side", false, "through Mosquitto, also run a bare subscriber process and Telegraf mqtt_consumer (JSON) to discard and to prometheus_client, each with its CPU per message")
	telegraf := fs.String("telegraf", "", "Telegraf binary for --side-by-side (default: telegraf on PATH or in $(go env GOPATH)/bin; scripts/install-telegraf.sh)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	for _, q := range strings.Split(*qos, ",") {
		n, err := strconv.Atoi(q)
		if err != nil || n < 0 || n > 1 {
			fmt.Fprintln(stderr, "villagesim bench: --qos takes 0 and/or 1")
			return 2
		}
		o.qos = append(o.qos, byte(n))
	}
	o.modes = strings.Split(*modes, ",")
	if o.sideBySide {
		if o.telegraf = findTelegraf(*telegraf); o.telegraf == "" {
			fmt.Fprintln(stderr, "villagesim bench: --side-by-side needs Telegraf: run scripts/install-telegraf.sh or pass --telegraf")
			return 2
		}
	}
	if err := bench(o); err != nil {
		fmt.Fprintln(stderr, "villagesim bench:", err)
		return 1
	}
	return 0
}

func bench(o benchOpts) error {
	// Made before the runs, not found missing after the first of them.
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return fmt.Errorf("--cpuprofile-dir: %w", err)
		}
	}
	tmp, err := os.MkdirTemp("", "villagesim-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if o.hubBin == "" {
		o.hubBin = filepath.Join(tmp, "villagehub")
		cmd := exec.Command("go", "build", "-o", o.hubBin, "./cmd/villagehub")
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("building villagehub (run from the repository root, or pass --hub-bin): %w", err)
		}
	}
	fmt.Fprintf(o.out, "villagesim bench: %d messages per run, %d publishers, window %d, %d CPUs\n",
		o.messages, o.publishers, o.window, numCPU())
	if o.influxURL != "" {
		fmt.Fprintf(o.out, "the hub also writes every point to InfluxDB at %s through its outbox and disk spool\n", o.influxURL)
	}
	fmt.Fprintln(o.out)
	fmt.Fprintf(o.out, "%-10s %-4s %-16s %10s %8s %12s %12s %12s %10s %10s %6s\n", "broker", "qos", "consumer", "msgs/s", "ratio", "hub µs/msg", "sys µs/msg", "pub µs/msg", "p50", "p99", "lost")
	ceiling := map[byte]float64{}
	for _, mode := range o.modes {
		for _, q := range o.qos {
			var mq *mosquittoProc
			brokerURL := ""
			if mode == "mosquitto" {
				if mq, err = startMosquitto(tmp, o.mosquittoConf); err != nil {
					return err
				}
				brokerURL = "tcp://" + mq.addr
				r, err := runBare(o, brokerURL, q)
				if err != nil {
					mq.stop()
					return err
				}
				ceiling[q] = r.rate
				r.print(o.out, mode, q, "bare subscriber", 1)
			}
			hub, err := startHub(tmp, o, brokerURL)
			if err != nil {
				if mq != nil {
					mq.stop()
				}
				return err
			}
			if brokerURL == "" {
				brokerURL = "tcp://" + hub.broker
			}
			var brokerCPU func() float64
			if mq != nil {
				brokerCPU = func() float64 { return procCPU(mq.cmd.Process.Pid) }
			}
			r, err := runHub(o, hub, brokerURL, q, mode, brokerCPU)
			hub.stop()
			if err != nil {
				if mq != nil {
					mq.stop()
				}
				return err
			}
			ratio := 0.0
			if ceiling[q] > 0 {
				ratio = r.rate / ceiling[q]
			}
			r.print(o.out, mode, q, "villagehub", ratio)
			if mq != nil && o.sideBySide {
				err := sideBySide(o, tmp, brokerURL, q, mq, ceiling[q])
				if err != nil {
					mq.stop()
					return err
				}
			}
			if mq != nil {
				mq.stop()
			}
		}
	}
	if o.devices > 0 {
		hub, err := startHub(tmp, benchOpts{hubBin: o.hubBin}, "")
		if err != nil {
			return err
		}
		defer hub.stop()
		per, heap, err := memoryPerDevice(hub, o.devices)
		if err != nil {
			return err
		}
		fmt.Fprintf(o.out, "\nmemory with %d cameras and %d boards registered: %.0f B/device resident (RssAnon: without the store's memory-mapped file), %.0f B/device Go heap in use after GC\n", o.devices, o.devices, per, heap)
	}
	fmt.Fprintln(o.out, "\nratio: the hub's rate over the bare subscriber's through Mosquitto at the same QoS.")
	fmt.Fprintln(o.out, "µs/msg: CPU (utime+stime from /proc) per message handled: hub = the consumer's process (villagehub: with the")
	fmt.Fprintln(o.out, "        embedded broker, the whole system; or the bare subscriber process, or Telegraf); sys = that + Mosquitto;")
	fmt.Fprintln(o.out, "        pub = the publishers (this process). Telegraf: its internal_gather_metrics_gathered counts, flush 100 ms.")
	fmt.Fprintln(o.out, "p50/p99: embedded broker: publish to PUBACK, which the hub sends only once the message is durable;")
	fmt.Fprintln(o.out, "         Mosquitto: bare subscriber publish to delivery; villagehub: receipt to durable acknowledgement (hub histogram).")
	return nil
}

type result struct {
	rate, cpuPerMsg, p50, p99 float64
	// sysCPUPerMsg adds the broker's CPU (Mosquitto) to the hub's;
	// pubCPUPerMsg is the publishers' (this process's).
	sysCPUPerMsg, pubCPUPerMsg float64
	// perCommit is messages per store commit (the commit group size).
	perCommit float64
	lost      int64
	// With --influx-url: reports confirmed by InfluxDB per second, from
	// the first publish, and reports counted but not in InfluxDB.
	influxRate float64
	influxLost int64
}

func (r result) print(w io.Writer, mode string, q byte, who string, ratio float64) {
	cpu, sys, pub, rs := "-", "-", "-", "-"
	if r.cpuPerMsg > 0 {
		cpu = fmt.Sprintf("%.1f", r.cpuPerMsg*1e6)
		sys = fmt.Sprintf("%.1f", r.sysCPUPerMsg*1e6)
		pub = fmt.Sprintf("%.1f", r.pubCPUPerMsg*1e6)
	}
	if ratio > 0 {
		rs = fmt.Sprintf("%.2f", ratio)
	}
	fmt.Fprintf(w, "%-10s %-4d %-16s %10.0f %8s %12s %12s %12s %10s %10s %6d", mode, q, who, r.rate, rs, cpu, sys, pub, dur(r.p50), dur(r.p99), r.lost)
	if r.perCommit > 0 {
		fmt.Fprintf(w, "   %.0f msgs/commit", r.perCommit)
	}
	if r.influxRate > 0 {
		fmt.Fprintf(w, "   into InfluxDB: %.0f/s, %d missing", r.influxRate, r.influxLost)
	}
	fmt.Fprintln(w)
}

func counter(m map[string]*dto.MetricFamily, name string) float64 {
	var v float64
	if f := m[name]; f != nil {
		for _, s := range f.Metric {
			v += s.GetCounter().GetValue()
		}
	}
	return v
}

func dur(s float64) string {
	if s <= 0 || math.IsNaN(s) {
		return "-"
	}
	return time.Duration(s * float64(time.Second)).Round(10 * time.Microsecond).String()
}

// publish sends o.messages QR reports from o.publishers connections as fast
// as the window allows. It returns the acknowledged count and, per message,
// the publish-to-acknowledgement latency.
func publish(o benchOpts, brokerURL string, q byte, tag string) (acked int64, lat []float64, err error) {
	per := o.messages / o.publishers
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	var ackCount atomic.Int64
	for p := range o.publishers {
		c := paho.NewClient(paho.NewClientOptions().AddBroker(brokerURL).
			SetClientID(fmt.Sprintf("bench-%s-%d", tag, p)).SetCleanSession(true).
			SetMaxResumePubInFlight(o.window).SetWriteTimeout(30 * time.Second))
		if t := c.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
			return 0, nil, fmt.Errorf("publisher connect: %v", t.Error())
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Disconnect(100)
			type inflight struct {
				tok paho.Token
				at  time.Time
			}
			ch := make(chan inflight, o.window)
			var local []float64
			done := make(chan struct{})
			go func() {
				defer close(done)
				for f := range ch {
					if !f.tok.WaitTimeout(60*time.Second) || f.tok.Error() != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = fmt.Errorf("publish: %v", f.tok.Error())
						}
						mu.Unlock()
						continue
					}
					ackCount.Add(1)
					local = append(local, time.Since(f.at).Seconds())
				}
			}()
			totals := make([]int64, o.boards)
			for i := range per {
				b := i % o.boards
				totals[b]++
				topic := payload.QRScansTopic("village", "bench", fmt.Sprintf("p%d-b%d", p, b))
				body := fmt.Appendf(nil, `{"total":%d,"boot":"%s"}`, totals[b], tag)
				ch <- inflight{c.Publish(topic, q, false, body), time.Now()}
			}
			close(ch)
			<-done
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return ackCount.Load(), lat, firstErr
}

func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	return xs[min(len(xs)-1, int(q*float64(len(xs))))]
}

// runBare measures the ceiling: the same load to a subscriber that only
// counts.
func runBare(o benchOpts, brokerURL string, q byte) (result, error) {
	var got atomic.Int64
	var lastAt atomic.Int64
	sub := paho.NewClient(paho.NewClientOptions().AddBroker(brokerURL).SetClientID("bench-bare").SetCleanSession(true))
	if t := sub.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return result{}, fmt.Errorf("bare subscriber: %v", t.Error())
	}
	defer sub.Disconnect(100)
	t := sub.Subscribe("village/+/qr/+/scans", q, func(paho.Client, paho.Message) {
		got.Add(1)
		lastAt.Store(time.Now().UnixNano())
	})
	if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return result{}, fmt.Errorf("bare subscribe: %v", t.Error())
	}
	start := time.Now()
	acked, _, err := publish(o, brokerURL, q, "bare")
	if err != nil {
		return result{}, err
	}
	waitStable(func() int64 { return got.Load() }, acked)
	n := got.Load()
	el := time.Duration(lastAt.Load() - start.UnixNano()).Seconds()
	return result{rate: float64(n) / el, lost: acked - n}, nil
}

// waitStable waits until count reaches want or stops moving for 5 s.
func waitStable(count func() int64, want int64) {
	last, since := int64(-1), time.Now()
	for {
		n := count()
		if n >= want {
			return
		}
		if n != last {
			last, since = n, time.Now()
		} else if time.Since(since) > 5*time.Second {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func runHub(o benchOpts, h *hubProc, brokerURL string, q byte, mode string, brokerCPU func() float64) (result, error) {
	m0, err := scrape(h.http)
	if err != nil {
		return result{}, err
	}
	base := handledCount(m0)
	cpu0 := h.cpu()
	var bcpu0 float64
	if brokerCPU != nil {
		bcpu0 = brokerCPU()
	}
	pub0 := selfCPU()
	var prof chan error
	if o.profileDir != "" {
		prof = make(chan error, 1)
		go func() {
			prof <- fetchProfile(h.http, o.profileSecs, filepath.Join(o.profileDir, fmt.Sprintf("%s-qos%d.pprof", mode, q)))
		}()
	}
	start := time.Now()
	var lastChange time.Time
	var handled int64
	var lat []float64
	acked, lat, err := publish(o, brokerURL, q, fmt.Sprintf("hub%d", q))
	if err != nil {
		return result{}, err
	}
	waitStable(func() int64 {
		m, err := scrape(h.http)
		if err != nil {
			return handled
		}
		if n := handledCount(m) - base; n != handled {
			handled, lastChange = n, time.Now()
		}
		return handled
	}, acked)
	cpu := h.cpu() - cpu0
	el := lastChange.Sub(start).Seconds()
	r := result{rate: float64(handled) / el, cpuPerMsg: cpu / float64(handled), lost: acked - handled}
	// The whole system: the hub plus the broker it goes through (none
	// beyond itself with the embedded broker); the publishers apart.
	r.sysCPUPerMsg = r.cpuPerMsg
	if brokerCPU != nil {
		r.sysCPUPerMsg += (brokerCPU() - bcpu0) / float64(handled)
	}
	r.pubCPUPerMsg = (selfCPU() - pub0) / float64(handled)
	if m1, err := scrape(h.http); err == nil {
		if c := counter(m1, "villagehub_store_commits_total") - counter(m0, "villagehub_store_commits_total"); c > 0 {
			r.perCommit = float64(handled) / c
		}
	}
	if prof != nil {
		if err := <-prof; err != nil {
			return result{}, fmt.Errorf("CPU profile: %w", err)
		}
		// And where the hub allocated, since it started (go tool pprof
		// -sample_index=alloc_space).
		if err := fetchURL("http://"+h.http+"/debug/pprof/allocs", filepath.Join(o.profileDir, fmt.Sprintf("%s-qos%d.allocs.pprof", mode, q))); err != nil {
			return result{}, fmt.Errorf("allocation profile: %w", err)
		}
	}
	if o.influxURL != "" {
		// Every report raises its board's total, so each makes one point:
		// wait until InfluxDB has confirmed them all.
		written0 := counter(m0, "villagehub_influx_points_written_total")
		var written int64
		var lastWrite time.Time
		waitStable(func() int64 {
			if m, err := scrape(h.http); err == nil {
				if n := int64(counter(m, "villagehub_influx_points_written_total") - written0); n != written {
					written, lastWrite = n, time.Now()
				}
			}
			return written
		}, handled)
		r.influxRate = float64(written) / lastWrite.Sub(start).Seconds()
		r.influxLost = handled - written
		r.cpuPerMsg = (h.cpu() - cpu0) / float64(handled)
	}
	if brokerURL == "tcp://"+h.broker {
		r.p50, r.p99 = quantile(lat, 0.5), quantile(lat, 0.99)
	} else if m1, err := scrape(h.http); err == nil {
		r.p50, r.p99 = histQuantile(m0, m1, "villagehub_ingest_latency_seconds", 0.5), histQuantile(m0, m1, "villagehub_ingest_latency_seconds", 0.99)
	}
	return r, nil
}

// heapInuse forces a GC in the hub and returns its heap in use afterwards
// (from the heap profile's MemStats trailer), and its resident set size.
func heapInuse(h *hubProc) (heap, rss float64, err error) {
	resp, err := http.Get("http://" + h.http + "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "# HeapInuse = "); ok {
			heap, _ = strconv.ParseFloat(v, 64)
		}
	}
	// RssAnon: the process's own resident memory, without the pages of the
	// store's memory-mapped file (RssFile), which the kernel can drop.
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", h.cmd.Process.Pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			rss = kb * 1024
		}
	}
	if heap == 0 {
		return 0, 0, errors.New("no HeapInuse in the heap profile")
	}
	return heap, rss, nil
}

func memoryPerDevice(h *hubProc, n int) (rss, heap float64, err error) {
	m0, err := scrape(h.http)
	if err != nil {
		return 0, 0, err
	}
	heap0, rss0, err := heapInuse(h)
	if err != nil {
		return 0, 0, err
	}
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + h.broker).SetClientID("bench-mem"))
	if t := c.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return 0, 0, fmt.Errorf("memory publisher: %v", t.Error())
	}
	defer c.Disconnect(100)
	for i := range n {
		c.Publish(payload.MotionTopic("village", "mem", fmt.Sprintf("cam-%d", i)), 1, false, "ON")
		c.Publish(payload.QRScansTopic("village", "mem", fmt.Sprintf("board-%d", i)), 1, false, fmt.Sprintf(`{"total":%d,"boot":"b%d"}`, i, i)).Wait()
	}
	base := handledCount(m0)
	waitStable(func() int64 {
		m, _ := scrape(h.http)
		return handledCount(m) - base
	}, int64(2*n))
	heap1, _, err := heapInuse(h)
	if err != nil {
		return 0, 0, err
	}
	// Resident memory once the runtime has handed the garbage of the
	// registration burst back to the system (its scavenger does that in
	// the background, within seconds).
	time.Sleep(5 * time.Second)
	_, rss1, err := heapInuse(h)
	if err != nil {
		return 0, 0, err
	}
	d := float64(2 * n)
	return (rss1 - rss0) / d, (heap1 - heap0) / d, nil
}

// --- processes -----------------------------------------------------------

type mosquittoProc struct {
	cmd  *exec.Cmd
	addr string
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startMosquitto runs Mosquitto with the tuning of the shipped config (its
// listener and file locations replaced for a private instance).
func startMosquitto(tmp, shipped string) (*mosquittoProc, error) {
	src, err := os.ReadFile(shipped)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", shipped, err)
	}
	addr := freeAddr()
	_, port, _ := net.SplitHostPort(addr)
	var conf bytes.Buffer
	fmt.Fprintf(&conf, "listener %s 127.0.0.1\nallow_anonymous true\nlog_dest stderr\n", port)
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch strings.SplitN(line, " ", 2)[0] {
		case "listener", "allow_anonymous", "persistence", "persistence_location", "log_dest", "password_file", "acl_file", "include_dir", "pid_file", "user":
			continue
		}
		conf.WriteString(line + "\n")
	}
	dir, _ := os.MkdirTemp(tmp, "mosquitto-")
	os.Chmod(dir, 0o777)
	path := filepath.Join(dir, "bench.conf")
	if err := os.WriteFile(path, conf.Bytes(), 0o644); err != nil {
		return nil, err
	}
	// Mosquitto logs every connection with the shipped config's log
	// types: to a file, so the results table stays readable.
	logPath := filepath.Join(dir, "mosquitto.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command("mosquitto", "-c", path)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting mosquitto (apt-get install mosquitto): %w", err)
	}
	if err := waitTCP(addr); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		out, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("%w; mosquitto's log:\n%s", err, out)
	}
	return &mosquittoProc{cmd: cmd, addr: addr}, nil
}

func (m *mosquittoProc) stop() {
	m.cmd.Process.Signal(syscall.SIGTERM)
	m.cmd.Wait()
}

func waitTCP(addr string) error {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
	}
	return fmt.Errorf("%s did not start listening", addr)
}

type hubProc struct {
	cmd          *exec.Cmd
	http, broker string
}

func startHub(tmp string, o benchOpts, mqttURL string) (*hubProc, error) {
	dir, _ := os.MkdirTemp(tmp, "hub-")
	h := &hubProc{http: freeAddr(), broker: freeAddr()}
	// The load comes from a few anonymous publishers going flat out.
	cfgPath := filepath.Join(dir, "bench.yaml")
	// The newest keys first: /debug/pprof (for profiles and the heap
	// figures) is behind debug.pprof, and connections before CONNECT are
	// capped (max_pending), in hubs that have those keys; older hubs (a
	// baseline binary) reject them, and serve pprof always.
	base := "broker: { allow_anonymous: true, publish_rate: 10000000, publish_burst: 10000000"
	for _, cfg := range []string{
		base + ", max_pending: 100000, max_pending_per_source: 100000 }\n" + pprofKey,
		base + " }\n" + pprofKey,
		base + " }\n",
	} {
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
		if exec.Command(o.hubBin, "check-config", cfgPath).Run() == nil {
			break
		}
	}
	args := []string{"--config", cfgPath, "--data-dir", dir, "--http-addr", h.http, "--broker-addr", h.broker, "--log-level", "error"}
	if mqttURL != "" {
		args = append(args, "--mqtt-url", mqttURL)
	}
	if o.influxURL != "" {
		args = append(args, "--influx-url", o.influxURL, "--influx-bucket", o.influxBucket)
	}
	h.cmd = exec.Command(o.hubBin, args...)
	h.cmd.Stderr = os.Stderr
	// A bench run must not fail on the hub's default per-kind device cap.
	if err := h.cmd.Start(); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + h.http + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return h, nil
			}
		}
		if time.Now().After(deadline) {
			h.stop()
			return nil, errors.New("villagehub did not become ready")
		}
	}
}

// pprofKey turns on /debug/pprof (served to loopback administrators).
const pprofKey = "debug: { pprof: true }\n"

func (h *hubProc) stop() {
	h.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { h.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		h.cmd.Process.Kill()
		<-done
	}
}

// cpu is the hub process's user+system CPU seconds so far.
func (h *hubProc) cpu() float64 { return procCPU(h.cmd.Process.Pid) }

// selfCPU is this process's user+system CPU seconds so far.
func selfCPU() float64 { return procCPU(os.Getpid()) }

// fetchProfile saves a CPU profile of the hub sampled for secs seconds.
func fetchProfile(addr string, secs int, path string) error {
	return fetchURL(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs), path)
}

// fetchURL saves what url answers to path.
func fetchURL(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s (is debug.pprof on?)", resp.Request.URL, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// procCPU is a process's user+system CPU seconds so far (its threads
// included; /proc/<pid>/stat fields 14 and 15).
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// --- metrics -------------------------------------------------------------

func scrape(addr string) (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// handledCount is how many device messages the hub has finished with.
func handledCount(m map[string]*dto.MetricFamily) int64 {
	return int64(counter(m, "villagehub_mqtt_messages_total"))
}

// histQuantile estimates a quantile of the observations between two
// scrapes of a histogram, interpolating within buckets as PromQL does.
func histQuantile(m0, m1 map[string]*dto.MetricFamily, name string, q float64) float64 {
	h := func(m map[string]*dto.MetricFamily) *dto.Histogram {
		if f := m[name]; f != nil && len(f.Metric) > 0 {
			return f.Metric[0].GetHistogram()
		}
		return nil
	}
	a, b := h(m0), h(m1)
	if a == nil || b == nil {
		return 0
	}
	total := float64(b.GetSampleCount() - a.GetSampleCount())
	if total == 0 {
		return 0
	}
	rank := q * total
	prevBound, prevCount := 0.0, 0.0
	for i, bk := range b.Bucket {
		c := float64(bk.GetCumulativeCount() - a.Bucket[i].GetCumulativeCount())
		if c >= rank {
			return prevBound + (bk.GetUpperBound()-prevBound)*(rank-prevCount)/math.Max(c-prevCount, 1)
		}
		prevBound, prevCount = bk.GetUpperBound(), c
	}
	return prevBound
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return max(1, strings.Count(string(b), "processor\t:"))
}
