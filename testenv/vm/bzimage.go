package vm

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Booting Debian's compressed bzImage under TCG spends seconds in the
// firmware and in the kernel's own real-mode setup and xz/zstd
// decompressor, emulated instruction by instruction. qemu can instead load
// the uncompressed ELF vmlinux straight into memory and enter it through
// the PVH entry point (CONFIG_PVH=y on Debian's kernels), which more than
// halves the time to the test. The runner extracts vmlinux once per cached
// kernel, with the host's xz or zstd, and falls back to the bzImage when
// that fails.

// bzImage setup header fields (Documentation/arch/x86/boot.rst).
const (
	bzSetupSects    = 0x1f1 // u8: number of 512-byte setup sectors (0 means 4)
	bzHeaderMagic   = 0x202 // "HdrS"
	bzPayloadOffset = 0x248 // u32, boot protocol 2.08+: from the protected-mode code
	bzPayloadLength = 0x24c // u32
)

// BzImagePayload returns the compressed kernel inside a bzImage and the
// decompressor it needs ("xz", "zstd", "gzip"). The payload ends with the
// 4-byte little-endian uncompressed size the kernel build appends, which is
// stripped and returned.
func BzImagePayload(img []byte) (payload []byte, tool string, size uint32, err error) {
	if len(img) < 0x250 || string(img[bzHeaderMagic:bzHeaderMagic+4]) != "HdrS" {
		return nil, "", 0, errors.New("parse bzImage: no HdrS setup header")
	}
	sects := int(img[bzSetupSects])
	if sects == 0 {
		sects = 4
	}
	base := (sects + 1) * 512
	off := int(binary.LittleEndian.Uint32(img[bzPayloadOffset:]))
	n := int(binary.LittleEndian.Uint32(img[bzPayloadLength:]))
	if n < 8 || base+off+n > len(img) {
		return nil, "", 0, fmt.Errorf("parse bzImage: payload [%d,+%d) outside the %d-byte image", base+off, n, len(img))
	}
	p := img[base+off : base+off+n]
	size = binary.LittleEndian.Uint32(p[n-4:])
	p = p[:n-4]
	switch {
	case bytes.HasPrefix(p, []byte("\xfd7zXZ\x00")):
		tool = "xz"
	case bytes.HasPrefix(p, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		tool = "zstd"
	case bytes.HasPrefix(p, []byte{0x1f, 0x8b}):
		tool = "gzip"
	default:
		return nil, "", 0, fmt.Errorf("parse bzImage: unknown payload compression % x", p[:4])
	}
	return p, tool, size, nil
}

// HasPVHNote reports whether an ELF kernel carries the Xen
// XEN_ELFNOTE_PHYS32_ENTRY note (type 18) qemu needs to boot it directly.
func HasPVHNote(vmlinux string) (bool, error) {
	f, err := elf.Open(vmlinux)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return false, fmt.Errorf("read ELF notes: %w", err)
		}
		for len(b) >= 12 {
			namesz := int(f.ByteOrder.Uint32(b))
			descsz := int(f.ByteOrder.Uint32(b[4:]))
			typ := f.ByteOrder.Uint32(b[8:])
			name := b[12:min(len(b), 12+namesz)]
			if strings.TrimRight(string(name), "\x00") == "Xen" && typ == 18 {
				return true, nil
			}
			adv := 12 + (namesz+3)&^3 + (descsz+3)&^3
			if adv > len(b) {
				break
			}
			b = b[adv:]
		}
	}
	return false, nil
}

// BootImage returns what qemu's -kernel should get: the extracted PVH
// vmlinux (made on first use, next to the bzImage) or, when the kernel has
// no PVH entry or extraction fails, the bzImage. The returned note says
// which, for logs.
func (k *Kernel) BootImage(ctx context.Context) (path, note string) {
	out := filepath.Join(filepath.Dir(k.Vmlinuz), "vmlinux-"+k.Version+".pvh")
	if _, err := os.Stat(out); err == nil {
		return out, "pvh"
	}
	if err := extractPVH(ctx, k.Vmlinuz, out); err != nil {
		return k.Vmlinuz, fmt.Sprintf("bzImage (no PVH vmlinux: %v)", err)
	}
	return out, "pvh"
}

func extractPVH(ctx context.Context, vmlinuz, out string) error {
	img, err := os.ReadFile(vmlinuz)
	if err != nil {
		return err
	}
	p, tool, size, err := BzImagePayload(img)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".vmlinux-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, tool, "-dc")
	cmd.Stdin = bytes.NewReader(p)
	cmd.Stdout = tmp
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("decompress vmlinux with %s: %w: %s", tool, err, strings.TrimSpace(stderr.String()))
	}
	fi, err := tmp.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != int64(size) {
		return fmt.Errorf("decompressed vmlinux has %d bytes, the bzImage says %d", fi.Size(), size)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	ok, err := HasPVHNote(tmp.Name())
	if err != nil {
		return fmt.Errorf("inspect vmlinux: %w", err)
	}
	if !ok {
		return errors.New("vmlinux has no PVH entry note (CONFIG_PVH off)")
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}
