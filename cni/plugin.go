package cni

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/utils"
	"github.com/containernetworking/cni/pkg/version"
)

// Versions are the spec versions the plugin speaks.
var Versions = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

// Env is the protocol's environment (CNI_*).
type Env struct {
	Command     string // CNI_COMMAND
	ContainerID string // CNI_CONTAINERID
	NetNS       string // CNI_NETNS
	IfName      string // CNI_IFNAME
	Args        string // CNI_ARGS
	Path        string // CNI_PATH
}

// EnvFrom reads the CNI_* variables through getenv (os.Getenv).
func EnvFrom(getenv func(string) string) Env {
	return Env{
		Command:     getenv("CNI_COMMAND"),
		ContainerID: getenv("CNI_CONTAINERID"),
		NetNS:       getenv("CNI_NETNS"),
		IfName:      getenv("CNI_IFNAME"),
		Args:        getenv("CNI_ARGS"),
		Path:        getenv("CNI_PATH"),
	}
}

// Timeout bounds one invocation: a runtime that waits for a hung plugin
// holds its pod.
const Timeout = 2 * time.Minute

// Main runs one invocation as a runtime makes it: env, the configuration
// on stdin, the result or a CNI error JSON on stdout. It returns the exit
// status: 0, or 1 with the error on stdout (the spec's contract).
func Main(env Env, stdin io.Reader, stdout io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	out, err := dispatch(ctx, env, stdin)
	if err != nil {
		e := asCNIError(err)
		b, _ := json.MarshalIndent(e, "", "    ")
		fmt.Fprintf(stdout, "%s\n", b)
		return 1
	}
	if out != nil {
		if _, err := stdout.Write(out); err != nil {
			return 1
		}
	}
	return 0
}

// needs lists the variables each command requires, as the spec does.
var needs = map[string][]string{
	"ADD":    {"CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"},
	"DEL":    {"CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"},
	"CHECK":  {"CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"},
	"STATUS": {"CNI_PATH"},
	"GC":     {"CNI_PATH"},
}

// minVersion is the oldest configuration version a command exists in.
var minVersion = map[string]string{"CHECK": "0.4.0", "STATUS": "1.1.0", "GC": "1.1.0"}

func (e Env) value(name string) string {
	switch name {
	case "CNI_CONTAINERID":
		return e.ContainerID
	case "CNI_NETNS":
		return e.NetNS
	case "CNI_IFNAME":
		return e.IfName
	case "CNI_PATH":
		return e.Path
	}
	return ""
}

// dispatch checks the environment and the version, then runs the command;
// it returns what goes to stdout.
func dispatch(ctx context.Context, env Env, stdin io.Reader) ([]byte, error) {
	if env.Command == "" {
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables, "required env variables [CNI_COMMAND] missing", "")
	}
	if env.Command == "VERSION" {
		var b strings.Builder
		if err := Versions.Encode(&b); err != nil {
			return nil, err
		}
		return []byte(b.String()), nil
	}
	req, ok := needs[env.Command]
	if !ok {
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("unknown CNI_COMMAND: %s", env.Command), "use ADD, DEL, CHECK, VERSION, STATUS or GC")
	}
	var missing []string
	for _, name := range req {
		if env.value(name) == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("required env variables [%s] missing", strings.Join(missing, ",")), "")
	}
	if env.ContainerID != "" {
		if e := utils.ValidateContainerID(env.ContainerID); e != nil {
			return nil, e
		}
	}
	if env.IfName != "" {
		if e := utils.ValidateInterfaceName(env.IfName); e != nil {
			return nil, e
		}
	}
	stdinData, err := io.ReadAll(io.LimitReader(stdin, 1<<20))
	if err != nil {
		return nil, types.NewError(types.ErrIOFailure, "read the network configuration from stdin: "+err.Error(), "")
	}
	confVersion, err := (&version.ConfigDecoder{}).Decode(stdinData)
	if err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "decode the network configuration: "+err.Error(), "")
	}
	if ie := (&version.Reconciler{}).Check(confVersion, Versions); ie != nil {
		return nil, types.NewError(types.ErrIncompatibleCNIVersion, "incompatible CNI versions", ie.Details())
	}
	if mv, ok := minVersion[env.Command]; ok {
		if ok, _ := version.GreaterThanOrEqualTo(confVersion, mv); !ok {
			return nil, types.NewError(types.ErrIncompatibleCNIVersion, fmt.Sprintf("config version %s does not allow %s (needs %s or newer)", confVersion, env.Command, mv), "")
		}
	}
	conf, err := ParseConf(stdinData, env.Args)
	if err != nil {
		return nil, err
	}
	if e := utils.ValidateNetworkName(conf.Name); e != nil {
		return nil, e
	}
	p := &plugin{env: env, conf: conf}
	switch env.Command {
	case "ADD":
		return p.add(ctx)
	case "DEL":
		return nil, p.del(ctx)
	case "CHECK":
		return nil, p.check(ctx)
	case "STATUS":
		return nil, p.status(ctx)
	default:
		return nil, p.gc(ctx)
	}
}

// plugin is one invocation.
type plugin struct {
	env  Env
	conf *Conf
}

// cniPathEnv makes CNI_PATH visible to pkg/invoke, which reads the process
// environment to find the IPAM plugin.
func (p *plugin) cniPathEnv() {
	if os.Getenv("CNI_PATH") != p.env.Path {
		os.Setenv("CNI_PATH", p.env.Path)
	}
}
