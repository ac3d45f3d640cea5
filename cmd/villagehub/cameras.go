package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"villagehub/hub/config"
	"villagehub/hub/onvif"
)

const camerasUsage = `usage: villagehub cameras discover [flags]

Finds the ONVIF cameras on the LAN (WS-Discovery), asks each one its make,
model, firmware and RTSP stream URLs, and lists them. With --add, writes the
cameras found (and not yet in the file) into the config: rtsp_url without
credentials, username and password_file beside it, and an onvif: block so
the hub reads their motion events.

The password is read from --password-file or $VILLAGEHUB_ONVIF_PASSWORD,
never from the command line.

Flags:
`

// camerasCommand: villagehub cameras discover [...]
func camerasCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "discover" {
		fmt.Fprint(stderr, camerasUsage)
		return 2
	}
	fs := flag.NewFlagSet("cameras discover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for cameras to answer the probe")
	iface := fs.String("interface", "", "send the probe out of this network interface (default: the multicast route)")
	user := fs.String("username", "", "ONVIF user to read the cameras with (most cameras: admin)")
	pwFile := fs.String("password-file", "", "file holding that user's password (0600)")
	add := fs.Bool("add", false, "add the cameras found to the config file")
	cfgPath := fs.String("config", "", "config file to add the cameras to (with --add)")
	site := fs.String("site", "", "site of the cameras added (with --add)")
	fs.Usage = func() { fmt.Fprint(stderr, camerasUsage); fs.PrintDefaults() }
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *add && (*cfgPath == "" || *site == "") {
		fmt.Fprintln(stderr, "villagehub cameras discover: --add needs --config FILE and --site SITE")
		return 2
	}
	if *add && *user != "" && *pwFile == "" {
		// The config keeps passwords in files, not in the YAML.
		fmt.Fprintln(stderr, "villagehub cameras discover: --add with --username needs --password-file (the config refers to the file)")
		return 2
	}
	password := os.Getenv("VILLAGEHUB_ONVIF_PASSWORD")
	if *pwFile != "" {
		var err error
		if password, err = config.ReadSecret("", *pwFile); err != nil {
			fmt.Fprintln(stderr, "villagehub cameras discover:", err)
			return 1
		}
	}
	if *add {
		// Check the file and the site before probing: a typo should not
		// cost a discovery.
		if _, err := onvif.AddCameras(*cfgPath, onvif.AddOptions{Site: *site, Username: *user, PasswordFile: *pwFile}, nil); err != nil {
			fmt.Fprintln(stderr, "villagehub cameras discover:", err)
			return 1
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	devs, err := onvif.Discover(ctx, onvif.DiscoverOptions{
		Probe:    onvif.ProbeOptions{Timeout: *timeout, Interface: *iface},
		Username: *user, Password: password,
	})
	if err != nil {
		fmt.Fprintln(stderr, "villagehub cameras discover:", err)
		return 1
	}
	printDevices(stdout, devs)
	if !*add {
		return 0
	}
	added, err := onvif.AddCameras(*cfgPath, onvif.AddOptions{Site: *site, Username: *user, PasswordFile: *pwFile}, devs)
	if err != nil {
		fmt.Fprintln(stderr, "villagehub cameras discover:", err)
		return 1
	}
	if len(added) == 0 {
		fmt.Fprintf(stdout, "no new camera to add to %s\n", *cfgPath)
		return 0
	}
	fmt.Fprintf(stdout, "added to %s (site %s): %s\nrestart the hub to start watching them\n", *cfgPath, *site, strings.Join(added, ", "))
	return 0
}

func printDevices(w io.Writer, devs []onvif.Device) {
	if len(devs) == 0 {
		fmt.Fprintln(w, "no ONVIF camera answered (cameras on another subnet do not hear the multicast probe)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ONVIF\tMAKE\tMODEL\tFIRMWARE\tNAME\tMAIN STREAM\tSUB STREAM\tNOTE")
	for _, d := range devs {
		note := d.Error
		if d.Unauthorized {
			note = "wrong username or password (--username, --password-file)"
		}
		if off := d.ClockOffset.Round(time.Second); note == "" && (off > time.Minute || off < -time.Minute) {
			note = "camera clock off by " + off.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.XAddr, dash(d.Manufacturer), dash(d.Model), dash(d.Firmware), dash(d.Name), dash(d.MainURI), dash(d.SubURI), note)
	}
	_ = tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
