package runtime

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// BusyboxPath is Debian's busybox-static: one static binary, so the image
// needs no shared libraries.
const BusyboxPath = "/bin/busybox"

// BusyboxTar writes a root file system to w as a tar stream: /bin/busybox
// (from BusyboxPath) with a symlink per applet (sh, sleep, ip, ping, …),
// and the empty directories a container runtime mounts over. `docker
// import` and `podman import` turn it into an image offline.
func BusyboxTar(w io.Writer) error {
	applets, err := exec.Command(BusyboxPath, "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox image: list applets of %s (apt-get install busybox-static): %w", BusyboxPath, err)
	}
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return fmt.Errorf("busybox image: %w", err)
	}
	now := time.Now()
	tw := tar.NewWriter(w)
	for _, d := range []string{"bin/", "dev/", "etc/", "proc/", "sys/", "tmp/", "root/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: now}); err != nil {
			return fmt.Errorf("busybox image: %w", err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin)), ModTime: now}); err != nil {
		return fmt.Errorf("busybox image: %w", err)
	}
	if _, err := tw.Write(bin); err != nil {
		return fmt.Errorf("busybox image: %w", err)
	}
	for _, a := range strings.Fields(string(applets)) {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: now}); err != nil {
			return fmt.Errorf("busybox image: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("busybox image: %w", err)
	}
	return nil
}

// writeBusyboxTar writes BusyboxTar to a file at path.
func writeBusyboxTar(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("busybox image: %w", err)
	}
	if err := BusyboxTar(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
