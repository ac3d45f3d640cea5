package onvifcam_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"villagehub/devices/onvifcam"
	"villagehub/hub/onvif"
	"villagehub/hub/testenv"
)

// An unrenewed subscription expires on the camera's clock and its
// reference then answers ResourceUnknownFault, as a real camera's does;
// so does a reference from before a reboot.
func TestSubscriptionExpiryAndReboot(t *testing.T) {
	cam, err := onvifcam.New(onvifcam.Config{Addr: "127.0.0.1:0", Username: "u", Password: "p", ClockSkew: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer cam.Close()
	c := &onvif.Client{XAddr: cam.XAddr(), Username: "u", Password: "p"}
	ctx := context.Background()
	sub, err := c.CreatePullPointSubscription(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sub.Address, "/onvif/Subscription?Idx=") {
		t.Fatalf("address %q", sub.Address)
	}
	ns, err := c.PullMessages(ctx, sub, 0, 10)
	if err != nil || len(ns) != 2 || ns[0].PropertyOperation != "Initialized" {
		t.Fatalf("first pull: %+v, %v", ns, err)
	}
	var f *onvif.Fault
	testenv.WaitFor(t, 5*time.Second, "expiry", func() bool {
		_, err := c.PullMessages(ctx, sub, 200*time.Millisecond, 10)
		return errors.As(err, &f)
	})
	if !strings.HasSuffix(f.Subcode, "ResourceUnknownFault") {
		t.Fatalf("fault %+v", f)
	}
	if cam.Stats().LiveSubscriptions != 0 {
		t.Fatal("expired subscription still live")
	}

	sub, err = c.CreatePullPointSubscription(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := cam.Reboot(); err != nil {
		t.Fatal(err)
	}
	// The first request may meet the connection the reboot closed (EOF);
	// the next one reaches the rebooted camera, which no longer knows the
	// reference.
	err = c.Renew(ctx, sub, time.Minute)
	if !errors.As(err, &f) {
		err = c.Renew(ctx, sub, time.Minute)
	}
	if !errors.As(err, &f) || !strings.HasSuffix(f.Subcode, "ResourceUnknownFault") {
		t.Fatalf("renew after reboot: %v", err)
	}
}

// A captured request cannot be replayed: the camera remembers nonces.
func TestNonceReplayRefused(t *testing.T) {
	cam, err := onvifcam.New(onvifcam.Config{Addr: "127.0.0.1:0", Username: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	defer cam.Close()
	nonce := []byte("replayed-nonce!!")
	created := cam.Now().Format("2006-01-02T15:04:05.000Z")
	body := `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header><Security><UsernameToken><Username>u</Username><Password>` +
		onvif.PasswordDigest(nonce, created, "p") + `</Password><Nonce>` + base64.StdEncoding.EncodeToString(nonce) + `</Nonce><Created>` + created +
		`</Created></UsernameToken></Security></s:Header><s:Body><GetDeviceInformation/></s:Body></s:Envelope>`
	post := func() int {
		resp, err := http.Post(cam.XAddr(), "application/soap+xml", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(); code != http.StatusOK {
		t.Fatalf("first: HTTP %d", code)
	}
	if code := post(); code != http.StatusBadRequest {
		t.Fatalf("replay: HTTP %d, want 400 NotAuthorized", code)
	}
	if n := cam.Stats().AuthFailures; n != 1 {
		t.Fatalf("%d auth failures, want 1", n)
	}
}
