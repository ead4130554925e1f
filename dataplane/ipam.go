package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrPoolFull is wrapped by Pool.Next when every address is taken.
var ErrPoolFull = errors.New("no free address left")

// Pool hands out the addresses of one subnet the way docker's default IPAM
// does: from Range when set (else the whole subnet), lowest first, never
// the subnet's own address, the IPv4 broadcast address, or anything
// reserved (the gateway, --aux-address entries) or already taken.
type Pool struct {
	Subnet netip.Prefix
	// Range narrows allocation (docker's --ip-range); invalid means the
	// whole subnet.
	Range netip.Prefix
	taken map[netip.Addr]string
}

// NewPool returns a pool for subnet (which must be masked) allocating from
// rng (invalid for the whole subnet, else inside subnet).
func NewPool(subnet, rng netip.Prefix) (*Pool, error) {
	if !subnet.IsValid() || subnet != subnet.Masked() {
		return nil, fmt.Errorf("subnet %s: not a network prefix (use %s)", subnet, subnet.Masked())
	}
	if rng.IsValid() {
		rng = rng.Masked()
		if !subnet.Contains(rng.Addr()) || rng.Bits() < subnet.Bits() {
			return nil, fmt.Errorf("ip-range %s is not inside subnet %s", rng, subnet)
		}
	}
	return &Pool{Subnet: subnet, Range: rng, taken: map[netip.Addr]string{}}, nil
}

// Reserve marks a as used by who (a gateway, an aux address, an endpoint),
// failing when it lies outside the subnet or is taken already.
func (p *Pool) Reserve(a netip.Addr, who string) error {
	if !p.Subnet.Contains(a) {
		return fmt.Errorf("%s is outside subnet %s", a, p.Subnet)
	}
	if a == p.Subnet.Addr() {
		return fmt.Errorf("%s is the subnet's network address: pick another", a)
	}
	if a.Is4() && a == lastAddr(p.Subnet) && p.Subnet.Bits() < 31 {
		return fmt.Errorf("%s is the subnet's broadcast address: pick another", a)
	}
	if owner, ok := p.taken[a]; ok {
		return fmt.Errorf("%s is already in use by %s", a, owner)
	}
	p.taken[a] = who
	return nil
}

// Release frees a.
func (p *Pool) Release(a netip.Addr) { delete(p.taken, a) }

// Owner reports who holds a, if anyone.
func (p *Pool) Owner(a netip.Addr) (string, bool) {
	w, ok := p.taken[a]
	return w, ok
}

// Next allocates the lowest free address for who. The walk is bounded by
// the number of taken addresses, so a /64 costs nothing.
func (p *Pool) Next(who string) (netip.Prefix, error) {
	r := p.Range
	if !r.IsValid() {
		r = p.Subnet
	}
	a := r.Addr()
	// At most len(taken)+3 steps: the network address, the broadcast
	// address and every taken one can be skipped, then one is free or
	// the range is exhausted.
	for range len(p.taken) + 4 {
		if !r.Contains(a) {
			break
		}
		if a != p.Subnet.Addr() && !(a.Is4() && a == lastAddr(p.Subnet) && p.Subnet.Bits() < 31) {
			if _, used := p.taken[a]; !used {
				p.taken[a] = who
				return netip.PrefixFrom(a, p.Subnet.Bits()), nil
			}
		}
		a = a.Next()
		if !a.IsValid() {
			break
		}
	}
	what := "subnet " + p.Subnet.String()
	if p.Range.IsValid() {
		what = "ip-range " + p.Range.String()
	}
	return netip.Prefix{}, fmt.Errorf("%s: %w", what, ErrPoolFull)
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		for j := 0; j < 8; j++ {
			if i*8+j >= bits {
				b[i] |= 0x80 >> j
			}
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

const gatewayOwner = "the gateway"

// assignAddresses fills in the addresses of every interface that has none,
// one per subnet of its network, deterministically (topology order), around
// gateways and every explicitly written address.
func (t *Topology) assignAddresses() error {
	pools := map[string][]*Pool{}
	for _, n := range t.Networks {
		subnets, err := n.subnets()
		if err != nil {
			return err
		}
		for _, s := range subnets {
			var rng netip.Prefix
			for _, r := range n.IPRange {
				rp, _ := netip.ParsePrefix(r)
				if s.Contains(rp.Masked().Addr()) {
					rng = rp
				}
			}
			pool, err := NewPool(s, rng)
			if err != nil {
				return fmt.Errorf("network %s: %w", n.Name, err)
			}
			for _, g := range n.Gateways {
				if a, err := netip.ParseAddr(g); err == nil && s.Contains(a) {
					if err := pool.Reserve(a, gatewayOwner); err != nil {
						return fmt.Errorf("network %s: gateway: %w", n.Name, err)
					}
				}
			}
			pools[n.Name] = append(pools[n.Name], pool)
		}
	}
	reserve := func(network, who string, addrs []string) error {
		for _, a := range addrs {
			p, err := parsePrefix(a)
			if err != nil {
				return err
			}
			for _, pool := range pools[network] {
				if pool.Subnet.Contains(p.Addr()) {
					if owner, _ := pool.Owner(p.Addr()); owner == gatewayOwner {
						continue // the endpoint is the network's router
					}
					if err := pool.Reserve(p.Addr(), who); err != nil {
						return fmt.Errorf("network %s: %s: %w", network, who, err)
					}
				}
			}
		}
		return nil
	}
	// The host stack's and the outside host's addresses are taken in every
	// network whose subnet holds them.
	for _, p := range t.Parents {
		own := map[string][]string{"parent " + p.Name + " (host stack)": p.Addresses}
		if p.Sandbox != nil {
			own["the switch of "+p.Name+" (outside)"] = p.Sandbox.Addresses
		}
		for who, addrs := range own {
			for _, n := range t.Networks {
				if err := reserve(n.Name, who, addrs); err != nil {
					return err
				}
			}
		}
	}
	for _, e := range t.Endpoints {
		for j, it := range e.Interfaces {
			if err := reserve(it.Network, e.Name+"/"+it.name(j), it.Addresses); err != nil {
				return err
			}
		}
	}
	for _, s := range t.HostShims {
		if err := reserve(s.Network, "host shim "+s.Name, s.Addresses); err != nil {
			return err
		}
	}
	for i := range t.Endpoints {
		e := &t.Endpoints[i]
		for j := range e.Interfaces {
			it := &e.Interfaces[j]
			if len(it.Addresses) > 0 {
				continue
			}
			for _, pool := range pools[it.Network] {
				p, err := pool.Next(e.Name + "/" + it.name(j))
				if err != nil {
					return fmt.Errorf("network %s: address for %s/%s: %w", it.Network, e.Name, it.name(j), err)
				}
				it.Addresses = append(it.Addresses, p.String())
			}
		}
	}
	return nil
}

// poolOf builds the allocation pool of one subnet with the gateway, aux
// addresses and the taken ones reserved.
func poolOf(c *IPAMConfig, taken map[netip.Addr]string) (*Pool, error) {
	p, err := NewPool(c.Subnet, c.IPRange)
	if err != nil {
		return nil, err
	}
	if c.Gateway.IsValid() {
		if err := p.Reserve(c.Gateway, gatewayOwner); err != nil {
			return nil, fmt.Errorf("--gateway %s: %w", c.Gateway, err)
		}
	}
	for k, a := range c.Aux {
		if err := p.Reserve(a, "aux address "+k); err != nil {
			return nil, fmt.Errorf("--aux-address %s=%s: %w", k, a, err)
		}
	}
	for a, who := range taken {
		if c.Subnet.Contains(a) {
			if err := p.Reserve(a, who); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// takenAddrs lists the addresses of a network's endpoints and shim.
func takenAddrs(rec *NetworkRecord) map[netip.Addr]string {
	taken := map[netip.Addr]string{}
	for name, e := range rec.Endpoints {
		for _, p := range e.Addrs {
			taken[p.Addr()] = name
		}
	}
	if rec.Shim != nil {
		for _, p := range rec.Shim.Addrs {
			taken[p.Addr()] = "the host shim"
		}
	}
	return taken
}

// ipFlag is the docker flag that gives an address of a's family.
func ipFlag(a netip.Addr) string {
	if a.Is6() && !a.Is4In6() {
		return "--ip6"
	}
	return "--ip"
}

// allocate picks the endpoint's addresses: the requested ones (checked),
// else one per subnet of each family from the pool.
func allocate(rec *NetworkRecord, who string, want []netip.Addr) ([]netip.Prefix, error) {
	taken := takenAddrs(rec)
	var out []netip.Prefix
	used := map[int]bool{}
	for _, a := range want {
		flag := ipFlag(a)
		idx := -1
		for i, c := range rec.IPAM {
			if c.Subnet.Contains(a) {
				idx = i
			}
		}
		if idx < 0 {
			var subnets []string
			for _, c := range rec.IPAM {
				subnets = append(subnets, c.Subnet.String())
			}
			return nil, refuse("%s %s is outside the network's subnets (%s)", flag, a, strings.Join(subnets, ", "))
		}
		p, err := poolOf(&rec.IPAM[idx], taken)
		if err != nil {
			return nil, err
		}
		if owner, ok := p.Owner(a); ok {
			return nil, conflict("%s %s is already in use by %s", flag, a, owner)
		}
		if err := p.Reserve(a, who); err != nil {
			return nil, refuse("%s %s: %v", flag, a, err)
		}
		used[idx] = true
		out = append(out, netip.PrefixFrom(a, rec.IPAM[idx].Subnet.Bits()))
	}
	fams := map[bool]bool{}
	for _, p := range out {
		fams[p.Addr().Is4()] = true
	}
	for i := range rec.IPAM {
		c := &rec.IPAM[i]
		if used[i] || fams[c.Subnet.Addr().Is4()] {
			continue
		}
		p, err := poolOf(c, taken)
		if err != nil {
			return nil, err
		}
		a, err := p.Next(who)
		if err != nil {
			return nil, fmt.Errorf("network %s: %w", rec.Name, err)
		}
		fams[c.Subnet.Addr().Is4()] = true
		taken[a.Addr()] = who
		out = append(out, a)
	}
	return out, nil
}
