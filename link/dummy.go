package link

// Dummy is a dummy link (`type dummy`), a parent that needs no peer.
type Dummy struct {
	Common
}

// Kind implements Spec.
func (*Dummy) Kind() string { return "dummy" }

func (*Dummy) needsParent() bool { return false }

// Validate implements Spec.
func (d *Dummy) Validate() error { return d.Common.validate("dummy", false) }
