package verify

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the result of Run: the matrix of expected against observed
// reachability with the reason for each cell, and the checks.
type Report struct {
	OK             bool   `json:"ok"`
	SwitchReflects bool   `json:"switch_reflects"`
	ReflectsSource string `json:"switch_reflects_source"` // "configured" or "detected"
	ReflectDetail  string `json:"switch_reflects_detail,omitempty"`
	Parent         string `json:"parent"` // "NETNS/IFNAME"
	// Endpoints are the probed endpoints, host stack included.
	Endpoints []Endpoint   `json:"-"`
	Pairs     []PairResult `json:"pairs"`
	// PairsProbed counts the ordered pairs actually probed (not
	// NotProbed) of PairsTotal.
	PairsProbed int           `json:"pairs_probed"`
	PairsTotal  int           `json:"pairs_total"`
	Checks      []CheckResult `json:"checks"`
	Capture     *CaptureInfo  `json:"capture,omitempty"`
	// Wait is how long each probe waited for an answer.
	Wait     time.Duration `json:"-"`
	Duration time.Duration `json:"-"`
}

// PairResult is one cell of the matrix.
type PairResult struct {
	From     string `json:"from"` // "NETNS/IFNAME"; the host stack is "NETNS/PARENT"
	To       string `json:"to"`
	FromName string `json:"from_name,omitempty"`
	ToName   string `json:"to_name,omitempty"`
	Expected Reach  `json:"expected"` // reachable | blocked
	Observed Reach  `json:"observed"` // reachable | blocked | error | not-probed
	OK       bool   `json:"ok"`
	Why      string `json:"why"`      // the model's reason
	Path     string `json:"path"`     // how a frame travels: local, reflected, wire, beyond, none
	Probe    string `json:"probe"`    // what the probe saw
	Evidence string `json:"evidence"` // what the capture on the parent saw
	// Family is the address family of expected/observed: 4, or 6 for a
	// pair with IPv6 addresses only (0: not probed).
	Family int `json:"family,omitempty"`
	// ExpectedV6 and ObservedV6 are the IPv6 probe of a pair probed in
	// both families.
	ExpectedV6 Reach `json:"expected_ipv6,omitempty"`
	ObservedV6 Reach `json:"observed_ipv6,omitempty"`
}

// CheckResult is one check; JUnit makes one test case of each.
type CheckResult struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Skipped bool   `json:"skipped,omitempty"`
	Detail  string `json:"detail"`
}

// CaptureInfo is what the capture on the parent collected.
type CaptureInfo struct {
	Frames      int    `json:"frames"`
	KernelDrops uint64 `json:"kernel_drops"`
}

// endpointJSON is an endpoint in the JSON report: the id pairs use, the
// name shown, and its namespace's identity.
type endpointJSON struct {
	ID        string         `json:"id"`   // as PairResult.From/To
	Name      string         `json:"name"` // as PairResult.FromName/ToName
	Interface string         `json:"interface"`
	Kind      string         `json:"kind"`
	Mode      string         `json:"mode,omitempty"`
	MAC       string         `json:"mac,omitempty"`
	Addrs     []string       `json:"addrs,omitempty"`
	Namespace *NetNSIdentity `json:"netns,omitempty"`
}

// MarshalJSON adds the endpoints, wait_ms and duration_ms to the JSON form.
func (r *Report) MarshalJSON() ([]byte, error) {
	type plain Report
	eps := make([]endpointJSON, len(r.Endpoints))
	for i, ep := range r.Endpoints {
		e := endpointJSON{ID: EndpointID(ep), Name: displayName(ep), Interface: ep.Interface, Kind: ep.Kind, Mode: ep.Mode, Namespace: ep.Namespace}
		if len(ep.MAC) > 0 {
			e.MAC = ep.MAC.String()
		}
		for _, a := range ep.Addrs {
			e.Addrs = append(e.Addrs, a.String())
		}
		eps[i] = e
	}
	return json.Marshal(struct {
		*plain
		Endpoints  []endpointJSON `json:"endpoints"`
		WaitMS     float64        `json:"wait_ms"`
		DurationMS float64        `json:"duration_ms"`
	}{(*plain)(r), eps, float64(r.Wait.Microseconds()) / 1000, float64(r.Duration.Microseconds()) / 1000})
}

// WriteJSON writes the report as one JSON object (indented when indent).
func (r *Report) WriteJSON(w io.Writer, indent bool) error {
	enc := json.NewEncoder(w)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(r)
}

// WriteTable writes the readable report: the switch, the matrix (rows
// from, columns to; + reachable, - blocked, ! probe error, ? not probed; a
// cell that disagrees with the model shows observed/expected and a *), every
// pair with its reason, and the checks.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	refl := "no"
	if r.SwitchReflects {
		refl = "yes"
	}
	fmt.Fprintf(&b, "parent %s; switch reflects: %s (%s", r.Parent, refl, r.ReflectsSource)
	if r.ReflectDetail != "" {
		fmt.Fprintf(&b, ": %s", r.ReflectDetail)
	}
	b.WriteString(")\n")
	fmt.Fprintf(&b, "probed %d of %d ordered pairs\n", r.PairsProbed, r.PairsTotal)
	if r.Capture != nil {
		fmt.Fprintf(&b, "captured %d frames on the parent (%d dropped by the kernel); probes waited %v\n", r.Capture.Frames, r.Capture.KernelDrops, r.Wait.Round(time.Millisecond))
	}
	b.WriteString("\n")

	names := make([]string, len(r.Endpoints))
	for i, ep := range r.Endpoints {
		names[i] = displayName(ep)
	}
	cell := map[[2]string]PairResult{}
	for _, p := range r.Pairs {
		cell[[2]string{p.From, p.To}] = p
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "from \\ to")
	for _, n := range names {
		fmt.Fprintf(tw, "\t%s", n)
	}
	fmt.Fprintln(tw, "\t")
	for i, from := range r.Endpoints {
		fmt.Fprint(tw, names[i])
		for _, to := range r.Endpoints {
			p, ok := cell[[2]string{EndpointID(from), EndpointID(to)}]
			switch {
			case !ok:
				fmt.Fprint(tw, "\t·")
			case p.OK:
				fmt.Fprintf(tw, "\t%s", p.Observed.Symbol())
			default:
				fmt.Fprintf(tw, "\t%s/%s*", p.Observed.Symbol(), p.Expected.Symbol())
			}
		}
		fmt.Fprintln(tw, "\t")
	}
	tw.Flush()
	b.WriteString("+ reachable  - blocked  ! probe error  ? not probed  x/y* observed x, model says y\n\n")

	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FROM\tTO\tEXPECTED\tOBSERVED\tRESULT\tWHY")
	for _, p := range r.Pairs {
		mark := "ok"
		if !p.OK {
			mark = "MISMATCH"
		} else if p.Observed == NotProbed {
			mark = "skip"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.FromName, p.ToName, p.Expected, p.Observed, mark, p.Why)
		if !p.OK && p.ObservedV6 != 0 && p.ObservedV6 != p.ExpectedV6 {
			fmt.Fprintf(tw, "\t\t\t\t\t  IPv6: expected %s, observed %s\n", p.ExpectedV6, p.ObservedV6)
		}
		if !p.OK || p.Observed == NotProbed {
			fmt.Fprintf(tw, "\t\t\t\t\t  probe: %s\n", p.Probe)
			if p.Evidence != "" {
				fmt.Fprintf(tw, "\t\t\t\t\t  %s\n", p.Evidence)
			}
		}
	}
	tw.Flush()
	b.WriteString("\n")
	for _, c := range r.Checks {
		mark := "PASS"
		switch {
		case !c.OK:
			mark = "FAIL"
		case c.Skipped:
			mark = "SKIP"
		}
		fmt.Fprintf(&b, "%-4s %-15s %s\n", mark, c.Name, c.Detail)
	}
	if r.OK {
		b.WriteString("\nverify: everything matches the model\n")
	} else {
		b.WriteString("\nverify: MISMATCH (see above)\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// JUnit XML, the subset CI systems read.
type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string `xml:"name,attr"`
	Tests    int    `xml:"tests,attr"`
	Failures int    `xml:"failures,attr"`
	Skipped  int    `xml:"skipped,attr"`
	Time     string `xml:"time,attr"`
	// Properties carry pairs_probed and pairs_total.
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	Skipped   *junitSkipped `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

type junitSkipped struct {
	Message string `xml:"message,attr"`
}

// WriteJUnit writes the report as JUnit XML: one test suite for the parent,
// one test case per check. The reachability case's failure lists the cells
// that disagree with the model.
func (r *Report) WriteJUnit(w io.Writer) error { return WriteJUnit(w, r) }

// WriteJUnit writes reports as one JUnit XML document: a test suite per
// report (per parent), one test case per check.
func WriteJUnit(w io.Writer, reps ...*Report) error {
	var all junitSuites
	for _, r := range reps {
		all.Suites = append(all.Suites, r.junitSuite())
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(all); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func (r *Report) junitSuite() junitSuite {
	s := junitSuite{Name: "vmlink verify " + r.Parent, Time: fmt.Sprintf("%.3f", r.Duration.Seconds()),
		Properties: []junitProperty{{"pairs_probed", fmt.Sprint(r.PairsProbed)}, {"pairs_total", fmt.Sprint(r.PairsTotal)}}}
	for _, c := range r.Checks {
		tc := junitCase{Name: c.Name, ClassName: "vmlink.verify", SystemOut: c.Detail}
		switch {
		case !c.OK:
			tc.Failure = &junitFailure{Message: firstLine(c.Detail), Text: c.Detail}
			s.Failures++
		case c.Skipped:
			tc.Skipped = &junitSkipped{Message: c.Detail}
			s.Skipped++
		}
		s.Cases = append(s.Cases, tc)
	}
	s.Tests = len(s.Cases)
	return s
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, ";\n"); i >= 0 {
		return s[:i]
	}
	return s
}
