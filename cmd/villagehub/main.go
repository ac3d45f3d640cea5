// Command villagehub is the smart-village hub: an MQTT-connected service
// that watches cameras and QR boards and serves metrics, an API and a
// dashboard. Run "villagehub --help" for the flags and subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // the village's zone even on a system without tzdata

	"villagehub/hub/app"
	"villagehub/hub/config"
	"villagehub/hub/probe"
)

const usage = `villagehub — a hub for smart villages: camera motion and status, RTSP
stream health and QR-board scans over MQTT, with Prometheus metrics, a JSON
API and a dashboard.

Usage:
  villagehub [flags]                 run the hub
  villagehub --demo                  run a demo village: embedded broker and
                                     store, simulated cameras and QR boards
  villagehub check-config FILE       validate a config file and exit
  villagehub qr print [flags]        printable A4 PDF sheets of the QR boards'
                                     codes and names, one per site
  villagehub report qr --month M     per-board QR scans of a month (table and
                                     CSV): total, unique, bots, busiest day/hour
  villagehub gateway --config F      the province's QR gateway (docs/gateway.md)
  villagehub cameras discover [--add --config F --site S]
                                     find the ONVIF cameras on the LAN, list
                                     their make, model and RTSP URLs; --add
                                     writes them into the config
  villagehub probe-worker            (internal) an RTSP probe worker process,
                                     started and supervised by the hub
  villagehub device [--config F] add camera|qr <site> <id>
                                     give a device its MQTT username and
                                     password (printed once); also
                                     add viewer|hub|frigate <name>, passwd,
                                     remove, list
  villagehub cert [--config F] NAME...
                                     make a village CA and a server
                                     certificate for the hub's TLS
  villagehub user [--config F] add NAME [--role admin|viewer] [--generate]
                                     a dashboard user in <data_dir>/http-users.yaml
                                     (password on stdin, or made and printed
                                     once); also passwd, remove, list
  villagehub hash-password           read a password on stdin, print the bcrypt
                                     hash for http.auth.users
  villagehub token                   make an API bearer token (and its hash for
                                     http.auth.tokens)
  villagehub version                 print the version

Each setting comes from the config file, then the environment
(VILLAGEHUB_HTTP_ADDR, VILLAGEHUB_BROKER_ADDR, VILLAGEHUB_MQTT_URL,
VILLAGEHUB_MQTT_USERNAME, VILLAGEHUB_MQTT_PASSWORD, VILLAGEHUB_DATA_DIR,
VILLAGEHUB_INFLUX_URL, VILLAGEHUB_INFLUX_TOKEN, VILLAGEHUB_INFLUX_ORG,
VILLAGEHUB_INFLUX_BUCKET, VILLAGEHUB_PUBLIC_URL),
then the flags below: each beats the one before.

Flags:
`

// runFlags are the flags of the main command.
type runFlags struct {
	config, httpAddr, brokerAddr, mqttURL, dataDir, publicURL string
	influxURL, influxOrg, influxBucket                        string
	logLevel, logFormat                                       string
	demo                                                      bool
}

func (f *runFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "path to the YAML config file (configs/villagehub.yaml is the documented example)")
	fs.BoolVar(&f.demo, "demo", false, "run a demo village: embedded broker and store, simulated cameras and boards; prints the dashboard URL")
	fs.StringVar(&f.httpAddr, "http-addr", "", "HTTP listen address for the dashboard, API and /metrics (http.addr; default 127.0.0.1:8080)")
	fs.StringVar(&f.brokerAddr, "broker-addr", "", "embedded MQTT broker listen address (broker.addr; default 127.0.0.1:1883)")
	fs.StringVar(&f.mqttURL, "mqtt-url", "", "external MQTT broker URL, e.g. tcp://host:1883; when set, no embedded broker runs (mqtt.url)")
	fs.StringVar(&f.dataDir, "data-dir", "", "data directory for the embedded store and spools (data_dir; default ./data)")
	fs.StringVar(&f.publicURL, "public-url", "", "URL phones use to reach the hub; printed QR codes encode it (http.public_url)")
	fs.StringVar(&f.influxURL, "influx-url", "", "InfluxDB URL; empty keeps history in the embedded store only (influx.url)")
	fs.StringVar(&f.influxOrg, "influx-org", "", "InfluxDB organisation (influx.org; empty for InfluxDB 1.8)")
	fs.StringVar(&f.influxBucket, "influx-bucket", "", "InfluxDB bucket, or database/retention-policy for 1.8 (influx.bucket)")
	fs.StringVar(&f.logLevel, "log-level", "", "log level: debug, info, warn, error (log.level)")
	fs.StringVar(&f.logFormat, "log-format", "", "log format: text or json (log.format)")
}

// apply makes the flags that were set beat the file and the environment.
func (f *runFlags) apply(c *config.Config) {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&c.HTTP.Addr, f.httpAddr)
	set(&c.Broker.Addr, f.brokerAddr)
	set(&c.MQTT.URL, f.mqttURL)
	set(&c.DataDir, f.dataDir)
	set(&c.HTTP.PublicURL, f.publicURL)
	set(&c.Influx.URL, f.influxURL)
	set(&c.Influx.Org, f.influxOrg)
	set(&c.Influx.Bucket, f.influxBucket)
	set(&c.Log.Level, f.logLevel)
	set(&c.Log.Format, f.logFormat)
}

func main() {
	// The hub and the demo (flags or nothing; every subcommand is a word)
	// run with the runtime setting keepSysmonAwake gives them.
	if args := os.Args[1:]; len(args) == 0 || strings.HasPrefix(args[0], "-") {
		keepSysmonAwake()
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "check-config":
			return checkConfig(args[1:], stdout, stderr)
		case "qr":
			return qrCommand(args[1:], stdout, stderr)
		case "gateway":
			return gatewayCommand(args[1:], stdout, stderr)
		case "device":
			return deviceCommand(args[1:], stdout, stderr)
		case "cert":
			return certCommand(args[1:], stdout, stderr)
		case "user":
			return userCommand(args[1:], stdout, stderr)
		case "hash-password":
			return hashPassword(os.Stdin, stdout, stderr)
		case "token":
			return newToken(stdout)
		case "report":
			return reportCommand(args[1:], stdout, stderr)
		case "cameras":
			return camerasCommand(args[1:], stdout, stderr)
		case "notify":
			return notifyCommand(args[1:], stdout, stderr)
		case "probe-worker":
			// Started by the hub itself: probes run in separate processes
			// so that a camera crashing the RTSP library cannot crash the hub.
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			probe.TuneWorkerRuntime()
			if err := probe.ServeWorker(ctx, os.Stdin, os.Stdout); err != nil {
				fmt.Fprintln(stderr, "villagehub probe-worker:", err)
				return 1
			}
			return 0
		case "version":
			fmt.Fprintln(stdout, "villagehub", version())
			return 0
		}
	}
	fs := flag.NewFlagSet("villagehub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f runFlags
	f.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "villagehub: unknown argument %q (see villagehub --help)\n", fs.Arg(0))
		return 2
	}
	cfg, err := loadConfig(&f)
	if err != nil {
		fmt.Fprintln(stderr, "villagehub:", err)
		return 1
	}
	log := newLogger(cfg, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// A clean stop that overruns its deadline becomes a hard one: what
		// was not acknowledged is redelivered after the restart.
		<-ctx.Done()
		time.Sleep(time.Duration(cfg.ShutdownTimeout) + time.Second)
		log.Error("shutdown took longer than shutdown_timeout; exiting now", "shutdown_timeout", time.Duration(cfg.ShutdownTimeout).String())
		os.Exit(1)
	}()
	tuneHubRuntime(log)
	if f.demo {
		err = runDemo(ctx, cfg, log, stdout)
	} else {
		err = runHub(ctx, cfg, log, func() (*config.Config, error) { return loadConfig(&f) })
	}
	if err != nil {
		log.Error("villagehub stopped", "err", err)
		return 1
	}
	log.Info("villagehub stopped")
	return 0
}

func loadConfig(f *runFlags) (*config.Config, error) {
	var cfg *config.Config
	var err error
	if f.demo && f.config == "" {
		cfg, err = config.Parse("(demo village)", demoConfig)
		if err != nil {
			return nil, err
		}
	} else if f.config != "" {
		data, err := os.ReadFile(f.config)
		if err != nil {
			return nil, fmt.Errorf("reading config: %w", err)
		}
		if cfg, err = config.Parse(f.config, data); err != nil {
			return nil, err
		}
	} else {
		cfg = &config.Config{}
	}
	if err := cfg.ApplyEnv(os.Getenv); err != nil {
		return nil, err
	}
	f.apply(cfg)
	if err := cfg.Validate(); err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			// A value from a flag or the environment is blamed on it, not
			// on the file (issue 17, item 7).
			for i, p := range ce.Problems {
				if src := f.source(p.Key, os.Getenv); src != "" {
					ce.Problems[i].File, ce.Problems[i].Line = src, 0
				}
			}
		}
		return nil, err
	}
	return cfg, nil
}

// source names where the value of key came from when a flag or an
// environment variable set it ("" when from the file).
func (f *runFlags) source(key string, getenv func(string) string) string {
	flags := map[string][2]string{
		"http.addr": {f.httpAddr, "--http-addr"}, "broker.addr": {f.brokerAddr, "--broker-addr"}, "mqtt.url": {f.mqttURL, "--mqtt-url"},
		"data_dir": {f.dataDir, "--data-dir"}, "http.public_url": {f.publicURL, "--public-url"}, "influx.url": {f.influxURL, "--influx-url"},
		"influx.org": {f.influxOrg, "--influx-org"}, "influx.bucket": {f.influxBucket, "--influx-bucket"},
		"log.level": {f.logLevel, "--log-level"}, "log.format": {f.logFormat, "--log-format"},
	}
	if v, ok := flags[key]; ok && v[0] != "" {
		return "flag " + v[1]
	}
	env := map[string]string{
		"http.addr": "VILLAGEHUB_HTTP_ADDR", "broker.addr": "VILLAGEHUB_BROKER_ADDR", "mqtt.url": "VILLAGEHUB_MQTT_URL",
		"mqtt.username": "VILLAGEHUB_MQTT_USERNAME", "mqtt.password": "VILLAGEHUB_MQTT_PASSWORD", "data_dir": "VILLAGEHUB_DATA_DIR",
		"influx.url": "VILLAGEHUB_INFLUX_URL", "influx.token": "VILLAGEHUB_INFLUX_TOKEN", "influx.org": "VILLAGEHUB_INFLUX_ORG",
		"influx.bucket": "VILLAGEHUB_INFLUX_BUCKET", "http.public_url": "VILLAGEHUB_PUBLIC_URL",
	}
	if e, ok := env[key]; ok && getenv(e) != "" {
		return "environment variable " + e
	}
	return ""
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(strings.ToUpper(cfg.Log.Level)))
	opts := &slog.HandlerOptions{Level: lv}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// runHub runs the hub until ctx ends; SIGHUP reloads the configuration and
// TLS certificates (an invalid or restart-only change is refused, naming
// its problems or keys, and the running configuration stays).
func runHub(ctx context.Context, cfg *config.Config, log *slog.Logger, reload func() (*config.Config, error)) error {
	app.Version = version()
	h, err := app.New(cfg, app.Options{Logger: log})
	if err != nil {
		return err
	}
	log.Info("villagehub started", "version", version(), "http", h.HTTPURL()+"/",
		"broker", brokerDesc(cfg, h), "data_dir", cfg.DataDir)
	h.SetReloader(reload)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				// The same path as POST /api/v1/reload; it logs the outcome.
				_ = h.ReloadFromFile(ctx, "SIGHUP")
			}
		}
	}()
	return h.Run(ctx)
}

func brokerDesc(cfg *config.Config, h *app.Hub) string {
	if cfg.EmbeddedBroker() {
		return "embedded on " + h.BrokerAddr()
	}
	return probe.Redact(cfg.MQTT.URL)
}

func checkConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, "usage: villagehub check-config FILE")
		return 2
	}
	cfg, err := config.Load(args[0], os.Getenv)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			for _, p := range ce.Problems {
				fmt.Fprintln(stderr, p.String())
			}
			fmt.Fprintf(stderr, "%d problem(s) in %s\n", len(ce.Problems), args[0])
			return 1
		}
		fmt.Fprintln(stderr, "villagehub:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: OK (%d sites, %d cameras, %d QR boards; broker: %s)\n", args[0],
		len(cfg.Sites), len(cfg.Cameras), len(cfg.Boards), map[bool]string{true: "embedded on " + cfg.Broker.Addr, false: probe.Redact(cfg.MQTT.URL)}[cfg.EmbeddedBroker()])
	return 0
}
