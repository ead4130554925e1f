// Command vmlink-cni is vmlink's CNI plugin. `make build` installs it as
// bin/cni/vmlink, so a runtime finds it as "type": "vmlink" in CNI_PATH.
//
// It is a command of its own rather than the vmlink CLI answering when
// CNI_COMMAND is set: the CLI's exit codes (2 usage, 3 environment) and
// output are not the protocol's (0, or 1 with error JSON on stdout), and a
// CNI_COMMAND left exported in a shell would silently turn every vmlink
// command into a plugin call. All logic is in package cni.
package main

import (
	"os"

	"github.com/vmlink/vmlink/cni"
)

func main() {
	os.Exit(cni.Main(cni.EnvFrom(os.Getenv), os.Stdin, os.Stdout))
}
