package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"villagehub/hub/alert"
)

// notifyCommand: villagehub notify [--config FILE] test [--hub URL] NAME
//
// It sends a test message through one notifier and prints the channel's
// exact answer. With the hub running it asks the hub (POST
// /api/v1/notifiers/NAME/test), so a Zalo token chain is only ever used by
// the hub itself; only when nothing answers at the hub's address does it
// send directly from this process.
func notifyCommand(args []string, stdout, stderr io.Writer) int {
	cfg, args, err := configFlag(args)
	if err != nil {
		fmt.Fprintln(stderr, "villagehub notify:", err)
		return 1
	}
	if len(args) == 0 || args[0] != "test" {
		fmt.Fprintln(stderr, "usage: villagehub notify [--config FILE] test [--hub URL] NAME")
		return 2
	}
	fs := flag.NewFlagSet("notify test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scheme := "http"
	if cfg.HTTP.TLS.CertFile != "" {
		scheme = "https"
	}
	hub := fs.String("hub", scheme+"://"+cfg.HTTP.Addr, "the running hub's address")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: villagehub notify [--config FILE] test [--hub URL] NAME")
		return 2
	}
	name := fs.Arg(0)
	var names []string
	for _, n := range cfg.Alerts.Notifiers {
		names = append(names, n.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	res, err := testThroughHub(ctx, *hub, name)
	if isRefused(err) {
		fmt.Fprintf(stdout, "no hub answers at %s; sending from this process\n", *hub)
		res, err = alert.TestSend(ctx, cfg.Alerts, name, alert.Deps{DataDir: cfg.DataDir, HubID: cfg.HubID,
			PublicURL: cfg.HTTP.PublicURL, Location: cfg.Location, Prefix: cfg.TopicPrefix})
	}
	if errors.Is(err, alert.ErrUnknownNotifier) {
		fmt.Fprintf(stderr, "villagehub notify: no notifier %q (the config has: %s)\n", name, strings.Join(names, ", "))
		return 1
	}
	if err != nil {
		fmt.Fprintln(stderr, "villagehub notify:", err)
		return 1
	}
	printTest(stdout, res)
	if !res.OK {
		return 1
	}
	return 0
}

// testThroughHub asks the running hub to send the test message. An admin
// token, if needed, comes from VILLAGEHUB_API_TOKEN.
func testThroughHub(ctx context.Context, hub, name string) (alert.TestResult, error) {
	var res alert.TestResult
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(hub, "/")+"/api/v1/notifiers/"+name+"/test", nil)
	if err != nil {
		return res, err
	}
	if tok := os.Getenv("VILLAGEHUB_API_TOKEN"); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch resp.StatusCode {
	case http.StatusOK:
		return res, json.Unmarshal(body, &res)
	case http.StatusNotFound:
		return res, alert.ErrUnknownNotifier
	case http.StatusUnauthorized, http.StatusForbidden:
		return res, fmt.Errorf("the hub answered %s: set VILLAGEHUB_API_TOKEN to an admin token (villagehub token)", resp.Status)
	}
	return res, fmt.Errorf("the hub answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
}

func isRefused(err error) bool {
	var op *net.OpError
	return errors.Is(err, syscall.ECONNREFUSED) || (errors.As(err, &op) && op.Op == "dial")
}

func printTest(w io.Writer, r alert.TestResult) {
	status := "OK"
	if !r.OK {
		status = "FAILED (" + r.Reason + "): " + r.Error
	}
	fmt.Fprintf(w, "notifier %s (%s): %s in %d ms\n", r.Notifier, r.Type, status, r.DurationMS)
	for _, a := range r.Answer {
		fmt.Fprintln(w, "answer:", a)
	}
	if r.Text != "" {
		fmt.Fprintln(w, "message sent:")
		for _, l := range strings.Split(r.Text, "\n") {
			fmt.Fprintln(w, "  "+l)
		}
	}
}
