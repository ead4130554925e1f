package main

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vmlink/vmlink/dataplane"
)

// TestDockerInspectShape: `net inspect` prints what `docker network
// inspect` prints for the same network — docker's keys, in docker's order,
// with docker's conventions (IPAM driver "default", empty option maps
// rather than null, "" for a family a container has no address in,
// omitted IPRange/Gateway/AuxiliaryAddresses when not given).
func TestDockerInspectShape(t *testing.T) {
	rec := &dataplane.NetworkRecord{
		Name: "macvlan10", ID: "4f3c1e9a2b7d4c0e8a6b5f1d2c3e4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f",
		Created: time.Date(2026, 12, 1, 19, 0, 0, 123456789, time.UTC), Driver: "macvlan", Mode: "bridge", Parent: "eth0.10",
		Options: map[string]string{"parent": "eth0.10", "macvlan_mode": "bridge"}, IPv6: true,
		IPAM: []dataplane.IPAMConfig{
			{Subnet: netip.MustParsePrefix("10.0.10.0/24"), IPRange: netip.MustParsePrefix("10.0.10.128/25"), Gateway: netip.MustParseAddr("10.0.10.1"), Aux: map[string]netip.Addr{"router": netip.MustParseAddr("10.0.10.254")}},
			{Subnet: netip.MustParsePrefix("2001:db8:babe:10::/64"), Gateway: netip.MustParseAddr("2001:db8:babe:10::1")},
		},
		Endpoints: map[string]*dataplane.Attached{
			"container1": {NetNS: "container1", Interface: "eth0", MAC: "02:42:0a:00:0a:03", EndpointID: "e1",
				Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.10.3/24"), netip.MustParsePrefix("2001:db8:babe:10::3/64")}},
			"container2": {NetNS: "container2", Interface: "eth0", MAC: "02:42:0a:00:0a:81", EndpointID: "e2",
				Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.10.129/24")}},
		},
	}
	b, err := json.MarshalIndent([]dockerNetwork{dockerInspect(rec)}, "", "    ")
	if err != nil {
		t.Fatal(err)
	}
	want := `[
    {
        "Name": "macvlan10",
        "Id": "4f3c1e9a2b7d4c0e8a6b5f1d2c3e4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f",
        "Created": "2026-12-01T19:00:00.123456789Z",
        "Scope": "local",
        "Driver": "macvlan",
        "EnableIPv6": true,
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": [
                {
                    "Subnet": "10.0.10.0/24",
                    "IPRange": "10.0.10.128/25",
                    "Gateway": "10.0.10.1",
                    "AuxiliaryAddresses": {
                        "router": "10.0.10.254"
                    }
                },
                {
                    "Subnet": "2001:db8:babe:10::/64",
                    "Gateway": "2001:db8:babe:10::1"
                }
            ]
        },
        "Internal": false,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {
            "Network": ""
        },
        "ConfigOnly": false,
        "Containers": {
            "container1": {
                "Name": "container1",
                "EndpointID": "e1",
                "MacAddress": "02:42:0a:00:0a:03",
                "IPv4Address": "10.0.10.3/24",
                "IPv6Address": "2001:db8:babe:10::3/64"
            },
            "container2": {
                "Name": "container2",
                "EndpointID": "e2",
                "MacAddress": "02:42:0a:00:0a:81",
                "IPv4Address": "10.0.10.129/24",
                "IPv6Address": ""
            }
        },
        "Options": {
            "macvlan_mode": "bridge",
            "parent": "eth0.10"
        },
        "Labels": {}
    }
]`
	if string(b) != want {
		t.Fatalf("inspect printed\n%s\nwant (docker network inspect's shape)\n%s", b, want)
	}

	// An internal network with no containers and no gateway: empty maps,
	// not null; and the shim, vmlink's one addition, only when there is one.
	bare := &dataplane.NetworkRecord{Name: "int", ID: "x", Driver: "macvlan", Internal: true, IPAM: []dataplane.IPAMConfig{{Subnet: netip.MustParsePrefix("10.30.0.0/24")}}}
	b, _ = json.Marshal(dockerInspect(bare))
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"Containers": "{}", "Options": "{}", "Labels": "{}", "Internal": "true",
		"IPAM": `{"Driver":"default","Options":{},"Config":[{"Subnet":"10.30.0.0/24"}]}`} {
		if string(m[k]) != want {
			t.Errorf("%s = %s, want %s", k, m[k], want)
		}
	}
	if _, ok := m["HostShim"]; ok || len(m) != 15 {
		t.Errorf("keys %d (HostShim present: %v), want docker's 15", len(m), ok)
	}
	bare.Shim = &dataplane.Attached{Interface: "vms-1", MAC: "02:00:00:00:00:fe", Addrs: []netip.Prefix{netip.MustParsePrefix("10.30.0.254/32")}}
	b, _ = json.Marshal(dockerInspect(bare))
	if want := `"HostShim":{"Interface":"vms-1","MacAddress":"02:00:00:00:00:fe","Addresses":["10.30.0.254/32"]}`; !json.Valid(b) || !strings.Contains(string(b), want) {
		t.Errorf("with a shim: %s\nwant it to contain %s", b, want)
	}
}
