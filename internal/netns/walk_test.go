package netns

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseNsfsMount(t *testing.T) {
	for _, tc := range []struct {
		line, want string
		ok         bool
	}{
		{"94 27 0:4 net:[4026532246] /tmp/dk/exec/netns/2c90005a083b rw - nsfs nsfs rw", "/tmp/dk/exec/netns/2c90005a083b", true},
		{"36 35 0:4 net:[4026532300] /run/netns/a\\040b rw shared:5 - nsfs nsfs rw", "/run/netns/a b", true},
		{"37 35 0:4 mnt:[4026532301] /run/x rw - nsfs nsfs rw", "", false},               // a mount namespace
		{"47 27 254:0 /tmp/d /tmp/d rw,relatime shared:3 - ext4 /dev/vda rw", "", false}, // not nsfs
		{"garbage", "", false},
	} {
		got, ok := parseNsfsMount(tc.line)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseNsfsMount(%q) = %q, %v; want %q, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

func TestDockerdExecRoot(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want string
		ok   bool
	}{
		{[]string{"/usr/sbin/dockerd", "-H", "fd://"}, DefaultDockerExecRoot, true},
		{[]string{"/usr/sbin/dockerd", "--exec-root", "/tmp/e", "--data-root", "/tmp/d"}, "/tmp/e", true},
		{[]string{"dockerd", "--exec-root=/x"}, "/x", true},
		{[]string{"/usr/bin/containerd", "--exec-root", "/tmp/e"}, "", false},
		{nil, "", false},
	} {
		got, ok := dockerdExecRoot(tc.argv)
		if got != tc.want || ok != tc.ok {
			t.Errorf("dockerdExecRoot(%q) = %q, %v; want %q, %v", tc.argv, got, ok, tc.want, tc.ok)
		}
	}
}

// Walk finds a named namespace (once, by its name, although mountinfo
// shows it too), one bind-mounted outside Dir, and one only a process
// holds; and tells each apart from the caller's.
func TestWalkFindsEverySource(t *testing.T) {
	privileged(t)
	named := uniqueName(t)
	ns, err := Create(named)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close(); Delete(named) })
	namedID, _ := ns.ID()

	// A bind mount elsewhere, as containerd and dockerd make them.
	dir := t.TempDir()
	mnt := filepath.Join(dir, "ns")
	if err := os.WriteFile(mnt, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	var mountID ID
	err = DoNew(func() error {
		if err := unix.Mount("/proc/thread-self/ns/net", mnt, "none", unix.MS_BIND, ""); err != nil {
			return err
		}
		cur, err := Current()
		if err != nil {
			return err
		}
		defer cur.Close()
		mountID, err = cur.ID()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })

	// A process in a namespace nothing else names: the test binary
	// itself (the VM guest has no sleep), forked from a thread in a new
	// namespace.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperSleep$")
	cmd.Env = append(os.Environ(), "VMLINK_NETNS_HELPER=sleep")
	var procID ID
	err = DoNew(func() error {
		cur, err := Current()
		if err != nil {
			return err
		}
		defer cur.Close()
		if procID, err = cur.ID(); err != nil {
			return err
		}
		return cmd.Start()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	found, err := Walk(WalkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[ID]Found{}
	for _, f := range found {
		if _, dup := byID[f.ID]; dup {
			t.Errorf("namespace %v listed twice", f.ID)
		}
		byID[f.ID] = f
	}
	if f := byID[namedID]; f.Source != SourceNamed || f.Name != named || f.Path != filepath.Join(Dir, named) {
		t.Errorf("named namespace: %+v", f)
	}
	if f := byID[mountID]; f.Source != SourceMount || f.Path != mnt {
		t.Errorf("bind-mounted namespace: %+v", f)
	}
	if f := byID[procID]; f.Source != SourceProcess || len(f.PIDs) != 1 || f.PIDs[0] != cmd.Process.Pid {
		t.Errorf("process namespace (pid %d): %+v", cmd.Process.Pid, f)
	}
	self, _ := CurrentInode()
	if f, ok := findInode(found, self); !ok || len(f.PIDs) == 0 {
		t.Errorf("the caller's own namespace is missing or has no process: %+v", f)
	}
}

func findInode(fs []Found, ino uint64) (Found, bool) {
	for _, f := range fs {
		if f.Inode == ino {
			return f, true
		}
	}
	return Found{}, false
}

// TestHelperSleep is the child process of TestWalkFindsEverySource.
func TestHelperSleep(t *testing.T) {
	if os.Getenv("VMLINK_NETNS_HELPER") != "sleep" {
		t.Skip("helper process for TestWalkFindsEverySource")
	}
	time.Sleep(time.Minute)
}
