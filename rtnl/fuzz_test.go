package rtnl

// Fuzz targets, one per link-kind decoder, with a round-trip property:
// whatever a decoder accepts, encoding it and decoding the result gives
// the same value back (minus output-only attributes, which requests never
// carry). Seeds are the IFLA_INFO_DATA (or IFLA_INFO_SLAVE_DATA) of every
// captured iproute2 request and kernel reply in testdata.
//
//	go test -run '^$' -fuzz FuzzVLAN -fuzztime 30s ./rtnl

import (
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// addDataSeeds adds the driver data of every capture whose kind (or, with
// slave, port kind) is one of kinds.
func addDataSeeds(f *testing.F, slave bool, kinds ...string) {
	var files []string
	for _, dir := range []string{"golden", "dumps"} {
		m, err := filepath.Glob(filepath.Join("testdata", dir, "*.txt"))
		if err != nil {
			f.Fatal(err)
		}
		files = append(files, m...)
	}
	n := 0
	for _, path := range files {
		g := readCapture(f, path)
		for _, seed := range infoData(g.body, slave, kinds) {
			f.Add(seed)
			n++
		}
	}
	if n == 0 {
		f.Fatalf("no captured %s data to seed from", strings.Join(kinds, "/"))
	}
	f.Add([]byte{})
}

// infoData digs IFLA_LINKINFO/IFLA_INFO_DATA (or SLAVE_DATA) out of a link
// message body when its kind is in kinds.
func infoData(body []byte, slave bool, kinds []string) [][]byte {
	if len(body) < sizeofIfInfomsg {
		return nil
	}
	attrs, err := netlink.UnmarshalAttributes(body[sizeofIfInfomsg:])
	if err != nil {
		return nil
	}
	var out [][]byte
	for _, a := range attrs {
		if a.Type&attrTypeMask != unix.IFLA_LINKINFO {
			continue
		}
		info, err := netlink.UnmarshalAttributes(a.Data)
		if err != nil {
			continue
		}
		var kind string
		var data []byte
		for _, i := range info {
			switch i.Type & attrTypeMask {
			case unix.IFLA_INFO_KIND:
				if !slave {
					kind = strings.TrimRight(string(i.Data), "\x00")
				} else if k := strings.TrimRight(string(i.Data), "\x00"); strings.HasSuffix(k, "_slave") {
					kind = strings.TrimSuffix(k, "_slave")
				}
			case unix.IFLA_INFO_SLAVE_KIND:
				if slave {
					kind = strings.TrimRight(string(i.Data), "\x00")
				}
			case unix.IFLA_INFO_DATA:
				if !slave {
					data = i.Data
				}
			case unix.IFLA_INFO_SLAVE_DATA:
				if slave {
					data = i.Data
				}
			}
		}
		for _, k := range kinds {
			if k == kind && data != nil {
				out = append(out, data)
			}
		}
	}
	return out
}

// roundTrip is the property every driver must have. clean clears what
// Decode reports but Encode must not send (output-only attributes).
func roundTrip(t *testing.T, b []byte, newDriver func() rtnetlink.LinkDriver, clean func(rtnetlink.LinkDriver)) {
	d1 := newDriver()
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return
	}
	if err := d1.Decode(ad); err != nil {
		return
	}
	if err := ad.Err(); err != nil {
		t.Fatalf("Decode returned nil but the decoder holds %v", err)
	}
	if clean != nil {
		clean(d1)
	}
	ae := netlink.NewAttributeEncoder()
	if err := d1.Encode(ae); err != nil {
		t.Fatalf("Encode of a decoded %#v: %v", d1, err)
	}
	enc, err := ae.Encode()
	if err != nil {
		t.Fatalf("Encode of a decoded %#v: %v", d1, err)
	}
	d2 := newDriver()
	ad2, err := netlink.NewAttributeDecoder(enc)
	if err != nil {
		t.Fatalf("our own encoding does not parse: %v", err)
	}
	if err := d2.Decode(ad2); err != nil {
		t.Fatalf("our own encoding of %#v does not decode: %v", d1, err)
	}
	if clean != nil {
		clean(d2)
	}
	if !reflect.DeepEqual(d1, d2) {
		t.Fatalf("round trip changed the value:\n first  %#v\n second %#v", d1, d2)
	}
}

func FuzzVLAN(f *testing.F) {
	addDataSeeds(f, false, "vlan")
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip(t, b, func() rtnetlink.LinkDriver { return &VLAN{} }, nil)
	})
}

func FuzzIPVlan(f *testing.F) {
	addDataSeeds(f, false, "ipvlan")
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip(t, b, func() rtnetlink.LinkDriver { return &IPVlan{} }, nil)
	})
}

// cleanMacvlan clears the attributes only the kernel sends.
func cleanMacvlan(d rtnetlink.LinkDriver) {
	m, ok := d.(*Macvlan)
	if !ok {
		m = &d.(*Macvtap).Macvlan
	}
	m.MacaddrCount, m.BcQueueLenUsed = nil, nil
}

func FuzzMacvlan(f *testing.F) {
	addDataSeeds(f, false, "macvlan", "macvtap")
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip(t, b, func() rtnetlink.LinkDriver { return &Macvlan{} }, cleanMacvlan)
	})
}

func FuzzMacvtap(f *testing.F) {
	addDataSeeds(f, false, "macvlan", "macvtap")
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip(t, b, func() rtnetlink.LinkDriver { return &Macvtap{} }, cleanMacvlan)
	})
}

func FuzzBridge(f *testing.F) {
	addDataSeeds(f, false, "bridge")
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip(t, b, func() rtnetlink.LinkDriver { return &Bridge{} }, nil)
	})
}

func FuzzBridgePort(f *testing.F) {
	addDataSeeds(f, true, "bridge")
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip(t, b, func() rtnetlink.LinkDriver { return &BridgePort{} }, nil)
	})
}

func FuzzDummy(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{8, 0, 1, 0, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip(t, b, func() rtnetlink.LinkDriver { return &Dummy{} }, nil)
	})
}

// cleanLinkMessage clears what the kernel reports but a request never
// carries, and empties that encode to nothing.
func cleanLinkMessage(m *LinkMessage) {
	a := &m.Attrs
	a.MinMTU, a.MaxMTU, a.PermAddress, a.Promiscuity, a.AllMulti = nil, nil, nil, nil, nil
	for _, p := range []*net.HardwareAddr{&a.Address, &a.Broadcast} {
		if len(*p) == 0 {
			*p = nil
		}
	}
}

func FuzzVeth(f *testing.F) {
	addDataSeeds(f, false, "veth")
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip(t, b, func() rtnetlink.LinkDriver { return &Veth{} }, func(d rtnetlink.LinkDriver) {
			if p := d.(*Veth).Peer; p != nil {
				cleanLinkMessage(p)
				// A veth peer carries no link info of its own.
				p.Attrs.Info = nil
			}
		})
	})
}
