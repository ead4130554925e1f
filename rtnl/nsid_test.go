package rtnl

import (
	"bytes"
	"testing"
)

// Golden bytes from `strace -e trace=sendmsg,recvmsg -xx ip -n NS netns
// list-id` (iproute2 6.1, Linux 6.18): the RTM_GETNSID request for fd 6 and
// the kernel's RTM_NEWNSID answer for a namespace without an id.
var (
	goldenGetNSIDFD6   = []byte("\x00\x00\x00\x00\x08\x00\x03\x00\x06\x00\x00\x00")
	goldenNewNSIDUnset = []byte("\x00\x00\x00\x00\x08\x00\x01\x00\xff\xff\xff\xff")
)

func TestNSIDMessageGolden(t *testing.T) {
	fd := uint32(6)
	b, err := (&NSIDMessage{FD: &fd}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, goldenGetNSIDFD6) {
		t.Errorf("request\n got %x\nwant %x", b, goldenGetNSIDFD6)
	}
	var m NSIDMessage
	if err := m.UnmarshalBinary(goldenNewNSIDUnset); err != nil {
		t.Fatal(err)
	}
	if m.NSID == nil || *m.NSID != NSIDNotAssigned {
		t.Errorf("answer: %+v, want NSID %d", m, NSIDNotAssigned)
	}
}

func FuzzNSIDMessage(f *testing.F) {
	f.Add(goldenGetNSIDFD6)
	f.Add(goldenNewNSIDUnset)
	f.Fuzz(func(t *testing.T, b []byte) {
		var m NSIDMessage
		if err := m.UnmarshalBinary(b); err != nil {
			return
		}
		out, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var m2 NSIDMessage
		if err := m2.UnmarshalBinary(out); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		b1, _ := m2.MarshalBinary()
		if !bytes.Equal(out, b1) {
			t.Fatalf("round trip differs: %x vs %x", out, b1)
		}
	})
}
