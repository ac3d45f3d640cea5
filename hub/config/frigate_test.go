package config

import "testing"

func TestFrigateValidation(t *testing.T) {
	ps := problems(t, `hub_id: x
sites:
  - { id: s1, name: "One" }
frigate:
  - { name: nvr, topic_prefix: frigate, site: s1, cameras: { front_door: gate } }
  - name: nvr
    topic_prefix: frigate
    site: nowhere
  - { name: Bad, topic_prefix: village, site: s1 }
  - { name: b, topic_prefix: "fri/#", site: s1, cameras: { "a/b": Gate } }
`)
	want := map[string]int{
		"frigate[1].name":         6,
		"frigate[1].topic_prefix": 7,
		"frigate[1].site":         8,
		"frigate[2].name":         9,
		"frigate[2].topic_prefix": 9,
		"frigate[3].topic_prefix": 10,
		"frigate[3].cameras":      10,
		"frigate[3].cameras.a/b":  0, // map keys with a slash are not located; the key is still named
	}
	got := map[string]int{}
	for _, p := range ps {
		got[p.Key] = p.Line
	}
	for k, line := range want {
		if l, ok := got[k]; !ok || (line != 0 && l != line) {
			t.Errorf("problem for %s at line %d (%v), want line %d (all: %+v)", k, l, ok, line, ps)
		}
	}
	if len(ps) != len(want) {
		t.Errorf("%d problems, want %d: %+v", len(ps), len(want), ps)
	}
	c, err := Parse("v.yaml", []byte("sites: [{ id: s1, name: One }]\nfrigate: [{ name: nvr, site: s1 }]\n"))
	if err == nil {
		err = c.Validate()
	}
	if err != nil || c.Frigate[0].TopicPrefix != "frigate" {
		t.Fatalf("default topic_prefix: %v %+v", err, c.Frigate)
	}
}
