package jsonx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/bitplan/bitplan/internal/readfile"
)

// Scanner reads one JSON value from a stream token by token, holding only
// a small window of the input: a decoder built on it uses memory for what
// it keeps, not for the text. It checks the JSON grammar as it goes (errors
// are *SyntaxError with the place), refuses input past a byte bound, and
// stops when its context is cancelled (checked at every refill, so within a
// buffer's worth of input).
//
// The caller drives it with the shape it expects:
//
//	s.Begin('{')
//	for i := 0; ; i++ {
//		key, ok, err := s.Key(i)   // false at the closing brace
//		…                          // read the value: String, Number, Null, Skip…
//	}
//
// Byte slices returned by Key, String and Number are valid until the next
// call.
type Scanner struct {
	r    io.Reader
	ctx  context.Context
	max  int64
	buf  []byte
	i, n int    // next unread byte and end of data in buf
	base int64  // input offset of buf[0]
	line int    // current line
	nl   int64  // input offset of the last newline read, -1 before any
	rerr error  // the reader's error once it returned one (io.EOF at the end)
	tmp  []byte // an unescaped string
	key  []byte // the last key
}

// Syntax errors and limits.
const (
	// bufSize is the Scanner's window: large enough that refills (and
	// context checks) cost nothing, small next to any table worth streaming.
	bufSize = 256 << 10
	// MaxDepth bounds nesting, as encoding/json does.
	MaxDepth = 10000
)

// SyntaxError is malformed JSON (or input past the bound) at a place.
type SyntaxError struct {
	Msg string
	Pos Pos
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("malformed JSON at %s: %s", e.Pos, e.Msg) }

// ErrEOF is the error of input that ends inside a value.
var ErrEOF = errors.New("malformed JSON: unexpected end of input")

// NewScanner returns a Scanner reading r; max > 0 bounds the input in
// bytes (0: no bound). ctx may be nil.
func NewScanner(ctx context.Context, r io.Reader, max int64) *Scanner {
	if ctx == nil {
		ctx = context.Background()
	}
	return &Scanner{r: r, ctx: ctx, max: max, buf: make([]byte, bufSize), line: 1, nl: -1}
}

// Pos returns the place of the next unread byte.
func (s *Scanner) Pos() Pos { return s.posAt(s.i) }

func (s *Scanner) posAt(i int) Pos { return Pos{s.line, int(s.base + int64(i) - s.nl)} }

// Offset returns the input offset of the next unread byte.
func (s *Scanner) Offset() int64 { return s.base + int64(s.i) }

// more reads more input keeping buf[*keep:] (a token in progress; pass
// s.n to keep nothing) and moves *keep and *j with it. It returns false at
// the end of the input, with s.rerr set, or on a read or context error.
func (s *Scanner) more(keep, j *int) bool {
	if s.rerr != nil {
		return false
	}
	if err := s.ctx.Err(); err != nil {
		s.rerr = err
		return false
	}
	k := *keep
	if k > 0 {
		copy(s.buf, s.buf[k:s.n])
		s.base += int64(k)
		s.n -= k
		s.i -= k
		*j -= k
		*keep = 0
	}
	if s.n == len(s.buf) {
		s.buf = append(s.buf, make([]byte, len(s.buf))...)
	}
	for {
		m, err := s.r.Read(s.buf[s.n:])
		s.n += m
		if s.max > 0 && s.base+int64(s.n) > s.max {
			s.rerr = fmt.Errorf("input larger than the %s this reader accepts", readfile.Size(s.max))
			return false
		}
		if err != nil {
			s.rerr = err
			return m > 0
		}
		if m > 0 {
			return true
		}
	}
}

// fail returns the error for the end of data at buf[j]: a read or context
// error, the bound, or unexpected end of input.
func (s *Scanner) fail() error {
	if s.rerr == nil || s.rerr == io.EOF {
		return ErrEOF
	}
	return s.rerr
}

func (s *Scanner) syntax(i int, format string, args ...any) error {
	return &SyntaxError{Msg: fmt.Sprintf(format, args...), Pos: s.posAt(i)}
}

// quoteChar formats a byte as encoding/json does in its messages.
func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}

// Peek skips white space and returns the next byte without reading it; at
// the end of input it returns 0 and ErrEOF (or the read error).
func (s *Scanner) Peek() (byte, error) {
	for {
		for s.i < s.n {
			c := s.buf[s.i]
			switch c {
			case ' ', '\t', '\r':
				s.i++
			case '\n':
				s.nl = s.base + int64(s.i)
				s.line++
				s.i++
			default:
				return c, nil
			}
		}
		keep, j := s.n, s.i
		if !s.more(&keep, &j) {
			return 0, s.fail()
		}
	}
}

// expect reads the byte c (after white space) or fails with a message about
// what context the byte was expected in.
func (s *Scanner) expect(c byte, context string) error {
	d, err := s.Peek()
	if err != nil {
		return err
	}
	if d != c {
		return s.syntax(s.i, "invalid character %s %s", quoteChar(d), context)
	}
	s.i++
	return nil
}

// Begin reads the opening delimiter c ('{' or '[').
func (s *Scanner) Begin(c byte) error { return s.expect(c, "looking for beginning of value") }

// Key reads the next key of an object whose opening brace has been read,
// with the colon after it; i counts the members read so far (a comma is
// expected before every member but the first). ok is false at the closing
// brace, which is read. The key is unescaped; pos is where it starts.
func (s *Scanner) Key(i int) (key []byte, pos Pos, ok bool, err error) {
	c, err := s.Peek()
	if err != nil {
		return nil, Pos{}, false, err
	}
	if c == '}' {
		s.i++
		return nil, Pos{}, false, nil
	}
	if i > 0 {
		if c != ',' {
			return nil, Pos{}, false, s.syntax(s.i, "invalid character %s after object key:value pair", quoteChar(c))
		}
		s.i++
		if c, err = s.Peek(); err != nil {
			return nil, Pos{}, false, err
		}
	}
	if c != '"' {
		return nil, Pos{}, false, s.syntax(s.i, "invalid character %s looking for beginning of object key string", quoteChar(c))
	}
	pos = s.Pos()
	key, err = s.str()
	if err != nil {
		return nil, pos, false, err
	}
	// Reading on to the colon may refill the window under the key.
	s.key = append(s.key[:0], key...)
	if err := s.expect(':', "after object key"); err != nil {
		return nil, pos, false, err
	}
	return s.key, pos, true, nil
}

// Next reports whether an array whose opening bracket has been read has
// another element, reading the comma before it (i counts the elements read
// so far) or the closing bracket.
func (s *Scanner) Next(i int) (bool, error) {
	c, err := s.Peek()
	if err != nil {
		return false, err
	}
	if c == ']' {
		s.i++
		return false, nil
	}
	if i > 0 {
		if c != ',' {
			return false, s.syntax(s.i, "invalid character %s after array element", quoteChar(c))
		}
		s.i++
	}
	return true, nil
}

// String reads a string value (Peek must have returned '"'), unescaped.
func (s *Scanner) String() ([]byte, error) {
	if _, err := s.Peek(); err != nil {
		return nil, err
	}
	return s.str()
}

// str reads the string starting at buf[i] == '"'. Strings with escapes or
// invalid UTF-8 are decoded by encoding/json, so they mean exactly what they
// mean there.
func (s *Scanner) str() ([]byte, error) {
	start, j := s.i, s.i+1
	simple := true
	for {
		if j >= s.n {
			if !s.more(&start, &j) {
				return nil, s.fail()
			}
			continue
		}
		c := s.buf[j]
		switch {
		case c == '"':
			raw := s.buf[start : j+1]
			s.i = j + 1
			if simple || utf8.Valid(raw) && !containsByte(raw, '\\') {
				return raw[1 : len(raw)-1], nil
			}
			var out string
			if err := json.Unmarshal(raw, &out); err != nil {
				var se *json.SyntaxError
				if errors.As(err, &se) {
					return nil, s.syntax(start+int(se.Offset)-1, "%v", se)
				}
				return nil, s.syntax(start, "%v", err)
			}
			s.tmp = append(s.tmp[:0], out...)
			return s.tmp, nil
		case c < 0x20:
			return nil, s.syntax(j, "invalid character %s in string literal", quoteChar(c))
		case c == '\\' || c >= 0x80:
			simple = false
			if c == '\\' {
				j++ // the escaped byte is never a quote that ends the string
				if j >= s.n && !s.more(&start, &j) {
					return nil, s.fail()
				}
			}
		}
		j++
	}
}

func containsByte(b []byte, c byte) bool {
	for _, d := range b {
		if d == c {
			return true
		}
	}
	return false
}

// Number reads a number value in JSON's grammar and returns its text.
func (s *Scanner) Number() ([]byte, error) {
	if _, err := s.Peek(); err != nil {
		return nil, err
	}
	if b, ok := s.plainNumber(); ok {
		return b, nil
	}
	start, j := s.i, s.i
	// state: 0 start, 1 after '-', 2 after leading 0, 3 int digits, 4 after
	// '.', 5 fraction digits, 6 after 'e', 7 after exponent sign, 8
	// exponent digits.
	state := 0
	for {
		if j >= s.n {
			if !s.more(&start, &j) {
				if s.rerr == io.EOF {
					break
				}
				return nil, s.fail()
			}
			continue
		}
		c := s.buf[j]
		digit := c >= '0' && c <= '9'
		next := -1
		switch state {
		case 0:
			switch {
			case c == '-':
				next = 1
			case c == '0':
				next = 2
			case digit:
				next = 3
			}
		case 1:
			switch {
			case c == '0':
				next = 2
			case digit:
				next = 3
			}
		case 2, 3:
			switch {
			case digit && state == 3:
				next = 3
			case c == '.':
				next = 4
			case c == 'e' || c == 'E':
				next = 6
			}
		case 4, 5:
			switch {
			case digit:
				next = 5
			case state == 5 && (c == 'e' || c == 'E'):
				next = 6
			}
		case 6:
			switch {
			case c == '+' || c == '-':
				next = 7
			case digit:
				next = 8
			}
		case 7, 8:
			if digit {
				next = 8
			}
		}
		if next < 0 {
			break
		}
		state = next
		j++
	}
	switch state {
	case 2, 3, 5, 8:
		s.i = j
		return s.buf[start:j], nil
	}
	if j >= s.n {
		return nil, s.fail()
	}
	return nil, s.syntax(j, "invalid character %s in numeric literal", quoteChar(s.buf[j]))
}

// plainNumber reads the common number -?(0|[1-9][0-9]*)(.[0-9]+)? when it
// lies wholly in the buffer and ends at a byte that cannot continue a
// number; otherwise it reads nothing and Number's state machine decides.
func (s *Scanner) plainNumber() ([]byte, bool) {
	buf, j := s.buf[:s.n], s.i
	if j < len(buf) && buf[j] == '-' {
		j++
	}
	d := j
	for j < len(buf) && buf[j] >= '0' && buf[j] <= '9' {
		j++
	}
	if j == d || (j-d > 1 && buf[d] == '0') {
		return nil, false
	}
	if j < len(buf) && buf[j] == '.' {
		f := j + 1
		for j = f; j < len(buf) && buf[j] >= '0' && buf[j] <= '9'; j++ {
		}
		if j == f {
			return nil, false
		}
	}
	if j >= len(buf) {
		return nil, false
	}
	switch buf[j] {
	case 'e', 'E', '.', '+', '-':
		return nil, false
	}
	start := s.i
	s.i = j
	return buf[start:j], true
}

// Null reads a null if one comes next and reports whether it did.
func (s *Scanner) Null() (bool, error) {
	c, err := s.Peek()
	if err != nil || c != 'n' {
		return false, err
	}
	return true, s.literal("null")
}

// Bool reads true or false.
func (s *Scanner) Bool() (bool, error) {
	c, err := s.Peek()
	if err != nil {
		return false, err
	}
	if c == 't' {
		return true, s.literal("true")
	}
	return false, s.literal("false")
}

func (s *Scanner) literal(word string) error {
	for k := 0; k < len(word); k++ {
		if s.i >= s.n {
			keep, j := s.n, s.i
			if !s.more(&keep, &j) {
				return s.fail()
			}
		}
		if c := s.buf[s.i]; c != word[k] {
			if k == 0 {
				return s.syntax(s.i, "invalid character %s looking for beginning of value", quoteChar(c))
			}
			return s.syntax(s.i, "invalid character %s in literal %s (expecting %s)", quoteChar(c), word, quoteChar(word[k]))
		}
		s.i++
	}
	return nil
}

// Kind returns the kind of the next value as encoding/json names it in
// type errors: "string", "number", "object", "array", "bool" or "null";
// a byte that starts no value is a syntax error.
func (s *Scanner) Kind() (string, error) {
	c, err := s.Peek()
	if err != nil {
		return "", err
	}
	switch {
	case c == '"':
		return "string", nil
	case c == '-' || c >= '0' && c <= '9':
		return "number", nil
	case c == '{':
		return "object", nil
	case c == '[':
		return "array", nil
	case c == 't' || c == 'f':
		return "bool", nil
	case c == 'n':
		return "null", nil
	}
	return "", s.syntax(s.i, "invalid character %s looking for beginning of value", quoteChar(c))
}

// Skip reads one value of any kind, checking its grammar.
func (s *Scanner) Skip() error { return s.skip(0) }

func (s *Scanner) skip(depth int) error {
	kind, err := s.Kind()
	if err != nil {
		return err
	}
	if depth >= MaxDepth {
		return s.syntax(s.i, "exceeded max depth")
	}
	switch kind {
	case "string":
		_, err = s.str()
	case "number":
		_, err = s.Number()
	case "bool":
		_, err = s.Bool()
	case "null":
		_, err = s.Null()
	case "object":
		s.i++
		for i := 0; ; i++ {
			_, _, ok, err := s.Key(i)
			if err != nil || !ok {
				return err
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
		}
	case "array":
		s.i++
		for i := 0; ; i++ {
			ok, err := s.Next(i)
			if err != nil || !ok {
				return err
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
		}
	}
	return err
}

// End checks that nothing but white space follows the value read.
func (s *Scanner) End() error {
	if _, err := s.Peek(); err != nil {
		if errors.Is(err, ErrEOF) {
			return nil
		}
		return err
	}
	return fmt.Errorf("unexpected data after the JSON object at %s", s.Pos())
}

// Err returns the reason the input stopped early other than its end (a
// read error, the bound, a cancelled context), or nil.
func (s *Scanner) Err() error {
	if s.rerr == io.EOF {
		return nil
	}
	return s.rerr
}
