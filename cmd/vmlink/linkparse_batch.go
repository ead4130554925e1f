package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// batchLine is one parsed line of a batch file.
type batchLine struct {
	no  int
	req *linkRequest
}

// parseBatch reads and parses every line of a batch file.
func parseBatch(r io.Reader, file string) ([]batchLine, error) {
	var out []batchLine
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	no := 0
	for sc.Scan() {
		no++
		args, err := splitBatchLine(sc.Text())
		if err != nil {
			return nil, usagef("%s:%d: %v", file, no, err)
		}
		if len(args) == 0 {
			continue
		}
		if args[0] == "link" {
			args = args[1:]
		}
		if len(args) == 0 {
			return nil, usagef("%s:%d: empty command: write link add|set|del|show …", file, no)
		}
		req, err := parseLinkArgs(args)
		if errors.Is(err, errHelp) {
			return nil, usagef("%s:%d: help is not a batch command", file, no)
		}
		if err != nil {
			return nil, usagef("%s:%d: %v", file, no, err)
		}
		if req.op == opBatch || req.op == opHelp {
			return nil, usagef("%s:%d: %s is not allowed inside a batch", file, no, req.op)
		}
		out = append(out, batchLine{no: no, req: req})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("link batch: read %s: %w", file, err)
	}
	return out, nil
}

// splitBatchLine splits a line into words like iproute2's makeargs: blanks
// separate words, "…" and '…' quote, # starts a comment.
func splitBatchLine(s string) ([]string, error) {
	var (
		out   []string
		cur   strings.Builder
		inTok bool
		quote rune
	)
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
				continue
			}
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inTok = r, true
		case r == '#':
			if inTok {
				out = append(out, cur.String())
			}
			return out, nil
		case r == ' ' || r == '\t' || r == '\r':
			if inTok {
				out = append(out, cur.String())
				cur.Reset()
				inTok = false
			}
		default:
			cur.WriteRune(r)
			inTok = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote")
	}
	if inTok {
		out = append(out, cur.String())
	}
	return out, nil
}
