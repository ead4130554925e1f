package wire

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	frames := []Frame{
		{KindStarted, []byte{}},
		{KindStdout, []byte("=== RUN TestX\n")},
		{KindStderr, bytes.Repeat([]byte("e"), 70000)},
		{KindFile, EncodeFile("/tmp/go-build1/b001/testlog.txt", []byte("getenv CI\n"))},
		{KindExit, EncodeExit(-3)},
	}
	for _, f := range frames {
		if err := WriteFrame(&buf, f.Kind, f.Payload); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range frames {
		got, err := ReadFrame(&buf)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if got.Kind != want.Kind || !bytes.Equal(got.Payload, want.Payload) {
			t.Fatalf("frame %d: got %v/%d bytes, want %v/%d bytes", i, got.Kind, len(got.Payload), want.Kind, len(want.Payload))
		}
	}
	if _, err := ReadFrame(&buf); err != io.EOF {
		t.Fatalf("after the last frame: got %v, want io.EOF", err)
	}
}

func TestFrameWireFormat(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteFrame(&buf, KindStdout, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if want := []byte{'o', 0, 0, 0, 2, 'h', 'i'}; !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("got % x, want % x", buf.Bytes(), want)
	}
}

func TestReadFrameErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"unknown kind", []byte{'Z', 0, 0, 0, 0}, "unknown kind"},
		{"zero kind", []byte{0, 0, 0, 0, 0}, "unknown kind"},
		{"oversized", []byte{'o', 0xff, 0xff, 0xff, 0xff}, "exceeds"},
		{"truncated payload", []byte{'o', 0, 0, 0, 5, 'a'}, "unexpected EOF"},
		{"truncated header", []byte{'o', 0}, "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadFrame(bytes.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if err := WriteFrame(io.Discard, KindInvalid, nil); err == nil {
		t.Fatal("writing an invalid kind succeeded")
	}
}

func TestExitAndFilePayloads(t *testing.T) {
	for _, c := range []int{0, 1, 125, 255, -1} {
		got, err := DecodeExit(EncodeExit(c))
		if err != nil || got != c {
			t.Fatalf("exit %d: got %d, %v", c, got, err)
		}
	}
	if _, err := DecodeExit([]byte{1}); err == nil {
		t.Fatal("short exit payload decoded")
	}
	p, c, err := DecodeFile(EncodeFile("/a/b", []byte("xyz")))
	if err != nil || p != "/a/b" || string(c) != "xyz" {
		t.Fatalf("got %q %q %v", p, c, err)
	}
	if _, _, err := DecodeFile([]byte{0, 0, 0, 9, 'a'}); err == nil {
		t.Fatal("file payload with a lying path length decoded")
	}
}

func TestKindString(t *testing.T) {
	if KindExit.String() != "exit" || Kind(0).String() != "Kind(0)" {
		t.Fatalf("got %q %q", KindExit, Kind(0))
	}
}
