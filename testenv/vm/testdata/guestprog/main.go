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
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
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
		case "hang":
			fmt.Println("guestprog: hanging")
			time.Sleep(time.Hour)
		default:
			fmt.Fprintf(os.Stderr, "guestprog: unknown action %q\n", a)
			os.Exit(2)
		}
	}
}
