package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/rtnl"
)

// gc is GC: every attachment of this network that carries the plugin's
// mark, in the plugin's namespace or any named one, and is not in
// cni.dev/valid-attachments loses its link and its IPAM allocation (a DEL
// to the IPAM plugin with the attachment's container id and interface
// name). Then every record ADD left of an attachment not in the list is
// released the same way, with the configuration of its ADD: that covers
// attachments whose namespace is gone (destroyed with its link) or was
// never named (/proc/PID/ns/net). The IPAM plugin gets the GC too when it
// speaks 1.1.0.
func (p *plugin) gc(ctx context.Context) error {
	p.cniPathEnv()
	valid := map[types.GCAttachment]bool{}
	for _, a := range p.conf.ValidAttachments {
		valid[a] = true
	}
	spaces, err := netns.List()
	if err != nil {
		return fmt.Errorf("list namespaces: %w", err)
	}
	var errs []error
	for _, name := range append([]string{""}, spaces...) {
		errs = append(errs, p.gcIn(ctx, name, valid))
	}
	errs = append(errs, p.gcRecords(ctx, valid))
	if p.ipamSpeaks(ctx, "1.1.0") {
		errs = append(errs, invoke.DelegateGC(ctx, p.conf.IPAM.Type, p.conf.raw, nil))
	}
	return errors.Join(errs...)
}

// gcIn collects the stale attachments of one namespace ("" the plugin's).
func (p *plugin) gcIn(ctx context.Context, ns string, valid map[types.GCAttachment]bool) error {
	var c *rtnl.Conn
	var err error
	if ns == "" {
		c, err = rtnl.Dial(nil)
	} else {
		c, err = rtnl.DialNetNS(ns, nil)
	}
	if err != nil {
		return nil // gone while we looked
	}
	defer c.Close()
	links, err := c.Links(ctx)
	if err != nil {
		return fmt.Errorf("list links in %s: %w", nsWord(ns), err)
	}
	var errs []error
	for _, m := range links {
		if m.Attrs.Group == nil || *m.Attrs.Group != mark.Group() || m.Attrs.Alias == nil {
			continue
		}
		network, cid, ifname, ok := parseAttachment(*m.Attrs.Alias)
		if !ok || network != p.conf.Name || valid[types.GCAttachment{ContainerID: cid, IfName: ifname}] {
			continue
		}
		if err := c.DelLink(ctx, &rtnl.LinkMessage{Index: m.Index}); err != nil {
			errs = append(errs, fmt.Errorf("delete stale attachment %s/%s in %s: %w", cid, ifname, nsWord(ns), err))
			continue
		}
		nsPath := ""
		if ns != "" {
			nsPath = filepath.Join(netns.Dir, ns)
		}
		if err := p.releaseIPs(ctx, cid, ifname, nsPath); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, p.conf.removeRecord(cid, ifname))
	}
	return errors.Join(errs...)
}

// gcRecords releases the attachments whose records remain and are not
// valid: their link, if its namespace is still there, and their addresses
// as the configuration of their ADD took them. A record goes once its
// release succeeded, so a failed one is tried again by the next GC.
func (p *plugin) gcRecords(ctx context.Context, valid map[types.GCAttachment]bool) error {
	recs, err := p.conf.records()
	var errs []error
	errs = append(errs, err)
	for _, r := range recs {
		if valid[types.GCAttachment{ContainerID: r.ContainerID, IfName: r.IfName}] {
			continue
		}
		if err := deleteIn(ctx, r.NetNS, r.IfName, attachmentObject(p.conf.Name, r.ContainerID, r.IfName)); err != nil {
			errs = append(errs, fmt.Errorf("delete stale attachment %s/%s: %w", r.ContainerID, r.IfName, err))
			continue
		}
		rp := p
		if rc, err := ParseConf(r.Conf, ""); err == nil {
			rp = &plugin{env: p.env, conf: rc}
		}
		if err := rp.releaseIPs(ctx, r.ContainerID, r.IfName, r.NetNS); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, p.conf.removeRecord(r.ContainerID, r.IfName))
	}
	return errors.Join(errs...)
}

// releaseIPs sends the IPAM plugin the DEL of one attachment, with the
// configuration's version lowered to what the plugin speaks (GC comes with
// 1.1.0, which an older IPAM plugin refuses).
func (p *plugin) releaseIPs(ctx context.Context, containerID, ifname, nsPath string) error {
	if p.conf.IPAM.Type == "" {
		return nil
	}
	path, err := invoke.FindInPath(p.conf.IPAM.Type, filepath.SplitList(p.env.Path))
	if err != nil {
		return err
	}
	conf := p.ipamConf(ctx, path)
	args := &invoke.Args{Command: "DEL", ContainerID: containerID, NetNS: nsPath, IfName: ifname, Path: p.env.Path}
	if err := invoke.ExecPluginWithoutResult(ctx, path, conf, args, nil); err != nil {
		return fmt.Errorf("release the addresses of %s/%s: %w", containerID, ifname, err)
	}
	return nil
}

// ipamConf is the configuration for the IPAM plugin at path: unchanged,
// or with cniVersion lowered to the newest the plugin speaks when it does
// not speak the configuration's (Debian's host-local 1.1.1 stops at 1.0.0,
// and GC and STATUS configurations are 1.1.0).
func (p *plugin) ipamConf(ctx context.Context, path string) []byte {
	conf := p.conf.raw
	info, err := invoke.GetVersionInfo(ctx, path, nil)
	if err != nil {
		return conf
	}
	vs := info.SupportedVersions()
	if len(vs) == 0 || contains(vs, p.conf.CNIVersion) {
		return conf
	}
	var m map[string]any
	if json.Unmarshal(conf, &m) != nil {
		return conf
	}
	newest := vs[len(vs)-1]
	m["cniVersion"] = newest
	delete(m, "cni.dev/valid-attachments")
	// CHECK's prevResult carries the configuration's version too: an
	// IPAM plugin that reads it (static) refuses a result of a version it
	// does not speak.
	if pr, ok := m["prevResult"]; ok {
		b, err := json.Marshal(pr)
		if err != nil {
			return conf
		}
		r, err := version.NewResult(p.conf.CNIVersion, b)
		if err != nil {
			return conf
		}
		lowered, err := r.GetAsVersion(newest)
		if err != nil {
			return conf
		}
		m["prevResult"] = lowered
	}
	if b, err := json.Marshal(m); err == nil {
		return b
	}
	return conf
}

// ipamIncompatible reports whether err is the IPAM plugin refusing the
// configuration's version.
func ipamIncompatible(err error) bool {
	var te *types.Error
	return errors.As(err, &te) && te.Code == types.ErrIncompatibleCNIVersion
}

// delegate runs the IPAM plugin for verb (ADD, DEL, CHECK) as the
// reference plugins do (invoke.Delegate*), and once more with the version
// lowered when the plugin refuses the configuration's.
func (p *plugin) delegate(ctx context.Context, verb string) (types.Result, error) {
	call := func(conf []byte) (types.Result, error) {
		switch verb {
		case "ADD":
			return invoke.DelegateAdd(ctx, p.conf.IPAM.Type, conf, nil)
		case "DEL":
			return nil, invoke.DelegateDel(ctx, p.conf.IPAM.Type, conf, nil)
		default:
			return nil, invoke.DelegateCheck(ctx, p.conf.IPAM.Type, conf, nil)
		}
	}
	if verb == "CHECK" {
		// An IPAM plugin that parses prevResult before it checks the
		// version (Debian's static 1.1.1) fails with code 999, not 1, on
		// a result of a version it does not speak: lower it first.
		path, err := invoke.FindInPath(p.conf.IPAM.Type, filepath.SplitList(p.env.Path))
		if err != nil {
			return nil, err
		}
		return call(p.ipamConf(ctx, path))
	}
	r, err := call(p.conf.raw)
	if !ipamIncompatible(err) {
		return r, err
	}
	path, ferr := invoke.FindInPath(p.conf.IPAM.Type, filepath.SplitList(p.env.Path))
	if ferr != nil {
		return r, err
	}
	return call(p.ipamConf(ctx, path))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func nsWord(ns string) string {
	if ns == "" {
		return "the plugin's namespace"
	}
	return "netns " + ns
}
