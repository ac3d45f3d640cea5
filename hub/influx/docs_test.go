package influx_test

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"villagehub/hub/influx"
	"villagehub/hub/testenv"
)

// docLines is docs/influxdb.md's block of example line protocol.
func docLines(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../docs/influxdb.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)One line of line protocol per measurement, as the writer encodes it:\n\n```\n(.*?)```").FindSubmatch(b)
	if m == nil {
		t.Fatal("docs/influxdb.md: no example line protocol block")
	}
	return strings.Split(strings.TrimSpace(string(m[1])), "\n")
}

// TestDocumentedLineProtocol: docs/influxdb.md's example lines are exactly
// what the constructors and the writer's encoder make of a probe's and a
// board's real values (the probe names codecs in lower case, "h264"), and
// InfluxDB stores them with the documented types: each line, written
// through the Writer to a real InfluxDB and read back, gives the same
// fields, values and types (issue 17, item 11).
func TestDocumentedLineProtocol(t *testing.T) {
	t0 := time.Unix(0, 1795741323000000000)
	points := []influx.Point{
		influx.QRScans("tan-ngu-2", "market-07", "mqtt", 3, t0),
		influx.QRScans("tan-ngu-2", "market-07", "printed", 1, t0),
		influx.QRVisits("tan-ngu-2", "market-07", "bot", 1, time.Unix(0, 1795741324511938261)),
		influx.MotionStart("tan-ngu-2", "gate", "yard", 0.91, t0),
		influx.MotionEnd("tan-ngu-2", "gate", 12500*time.Millisecond, time.Unix(0, 1795741335500000000)),
		influx.DeviceStatus("tan-ngu-2", "camera", "gate", false, t0),
		influx.CameraHealth("tan-ngu-2", "gate", influx.Health{Up: true, FPS: 25, BitrateBPS: 2048000, Width: 1920, Height: 1080,
			KeyframeInterval: 50, Codec: "h264", ProbeDuration: 820 * time.Millisecond}, t0),
		influx.CameraHealth("tan-ngu-2", "gate", influx.Health{ProbeDuration: 5 * time.Second, Reason: "timeout"}, time.Unix(0, 1795741383000000000)),
		influx.CameraDetection("tan-ngu-2", "gate", "person", true, 0.87, "yard", 0, t0),
		influx.CameraDetection("tan-ngu-2", "gate", "person", false, 0.91, "yard,road", 8200*time.Millisecond, time.Unix(0, 1795741331200000000)),
		influx.InputStatus("tan-ngu-2", "frigate/nvr", true, t0),
	}
	var got []string
	for i := range points {
		b, err := influx.AppendLine(nil, &points[i])
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.TrimSuffix(string(b), "\n"))
	}
	want := docLines(t)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("docs/influxdb.md example lines differ from the encoder's; put these in the doc:\n%s", strings.Join(got, "\n"))
	}

	// Through the writer into a real InfluxDB, and back.
	in := testenv.StartInflux(t)
	w := startWriter(t, testConfig(in, t.TempDir()))
	if err := w.Append(points); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, w, 30*time.Second)
	rows := query(t, in, `from(bucket: "`+testenv.InfluxBucket+`")
  |> range(start: 2026-11-01T00:00:00Z, stop: 2027-01-01T00:00:00Z)`)
	stored := map[string]any{} // "measurement,tags field time" -> value
	for _, r := range rows {
		var tags []string
		for k, v := range r {
			if !strings.HasPrefix(k, "_") && k != "result" && k != "table" {
				tags = append(tags, k+"="+v.(string))
			}
		}
		sortStrings(tags)
		key := r["_measurement"].(string) + "," + strings.Join(tags, ",") + " " + r["_field"].(string) + " " + strconv.FormatInt(r["_time"].(time.Time).UnixNano(), 10)
		stored[key] = r["_value"]
	}
	n := 0
	for _, line := range want {
		parts := strings.SplitN(line, " ", 2)
		if i := strings.LastIndexByte(parts[1], ' '); i > 0 {
			parts = []string{parts[0], parts[1][:i], parts[1][i+1:]}
		}
		if len(parts) != 3 {
			t.Fatalf("doc line %q is not 'series fields time'", line)
		}
		for _, f := range splitFields(parts[1]) {
			k, v, _ := strings.Cut(f, "=")
			var val any
			switch {
			case strings.HasPrefix(v, `"`):
				val = strings.Trim(v, `"`)
			case strings.HasSuffix(v, "i"):
				val, _ = strconv.ParseInt(strings.TrimSuffix(v, "i"), 10, 64)
			case v == "true" || v == "false":
				val = v == "true"
			default:
				val, _ = strconv.ParseFloat(v, 64)
			}
			key := parts[0] + " " + k + " " + parts[2]
			if s, ok := stored[key]; !ok {
				t.Errorf("InfluxDB holds no %s", key)
			} else if s != val {
				t.Errorf("InfluxDB holds %s = %#v, the doc says %#v", key, s, val)
			}
			n++
		}
	}
	if n != len(stored) {
		t.Errorf("InfluxDB holds %d field values, the doc's lines have %d", len(stored), n)
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// splitFields splits a line's field set at the commas outside quotes.
func splitFields(s string) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}
