package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ManifestPath is where the host puts the run manifest in the guest.
const ManifestPath = "/vmlink/run.json"

// StageDir holds trees (such as the test's testdata/) that belong under
// directories the init mounts a tmpfs over (/tmp, /run): the host puts
// /a/b at StageDir/a/b and the init moves it into place after mounting.
const StageDir = "/vmlink/root"

// PortName is the virtio-serial port name of the result channel; the guest
// finds its /dev/vportNpM through /sys/class/virtio-ports/*/name.
const PortName = "vmlink.0"

// Module is one kernel module the guest loads, in manifest order (the host
// has already ordered them so that every module comes after its
// dependencies).
type Module struct {
	Name   string `json:"name"`
	Path   string `json:"path"`             // uncompressed .ko inside the guest
	Params string `json:"params,omitempty"` // module parameters, as for insmod
}

// Manifest tells the guest init what to do.
type Manifest struct {
	Kernel  string   `json:"kernel"`  // the kernel version the host booted, for messages
	Modules []Module `json:"modules"` // loaded in order with finit_module
	// Builtin lists requested modules the kernel has built in; the guest only
	// reports them.
	Builtin []string `json:"builtin,omitempty"`
	Argv    []string `json:"argv"` // Argv[0] is the test binary inside the guest
	Env     []string `json:"env"`  // the complete environment of the test
	Dir     string   `json:"dir"`  // working directory of the test
	// MkdirAll are directories the test expects to exist, such as the
	// parent of -test.testlogfile.
	MkdirAll []string `json:"mkdir_all,omitempty"`
	// Collect are files the test may write that the host wants back (for
	// example -test.coverprofile); missing ones are skipped.
	Collect []string `json:"collect,omitempty"`
	// Checks are paths that must exist after the modules are loaded, such as
	// /proc/net/vlan/config; a missing one is an init failure.
	Checks []string `json:"checks,omitempty"`
	// FreeNetstamp stops init from holding the kernel's packet timestamp
	// switch on for the whole run (see guest.holdNetstamp); only the
	// demonstration of the TCG crash it avoids sets it.
	FreeNetstamp bool `json:"free_netstamp,omitempty"`
}

// Kind is the type of a frame on the result channel.
type Kind byte

// Frame kinds. The zero value is invalid.
const (
	KindInvalid Kind = 0
	KindStdout  Kind = 'o' // a chunk of the test's stdout
	KindStderr  Kind = 'e' // a chunk of the test's stderr
	KindLog     Kind = 'l' // a line from init itself (module loads, timings)
	KindStarted Kind = 's' // init is about to exec the test; payload empty
	KindFile    Kind = 'f' // a collected file: EncodeFile payload
	KindExit    Kind = 'x' // the test's exit status: 4-byte big-endian int32
	KindFatal   Kind = '!' // init failed before or around the test; payload is the reason
	KindAck     Kind = 'k' // host to guest: the final frame arrived, power off
)

func (k Kind) valid() bool {
	switch k {
	case KindStdout, KindStderr, KindLog, KindStarted, KindFile, KindExit, KindFatal, KindAck:
		return true
	}
	return false
}

func (k Kind) String() string {
	switch k {
	case KindStdout:
		return "stdout"
	case KindStderr:
		return "stderr"
	case KindLog:
		return "log"
	case KindStarted:
		return "started"
	case KindFile:
		return "file"
	case KindExit:
		return "exit"
	case KindFatal:
		return "fatal"
	case KindAck:
		return "ack"
	}
	return fmt.Sprintf("Kind(%d)", byte(k))
}

// MaxPayload bounds one frame so a corrupted length can never make the host
// allocate gigabytes.
const MaxPayload = 64 << 20

// headerLen is kind (1 byte) + payload length (4 bytes, big endian).
const headerLen = 5

// Frame is one message on the result channel.
type Frame struct {
	Kind    Kind
	Payload []byte
}

// WriteFrame writes one frame in a single Write call, so that writers
// sharing a port under a mutex never interleave.
func WriteFrame(w io.Writer, k Kind, payload []byte) error {
	if k == KindInvalid {
		return errors.New("write frame: invalid kind")
	}
	if len(payload) > MaxPayload {
		return fmt.Errorf("write %v frame: payload of %d bytes exceeds %d", k, len(payload), MaxPayload)
	}
	b := make([]byte, headerLen+len(payload))
	b[0] = byte(k)
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	copy(b[headerLen:], payload)
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write %v frame: %w", k, err)
	}
	return nil
}

// ReadFrame reads one frame. It returns io.EOF only when the stream ends on a
// frame boundary and io.ErrUnexpectedEOF when it ends inside one.
func ReadFrame(r io.Reader) (Frame, error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Frame{}, err
	}
	k := Kind(h[0])
	if !k.valid() {
		return Frame{}, fmt.Errorf("read frame: unknown kind %#x (stream out of sync)", h[0])
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > MaxPayload {
		return Frame{}, fmt.Errorf("read %v frame: length %d exceeds %d (stream out of sync)", k, n, MaxPayload)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, fmt.Errorf("read %v frame payload: %w", k, err)
	}
	return Frame{Kind: k, Payload: p}, nil
}

// EncodeExit is the payload of a KindExit frame.
func EncodeExit(code int) []byte {
	return binary.BigEndian.AppendUint32(nil, uint32(int32(code)))
}

// DecodeExit parses a KindExit payload.
func DecodeExit(p []byte) (int, error) {
	if len(p) != 4 {
		return 0, fmt.Errorf("decode exit frame: %d bytes, want 4", len(p))
	}
	return int(int32(binary.BigEndian.Uint32(p))), nil
}

// EncodeFile is the payload of a KindFile frame: a 4-byte path length, the
// path, then the content.
func EncodeFile(path string, content []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(path)))
	b = append(b, path...)
	return append(b, content...)
}

// DecodeFile parses a KindFile payload.
func DecodeFile(p []byte) (path string, content []byte, err error) {
	if len(p) < 4 {
		return "", nil, errors.New("decode file frame: short payload")
	}
	n := binary.BigEndian.Uint32(p)
	if uint64(n) > uint64(len(p)-4) {
		return "", nil, fmt.Errorf("decode file frame: path length %d exceeds payload", n)
	}
	return string(p[4 : 4+n]), p[4+n:], nil
}
