package vm_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/vmlink/vmlink/testenv/vm"
)

// Run boots Debian's newest 6.12 kernel (fetching it on first use), runs a
// static test binary in it and returns its exit status; a run without one
// is a *vm.VMError.
func ExampleRun() {
	res, err := vm.Run(context.Background(), vm.Options{Kernel: "6.12"},
		[]string{"./rtnl.test", "-test.run=TestIntegration", "-test.v"}, "./rtnl")
	var ve *vm.VMError
	if errors.As(err, &ve) {
		fmt.Fprintf(os.Stderr, "no result (%v):\n%v\n", ve.Reason, err)
		os.Exit(125)
	}
	fmt.Printf("exit %d after %.1fs of boot\n", res.ExitCode, res.BootToTest.Seconds())
}
