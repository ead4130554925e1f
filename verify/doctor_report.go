package verify

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// Finding ids: stable names scripts can match on (`vmlink doctor -j`).
const (
	FindHostIsolation   = "host-isolation"
	FindWirelessParent  = "wireless-parent"
	FindParentDown      = "parent-down"
	FindNoCarrier       = "no-carrier"
	FindNo8021Q         = "no-8021q"
	FindDuplicateMAC    = "duplicate-mac"
	FindOverlap         = "overlapping-subnets"
	FindMTUAboveParent  = "mtu-above-parent"
	FindVEPANoReflect   = "vepa-no-reflection"
	FindChildMACDropped = "child-mac-unanswered"
)

// Severities of a finding.
const (
	SeverityError   = "error"   // something users rely on cannot work
	SeverityWarning = "warning" // works, but not as users usually expect
)

// Finding is one diagnosed problem: what is wrong, why it matters (the
// kernel's or the wire's reason) and the commands that fix it.
type Finding struct {
	ID       string `json:"id"`
	Severity string `json:"severity"`
	// Subject is what the finding is about, as the user names it:
	// "eth0", "ns1/mv0", a MAC address or a pair of networks.
	Subject string `json:"subject"`
	What    string `json:"what"`
	Why     string `json:"why"`
	// Fix is the commands (or, where no command can do it, the step) that
	// remove the cause, in order.
	Fix []string `json:"fix"`
}

// Skip is a check doctor could not make, and why: a diagnosis never claims
// a check it did not run.
type Skip struct {
	Check   string `json:"check"`
	Subject string `json:"subject"`
	Reason  string `json:"reason"`
}

// DoctorReport is everything one doctor run found.
type DoctorReport struct {
	// Parents are the interfaces inspected, as "NAME" or "NETNS/NAME".
	Parents  []string  `json:"parents"`
	Findings []Finding `json:"findings"`
	Skipped  []Skip    `json:"skipped"`
}

// OK reports whether nothing was found.
func (r *DoctorReport) OK() bool { return len(r.Findings) == 0 }

func (r *DoctorReport) add(f Finding) { r.Findings = append(r.Findings, f) }

func (r *DoctorReport) skip(check, subject, format string, args ...any) {
	r.Skipped = append(r.Skipped, Skip{Check: check, Subject: subject, Reason: fmt.Sprintf(format, args...)})
}

// sort orders findings errors first, then by id and subject, so output is
// stable from run to run.
func (r *DoctorReport) sort() {
	rank := func(s string) int {
		if s == SeverityError {
			return 0
		}
		return 1
	}
	sort.SliceStable(r.Findings, func(i, j int) bool {
		a, b := r.Findings[i], r.Findings[j]
		if rank(a.Severity) != rank(b.Severity) {
			return rank(a.Severity) < rank(b.Severity)
		}
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return a.Subject < b.Subject
	})
}

// WriteJSON writes the report as one JSON object; findings and skipped are
// arrays, never null.
func (r *DoctorReport) WriteJSON(w io.Writer, pretty bool) error {
	out := *r
	if out.Parents == nil {
		out.Parents = []string{}
	}
	if out.Findings == nil {
		out.Findings = []Finding{}
	}
	if out.Skipped == nil {
		out.Skipped = []Skip{}
	}
	for i := range out.Findings {
		if out.Findings[i].Fix == nil {
			out.Findings[i].Fix = []string{}
		}
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // fix commands hold "&&"
	if pretty {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(out)
}

// WriteTable writes one line per finding (severity, id, subject, what),
// then each finding's reason and fix, then the checks that were skipped.
func (r *DoctorReport) WriteTable(w io.Writer) error {
	var b strings.Builder
	parents := strings.Join(r.Parents, ", ")
	if parents == "" {
		parents = "no parent"
	}
	if len(r.Findings) == 0 {
		fmt.Fprintf(&b, "doctor: nothing found on %s\n", parents)
	} else {
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "#\tSEVERITY\tID\tSUBJECT\tWHAT")
		for i, f := range r.Findings {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", i+1, f.Severity, f.ID, f.Subject, f.What)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for i, f := range r.Findings {
			fmt.Fprintf(&b, "\n%d. %s (%s)\n   why: %s\n", i+1, f.ID, f.Subject, f.Why)
			for j, c := range f.Fix {
				label := "fix:"
				if j > 0 {
					label = "    "
				}
				fmt.Fprintf(&b, "   %s %s\n", label, c)
			}
		}
		fmt.Fprintf(&b, "\ndoctor: %d finding%s on %s\n", len(r.Findings), plural(len(r.Findings)), parents)
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(&b, "not checked: %s on %s: %s\n", s.Check, s.Subject, s.Reason)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
