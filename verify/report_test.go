package verify

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"slices"
	"strings"
	"testing"
	"time"
)

func sampleReport() *Report {
	return &Report{
		OK: false, SwitchReflects: true, ReflectsSource: "detected", Parent: "p/h0",
		Endpoints: []Endpoint{
			{Name: "a", NetNS: "na", Interface: "a0", Kind: KindMacvlan, Mode: "vepa"},
			{NetNS: "p", Interface: "h0", Kind: KindHost, Name: "host"},
		},
		Pairs: []PairResult{
			{From: "na/a0", To: "p/h0", FromName: "a", ToName: "host", Expected: Reachable, Observed: Blocked, Why: "the switch reflects", Probe: "no ARP reply", Evidence: "on the parent: ARP request out 2 in 0"},
			{From: "p/h0", To: "na/a0", FromName: "host", ToName: "a", Expected: Reachable, Observed: Reachable, OK: true, Why: "the switch reflects"},
		},
		Checks: []CheckResult{
			{Name: CheckReachability, OK: false, Detail: "1 of 2 pairs agree; na/a0→p/h0 expected reachable"},
			{Name: CheckVLANTags, OK: true, Skipped: true, Detail: "skipped: no capture"},
			{Name: CheckMACSources, OK: true, Detail: "fine"},
		},
		PairsProbed: 2, PairsTotal: 2,
		Wait: 150 * time.Millisecond, Duration: 400 * time.Millisecond,
	}
}

func TestReportJSON(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteJSON(&b, false); err != nil {
		t.Fatal(err)
	}
	var got struct {
		OK             *bool `json:"ok"`
		SwitchReflects *bool `json:"switch_reflects"`
		Pairs          []struct {
			From, To, Expected, Observed, Why string
		} `json:"pairs"`
		Checks []struct {
			Name   string `json:"name"`
			OK     *bool  `json:"ok"`
			Detail string `json:"detail"`
		} `json:"checks"`
		WaitMS      float64 `json:"wait_ms"`
		PairsProbed *int    `json:"pairs_probed"`
		Endpoints   []struct {
			ID, Name string
		} `json:"endpoints"`
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, b.String())
	}
	if got.OK == nil || *got.OK || got.SwitchReflects == nil || !*got.SwitchReflects {
		t.Fatalf("ok/switch_reflects wrong: %s", b.String())
	}
	if len(got.Pairs) != 2 || got.Pairs[0].From != "na/a0" || got.Pairs[0].To != "p/h0" ||
		got.Pairs[0].Expected != "reachable" || got.Pairs[0].Observed != "blocked" || got.Pairs[0].Why == "" {
		t.Fatalf("pairs: %+v", got.Pairs)
	}
	if len(got.Checks) != 3 || got.Checks[0].Name != "reachability" || got.Checks[0].OK == nil || *got.Checks[0].OK {
		t.Fatalf("checks: %+v", got.Checks)
	}
	if got.WaitMS != 150 {
		t.Fatalf("wait_ms %v", got.WaitMS)
	}
	if got.PairsProbed == nil || *got.PairsProbed != 2 {
		t.Fatalf("pairs_probed missing or wrong: %s", b.String())
	}
	if len(got.Endpoints) != 2 || got.Endpoints[0].ID != "na/a0" || got.Endpoints[0].Name != "a" {
		t.Fatalf("endpoints: %+v", got.Endpoints)
	}
}

func TestReportJUnit(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteJUnit(&b); err != nil {
		t.Fatal(err)
	}
	var got junitSuites
	if err := xml.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, b.String())
	}
	if len(got.Suites) != 1 {
		t.Fatalf("%d suites", len(got.Suites))
	}
	s := got.Suites[0]
	if s.Tests != 3 || s.Failures != 1 || s.Skipped != 1 || len(s.Cases) != 3 {
		t.Fatalf("suite %+v", s)
	}
	if s.Cases[0].Failure == nil || !strings.Contains(s.Cases[0].Failure.Text, "na/a0→p/h0") {
		t.Fatalf("reachability case: %+v", s.Cases[0])
	}
	if s.Cases[1].Skipped == nil || s.Cases[2].Failure != nil {
		t.Fatalf("cases: %+v", s.Cases)
	}
	if !slices.Equal(s.Properties, []junitProperty{{"pairs_probed", "2"}, {"pairs_total", "2"}}) {
		t.Fatalf("properties %+v, want the pairs probed and in all", s.Properties)
	}
}

func TestReportTable(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"switch reflects: yes (detected)",
		"-/+*",     // a→host: observed blocked, model reachable
		"MISMATCH", // in the pair list
		"probe: no ARP reply",
		"ARP request out 2 in 0",
		"FAIL reachability",
		"SKIP vlan-tags",
		"probed 2 of 2 ordered pairs",
		"PASS mac-sources",
		"verify: MISMATCH",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestReachText(t *testing.T) {
	for r, want := range map[Reach]string{Reachable: "reachable", Blocked: "blocked", ProbeError: "error", NotProbed: "not-probed", 0: "Reach(0)"} {
		if r.String() != want {
			t.Errorf("%d: %q, want %q", r, r.String(), want)
		}
	}
	if Reachable.Symbol() == Blocked.Symbol() || Blocked.Symbol() == ProbeError.Symbol() {
		t.Fatal("symbols not distinct")
	}
}

// The JSON contract, key by key: {"ok", "switch_reflects",
// "pairs": [{"from", "to", "expected", "observed", "why"}], "checks":
// [{"name", "ok", "detail"}]}, with the host stack as "NETNS/PARENT" and
// the verdict words reachable, blocked, error. Extra keys are allowed;
// these must be present with exactly these types and values.
func TestReportJSONContract(t *testing.T) {
	// The host stack's ID is NETNS/PARENT.
	if id := EndpointID(Model(modelTopo("bridge", "bridge", false)).Endpoints[iHost]); id != "p/h0" {
		t.Errorf("host stack ID %q, want p/h0 (NETNS/PARENT)", id)
	}
	rep := sampleReport()
	rep.Pairs = append(rep.Pairs, PairResult{From: "na/a0", To: "nb/b0", Expected: Blocked, Observed: ProbeError, Why: "private mode"})
	var b bytes.Buffer
	if err := rep.WriteJSON(&b, false); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, b.String())
	}
	if v, ok := got["ok"].(bool); !ok || v {
		t.Errorf(`"ok" = %#v, want false`, got["ok"])
	}
	if v, ok := got["switch_reflects"].(bool); !ok || !v {
		t.Errorf(`"switch_reflects" = %#v, want true`, got["switch_reflects"])
	}
	pairs, ok := got["pairs"].([]any)
	if !ok || len(pairs) != 3 {
		t.Fatalf(`"pairs" = %#v`, got["pairs"])
	}
	want := []map[string]string{
		{"from": "na/a0", "to": "p/h0", "expected": "reachable", "observed": "blocked", "why": "the switch reflects"},
		{"from": "p/h0", "to": "na/a0", "expected": "reachable", "observed": "reachable", "why": "the switch reflects"},
		{"from": "na/a0", "to": "nb/b0", "expected": "blocked", "observed": "error", "why": "private mode"},
	}
	for i, p := range pairs {
		m, ok := p.(map[string]any)
		if !ok {
			t.Fatalf("pair %d = %#v", i, p)
		}
		for k, v := range want[i] {
			if s, ok := m[k].(string); !ok || s != v {
				t.Errorf("pair %d %q = %#v, want %q", i, k, m[k], v)
			}
		}
	}
	checks, ok := got["checks"].([]any)
	if !ok || len(checks) != 3 {
		t.Fatalf(`"checks" = %#v`, got["checks"])
	}
	for i, c := range checks {
		m, ok := c.(map[string]any)
		if !ok {
			t.Fatalf("check %d = %#v", i, c)
		}
		wantC := rep.Checks[i]
		if s, ok := m["name"].(string); !ok || s != wantC.Name {
			t.Errorf("check %d name %#v, want %q", i, m["name"], wantC.Name)
		}
		if v, ok := m["ok"].(bool); !ok || v != wantC.OK {
			t.Errorf("check %d ok %#v, want %v", i, m["ok"], wantC.OK)
		}
		if s, ok := m["detail"].(string); !ok || s != wantC.Detail {
			t.Errorf("check %d detail %#v, want %q", i, m["detail"], wantC.Detail)
		}
	}
}

// A dual-stack cell whose IPv6 probe disagrees shows as a mismatch with
// the IPv6 verdicts spelled out, and the JSON carries them.
func TestReportIPv6Mismatch(t *testing.T) {
	rep := sampleReport()
	rep.Pairs[1].OK = false
	rep.Pairs[1].ExpectedV6, rep.Pairs[1].ObservedV6 = Reachable, Blocked
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "IPv6: expected reachable, observed blocked") {
		t.Errorf("table lacks the IPv6 verdicts:\n%s", b.String())
	}
	b.Reset()
	if err := rep.WriteJSON(&b, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"expected_ipv6":"reachable","observed_ipv6":"blocked"`) {
		t.Errorf("JSON lacks the IPv6 verdicts: %s", b.String())
	}
	if strings.Count(b.String(), "expected_ipv6") != 1 {
		t.Errorf("single-stack cells carry IPv6 verdicts: %s", b.String())
	}
}
