package gateway_test

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"villagehub/hub/testenv"
)

// answerEater forwards each connection to a gateway instance and, once
// the instance has answered (so it has counted the scan), closes the
// connection without passing the answer on: to the load balancer the
// instance failed while answering, as when it dies right after counting.
type answerEater struct{ ln net.Listener }

func newAnswerEater(t *testing.T, backend string) *answerEater {
	t.Helper()
	ln, err := net.Listen("tcp", testenv.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, err := net.Dial("tcp", backend)
				if err != nil {
					return
				}
				defer b.Close()
				go func() { _, _ = io.Copy(b, c) }()
				// The first line of the answer: the instance has journaled
				// the scan before it writes it.
				_, _ = bufio.NewReader(b).ReadString('\n')
			}()
		}
	}()
	return &answerEater{ln: ln}
}

// TestRetriedRequestCountsOnce: nginx (round robin, X-Request-ID from
// $request_id) in front of two gateway instances, the first of which
// counts each scan and then fails to answer; nginx retries those requests
// on the second instance, which counts them too. With
// qr.request_id_header both instances give the scan the same id and time,
// so the central InfluxDB and the village hub count each phone's scan
// once, while the instances' own counters show the retries happened.
func TestRetriedRequestCountsOnce(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	influxDB := testenv.StartInflux(t)
	village, stopVillage := startVillage(t, t.TempDir(), mq.URL(), influxDB.URL())
	defer stopVillage()

	gws := startInstances(t, 2, mq.URL(), influxDB.URL())
	for _, g := range gws {
		testenv.WaitFor(t, 20*time.Second, "targets at "+g.addr, func() bool { return targetsOf(t, g.addr) == 3 })
	}
	eater := newAnswerEater(t, gws[0].addr)
	lb := testenv.StartNginx(t, testenv.NginxOptions{Upstreams: []string{eater.ln.Addr().String(), gws[1].addr}, KeepFailed: true})

	const phones = 10
	target := "https://example.vn/cho-ban/sap-1"
	for i := range phones {
		newPhone(i, phoneAgents[i%len(phoneAgents)]).mustRedirect(t, lb.URL()+"/q/tan-ngu-2/market-01", target)
	}
	newPhone(0, phoneAgents[0]).mustRedirect(t, lb.URL()+"/q/tan-ngu-2/market-01", target) // a duplicate

	human := func(g *instance) float64 {
		v, _ := testenv.Scrape(t, "http://"+g.addr).Value("villagehub_gateway_scans_total", "board=market-01", "class=human")
		return v
	}
	h0, h1 := human(gws[0]), human(gws[1])
	if h0 < 3 || h1 != phones+1 {
		t.Fatalf("instance 0 counted %v scans (each then retried), instance 1 %v: want at least 3 retried and all %d at instance 1", h0, h1, phones+1)
	}
	want := boardCounts{scans: phones + 1, unique: phones}
	testenv.WaitFor(t, 30*time.Second, "the village's counts", func() bool { return villageCounts(village, "market-01") == want })
	testenv.WaitFor(t, 30*time.Second, "the central counts", func() bool {
		c := influxCounts(t, influxDB)
		return c["market-01/scans"] == phones+1 && c["market-01/unique"] == phones
	})
	// Nothing more arrives later (a second point would be a second count).
	if c := influxCounts(t, influxDB); c["market-01/scans"] != phones+1 {
		t.Fatalf("central counts %v", c)
	}
	if got := villageCounts(village, "market-01"); got != want {
		t.Fatalf("village counts %+v, want %+v", got, want)
	}
	t.Logf("%v scans counted by the failing instance and retried; central and village counted %d", h0, phones+1)
}
