package vm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
)

// The initramfs is a cpio archive in the "newc" format (magic 070701), the
// only one the kernel's unpacker reads (init/initramfs.c). Each entry is a
// 110-byte ASCII header of 8-digit hex fields, the NUL-terminated name padded
// to a multiple of 4, then the data padded to a multiple of 4; the archive
// ends with an entry named TRAILER!!!. Archives can be concatenated: the
// kernel unpacks one after the other, which is how the per-run part (init,
// test binary) is appended to the cached per-kernel part (modules, ip).
//
// We write it ourselves so the runner needs no cpio tool on the host.

const (
	cpioMagic   = "070701"
	cpioTrailer = "TRAILER!!!"
	cpioHdrLen  = 110

	modeDir     = 0o040000
	modeRegular = 0o100000
	modeSymlink = 0o120000
	modeCharDev = 0o020000
	modeTypeMsk = 0o170000
)

// CPIOWriter writes one newc archive. Names are archive paths without a
// leading slash ("usr/sbin/ip"); a leading slash is stripped. Parent
// directories are created implicitly (mode 0755), each only once.
type CPIOWriter struct {
	w       *bufio.Writer
	ino     uint32
	entries map[string]uint32 // name -> mode of what was written
	err     error
	closed  bool
}

// NewCPIOWriter starts an archive on w. Inode numbers start at 1 and are
// unique within this archive; entries in concatenated archives never share
// data (nlink is 1), so collisions between archives do not matter.
func NewCPIOWriter(w io.Writer) *CPIOWriter {
	return &CPIOWriter{w: bufio.NewWriterSize(w, 1<<16), entries: map[string]uint32{}}
}

func cleanName(name string) (string, error) {
	n := strings.TrimLeft(path.Clean("/"+name), "/")
	if n == "" || n == "." {
		return "", fmt.Errorf("cpio: empty name %q", name)
	}
	return n, nil
}

func (c *CPIOWriter) header(name string, mode uint32, size int64, rdevMajor, rdevMinor uint32) error {
	if c.err != nil {
		return c.err
	}
	if c.closed {
		return errors.New("cpio: write after Close")
	}
	if size > 0xffffffff {
		return fmt.Errorf("cpio: %s: %d bytes exceeds the newc limit of 4 GiB", name, size)
	}
	c.ino++
	nlink := uint32(1)
	if mode&modeTypeMsk == modeDir {
		nlink = 2
	}
	var hdr strings.Builder
	hdr.WriteString(cpioMagic)
	for _, v := range []uint32{
		c.ino, mode, 0 /* uid */, 0 /* gid */, nlink, 0, /* mtime: fixed, so archives are reproducible */
		uint32(size), 0, 0, rdevMajor, rdevMinor, uint32(len(name) + 1), 0, /* check */
	} {
		fmt.Fprintf(&hdr, "%08x", v)
	}
	hdr.WriteString(name)
	hdr.WriteByte(0)
	if _, err := c.w.WriteString(hdr.String()); err != nil {
		c.err = fmt.Errorf("cpio: write header of %s: %w", name, err)
		return c.err
	}
	return c.pad(cpioHdrLen + len(name) + 1)
}

func (c *CPIOWriter) pad(n int) error {
	if r := n % 4; r != 0 {
		if _, err := c.w.Write(make([]byte, 4-r)); err != nil {
			c.err = fmt.Errorf("cpio: write padding: %w", err)
			return c.err
		}
	}
	return nil
}

// mkparents adds the missing parent directories of name.
func (c *CPIOWriter) mkparents(name string) error {
	dir := path.Dir(name)
	if dir == "." {
		return nil
	}
	if m, ok := c.entries[dir]; ok {
		if m&modeTypeMsk != modeDir {
			return fmt.Errorf("cpio: parent %s of %s is not a directory in the archive", dir, name)
		}
		return nil
	}
	if err := c.mkparents(dir); err != nil {
		return err
	}
	return c.add(dir, modeDir|0o755, 0, 0, 0)
}

func (c *CPIOWriter) add(name string, mode uint32, size int64, maj, min uint32) error {
	if err := c.header(name, mode, size, maj, min); err != nil {
		return err
	}
	c.entries[name] = mode
	return nil
}

func (c *CPIOWriter) begin(name string, mode uint32) (string, error) {
	n, err := cleanName(name)
	if err != nil {
		return "", err
	}
	if m, ok := c.entries[n]; ok {
		if m&modeTypeMsk == modeDir && mode&modeTypeMsk == modeDir {
			return "", nil // directories may be requested twice
		}
		return "", fmt.Errorf("cpio: duplicate entry %s", n)
	}
	return n, c.mkparents(n)
}

// Dir adds a directory.
func (c *CPIOWriter) Dir(name string, perm uint32) error {
	n, err := c.begin(name, modeDir)
	if err != nil || n == "" {
		return err
	}
	return c.add(n, modeDir|perm&0o7777, 0, 0, 0)
}

// Symlink adds a symbolic link name -> target.
func (c *CPIOWriter) Symlink(name, target string) error {
	n, err := c.begin(name, modeSymlink)
	if err != nil {
		return err
	}
	if err := c.add(n, modeSymlink|0o777, int64(len(target)), 0, 0); err != nil {
		return err
	}
	if _, err := c.w.WriteString(target); err != nil {
		c.err = fmt.Errorf("cpio: write %s: %w", n, err)
		return c.err
	}
	return c.pad(len(target))
}

// CharDev adds a character device node, such as dev/console (5, 1), which
// the kernel opens for init's stdio before any devtmpfs is mounted.
func (c *CPIOWriter) CharDev(name string, perm, major, minor uint32) error {
	n, err := c.begin(name, modeCharDev)
	if err != nil {
		return err
	}
	return c.add(n, modeCharDev|perm&0o7777, 0, major, minor)
}

// File adds a regular file whose content is the size bytes read from r.
func (c *CPIOWriter) File(name string, perm uint32, size int64, r io.Reader) error {
	n, err := c.begin(name, modeRegular)
	if err != nil {
		return err
	}
	if err := c.add(n, modeRegular|perm&0o7777, size, 0, 0); err != nil {
		return err
	}
	got, err := io.CopyN(c.w, r, size)
	if err != nil {
		c.err = fmt.Errorf("cpio: write %s: copied %d of %d bytes: %w", n, got, size, err)
		return c.err
	}
	return c.pad(int(size % 4))
}

// Bytes adds a regular file with the given content.
func (c *CPIOWriter) Bytes(name string, perm uint32, b []byte) error {
	return c.File(name, perm, int64(len(b)), bytes.NewReader(b))
}

// Close writes the trailer and flushes; it does not close the underlying
// writer.
func (c *CPIOWriter) Close() error {
	if c.closed {
		return c.err
	}
	if err := c.header(cpioTrailer, 0, 0, 0, 0); err != nil {
		return err
	}
	c.closed = true
	if err := c.w.Flush(); err != nil {
		c.err = fmt.Errorf("cpio: flush: %w", err)
	}
	return c.err
}

// CPIOHeader is one entry read back by CPIOReader.
type CPIOHeader struct {
	Name       string
	Mode       uint32
	Size       int64
	RdevMajor  uint32
	RdevMinor  uint32
	Inode      uint32
	NLink      uint32
	LinkTarget string // for symlinks
}

// IsDir reports whether the entry is a directory.
func (h *CPIOHeader) IsDir() bool { return h.Mode&modeTypeMsk == modeDir }

// IsRegular reports whether the entry is a regular file.
func (h *CPIOHeader) IsRegular() bool { return h.Mode&modeTypeMsk == modeRegular }

// IsSymlink reports whether the entry is a symbolic link.
func (h *CPIOHeader) IsSymlink() bool { return h.Mode&modeTypeMsk == modeSymlink }

// CPIOReader reads newc archives, including several concatenated ones (the
// way the kernel does: a trailer ends one archive, NUL padding is skipped).
// It exists to check what the writer produced and to inspect an initrd.
type CPIOReader struct {
	r    *bufio.Reader
	off  int64
	left int64 // unread data bytes of the current entry
	pad  int64
}

// NewCPIOReader reads archives from r.
func NewCPIOReader(r io.Reader) *CPIOReader { return &CPIOReader{r: bufio.NewReader(r)} }

func (c *CPIOReader) skip(n int64) error {
	got, err := io.CopyN(io.Discard, c.r, n)
	c.off += got
	return err
}

// Next returns the next entry (trailers are skipped) and a reader for its
// data; io.EOF after the last archive.
func (c *CPIOReader) Next() (*CPIOHeader, io.Reader, error) {
	if err := c.skip(c.left + c.pad); err != nil {
		return nil, nil, fmt.Errorf("cpio: skip data at offset %d: %w", c.off, err)
	}
	c.left, c.pad = 0, 0
	for {
		// Skip NUL padding between concatenated archives.
		b, err := c.r.Peek(1)
		if err == io.EOF {
			return nil, nil, io.EOF
		}
		if err != nil {
			return nil, nil, fmt.Errorf("cpio: read at offset %d: %w", c.off, err)
		}
		if b[0] != 0 {
			break
		}
		if err := c.skip(1); err != nil {
			return nil, nil, err
		}
	}
	var raw [cpioHdrLen]byte
	if _, err := io.ReadFull(c.r, raw[:]); err != nil {
		return nil, nil, fmt.Errorf("cpio: read header at offset %d: %w", c.off, err)
	}
	start := c.off
	c.off += cpioHdrLen
	if string(raw[:6]) != cpioMagic {
		return nil, nil, fmt.Errorf("cpio: bad magic %q at offset %d (want newc %s)", raw[:6], start, cpioMagic)
	}
	var f [13]uint32
	for i := range f {
		v, err := strconv.ParseUint(string(raw[6+8*i:14+8*i]), 16, 32)
		if err != nil {
			return nil, nil, fmt.Errorf("cpio: header field %d at offset %d: %w", i, start, err)
		}
		f[i] = uint32(v)
	}
	namesize := int64(f[11])
	if namesize == 0 || namesize > 4096 {
		return nil, nil, fmt.Errorf("cpio: name size %d at offset %d", namesize, start)
	}
	name := make([]byte, namesize)
	if _, err := io.ReadFull(c.r, name); err != nil {
		return nil, nil, fmt.Errorf("cpio: read name at offset %d: %w", start, err)
	}
	c.off += namesize
	if name[namesize-1] != 0 {
		return nil, nil, fmt.Errorf("cpio: name at offset %d is not NUL-terminated", start)
	}
	if err := c.skip((4 - (cpioHdrLen+namesize)%4) % 4); err != nil {
		return nil, nil, fmt.Errorf("cpio: name padding at offset %d: %w", start, err)
	}
	h := &CPIOHeader{
		Name: string(name[:namesize-1]), Inode: f[0], Mode: f[1], NLink: f[4],
		Size: int64(f[6]), RdevMajor: f[9], RdevMinor: f[10],
	}
	c.left = h.Size
	c.pad = (4 - h.Size%4) % 4
	if h.Name == cpioTrailer {
		return c.Next()
	}
	if h.IsSymlink() {
		t := make([]byte, h.Size)
		if _, err := io.ReadFull(c.r, t); err != nil {
			return nil, nil, fmt.Errorf("cpio: read link target of %s: %w", h.Name, err)
		}
		c.off += h.Size
		c.left = 0
		h.LinkTarget = string(t)
		return h, strings.NewReader(""), nil
	}
	return h, &entryReader{c}, nil
}

type entryReader struct{ c *CPIOReader }

func (e *entryReader) Read(p []byte) (int, error) {
	if e.c.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.c.left {
		p = p[:e.c.left]
	}
	n, err := e.c.r.Read(p)
	e.c.left -= int64(n)
	e.c.off += int64(n)
	if err == io.EOF && e.c.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
