// Command guestprog is the tiny static program the runner's integration
// test boots in the VM. Its arguments are actions, run in order:
//
//	hello        print a line on stdout and one on stderr
//	vlan         fail unless 8021q (and the other link modules) are loaded
//	testdata     print testdata/hello.txt relative to the working directory
//	env=K1,K2    print K1=... lines
//	exit=N       exit with status N
//	panic        crash the guest kernel through /proc/sysrq-trigger
//	hang         sleep for an hour
//	netstamp=D   for duration D, open and close a socket with SO_TIMESTAMPNS
//	             every 2 ms while two goroutines send UDP over loopback (each
//	             close and reopen switches the kernel's timestamping off and on)
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	for _, a := range os.Args[1:] {
		name, val, _ := strings.Cut(a, "=")
		switch name {
		case "hello":
			fmt.Println("guestprog: hello from the guest")
			fmt.Fprintln(os.Stderr, "guestprog: hello on stderr")
		case "vlan":
			for _, p := range []string{"/sys/module/8021q", "/proc/net/vlan/config", "/sys/module/dummy", "/sys/module/ipvlan", "/sys/module/macvtap", "/sys/module/bridge"} {
				if _, err := os.Stat(p); err != nil {
					fmt.Println("guestprog: missing", p)
					os.Exit(1)
				}
			}
			fmt.Println("guestprog: 8021q loaded")
		case "testdata":
			wd, _ := os.Getwd()
			b, err := os.ReadFile("testdata/hello.txt")
			if err != nil {
				fmt.Println("guestprog:", err)
				os.Exit(1)
			}
			fmt.Printf("guestprog: cwd %s testdata %q\n", wd, b)
		case "env":
			for _, k := range strings.Split(val, ",") {
				fmt.Printf("guestprog: %s=%s\n", k, os.Getenv(k))
			}
		case "exit":
			n, _ := strconv.Atoi(val)
			os.Exit(n)
		case "panic":
			fmt.Println("guestprog: crashing the kernel")
			if err := os.WriteFile("/proc/sysrq-trigger", []byte("c"), 0); err != nil {
				fmt.Println("guestprog:", err)
				os.Exit(1)
			}
			time.Sleep(time.Minute)
		case "netstamp":
			d, err := time.ParseDuration(val)
			if err != nil {
				fmt.Println("guestprog:", err)
				os.Exit(2)
			}
			if err := toggleNetstamp(d); err != nil {
				fmt.Println("guestprog:", err)
				os.Exit(1)
			}
		case "hang":
			fmt.Println("guestprog: hanging")
			time.Sleep(time.Hour)
		default:
			fmt.Fprintf(os.Stderr, "guestprog: unknown action %q\n", a)
			os.Exit(2)
		}
	}
}

// toggleNetstamp makes the guest kernel switch packet timestamping on and
// off as often as it can while packets are being received: the pattern of
// many short captures, compressed. Init normally holds timestamping on, so
// this only switches anything with vmtest --free-netstamp.
func toggleNetstamp(d time.Duration) error {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	defer rx.Close()
	go func() {
		b := make([]byte, 2048)
		for {
			if _, err := rx.Read(b); err != nil {
				return
			}
		}
	}()
	end := time.Now().Add(d)
	var sent atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		tx, err := net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
		if err != nil {
			return err
		}
		defer tx.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := make([]byte, 64)
			for time.Now().Before(end) {
				if _, err := tx.Write(p); err == nil {
					sent.Add(1)
				}
			}
		}()
	}
	toggles := 0
	for time.Now().Before(end) {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
		time.Sleep(time.Millisecond)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("SO_TIMESTAMPNS: %w", err)
		}
		time.Sleep(time.Millisecond)
		toggles++
	}
	wg.Wait()
	fmt.Printf("guestprog: netstamp: %d timestamping sockets, %d datagrams over loopback in %v\n", toggles, sent.Load(), d)
	if toggles == 0 || sent.Load() == 0 {
		return fmt.Errorf("netstamp: nothing happened (%d sockets, %d datagrams)", toggles, sent.Load())
	}
	return nil
}
