// Command init is PID 1 of the VM runner's guest (see package
// github.com/vmlink/vmlink/testenv/vm/guest). The runner builds it with
// CGO_ENABLED=0 and puts it at /init in the initramfs; it is useless
// anywhere else.
package main

import "github.com/vmlink/vmlink/testenv/vm/guest"

func main() { guest.Main() }
