// Package jsonx holds the JSON helpers bitplan's readers share: the line
// and column of a byte offset, encoding/json errors rewritten with them, a
// check for duplicate object keys (encoding/json silently keeps the last),
// bounded reads, and a streaming Scanner for documents too large to decode
// whole (the sensitivity table of a million layers).
package jsonx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
)

// Pos is a place in a JSON document: 1-based line and column (in bytes).
type Pos struct{ Line, Col int }

// String returns "line L, column C".
func (p Pos) String() string { return fmt.Sprintf("line %d, column %d", p.Line, p.Col) }

// Position returns the place of byte offset off in data (clamped to data).
func Position(data []byte, off int64) Pos {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	before := data[:off]
	return Pos{bytes.Count(before, []byte("\n")) + 1, int(off) - bytes.LastIndexByte(before, '\n')}
}

// Error rewrites an encoding/json decoding error of data with the line and
// column it occurred at and, for type errors, the field path:
//
//	malformed JSON at line 2, column 14: invalid character ',' …
//	field "layers.params" at line 3, column 20: got JSON string, want float64
func Error(data []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("malformed JSON at %s: %v", Position(data, se.Offset), se)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "(top level)"
		}
		return fmt.Errorf("field %q at %s: got JSON %s, want %v", field, Position(data, te.Offset), te.Value, te.Type)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("malformed JSON: unexpected end of input")
	}
	return fmt.Errorf("malformed JSON: %v", err)
}

// Duplicates returns an error naming the first key that occurs twice in one
// object of data, with the path of the object and the place of the second
// occurrence, or nil. data is assumed to be valid JSON (decode it first:
// on malformed input Duplicates stops quietly at the first bad token).
func Duplicates(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var walk func(path string) error
	walk = func(path string) error {
		tok, err := dec.Token()
		if err != nil {
			return errMalformed
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				off := dec.InputOffset()
				kt, err := dec.Token()
				if err != nil {
					return errMalformed
				}
				k, _ := kt.(string)
				if seen[k] {
					where := path
					if where == "" {
						where = "the top-level object"
					}
					// off is the end of the previous token: step over the
					// separator and spaces to the key itself.
					for off < int64(len(data)) && (data[off] == ',' || isSpace(data[off])) {
						off++
					}
					return fmt.Errorf("duplicate key %q in %s at %s", k, where, Position(data, off))
				}
				seen[k] = true
				child := k
				if path != "" {
					child = path + "." + k
				}
				if err := walk(child); err != nil {
					return err
				}
			}
			_, _ = dec.Token()
		case json.Delim('['):
			for i := 0; dec.More(); i++ {
				if err := walk(fmt.Sprintf("%s[%d]", path, i)); err != nil {
					return err
				}
			}
			_, _ = dec.Token()
		}
		return nil
	}
	if err := walk(""); err != errMalformed {
		return err
	}
	return nil
}

// errMalformed stops Duplicates at the first token it cannot read.
var errMalformed = errors.New("malformed")

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// Unknown returns a warning for every object key in data that the Go type
// of v (a struct, or a pointer to one) does not define, following struct
// fields, slices, arrays, maps and pointers: "layers[3]: unknown field
// \"bitz\" ignored". data is assumed to be valid JSON (decode it first).
func Unknown(data []byte, v any) []string {
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil
	}
	var out []string
	unknownIn(doc, reflect.TypeOf(v), "", &out)
	return out
}

func unknownIn(doc any, t reflect.Type, path string, out *[]string) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := doc.(map[string]any)
		if !ok {
			return
		}
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			fields[name] = f.Type
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ft, ok := fields[k]
			if !ok {
				where := ""
				if path != "" {
					where = path + ": "
				}
				msg := fmt.Sprintf("%sunknown field %q ignored", where, k)
				for name, t := range fields {
					if strings.EqualFold(name, k) {
						// encoding/json matches keys without case.
						msg = fmt.Sprintf("%sfield %q read as %q (write it in lower case)", where, k, name)
						ft, ok = t, true
					}
				}
				*out = append(*out, msg)
				if !ok {
					continue
				}
			}
			child := k
			if path != "" {
				child = path + "." + k
			}
			unknownIn(obj[k], ft, child, out)
		}
	case reflect.Slice, reflect.Array:
		arr, ok := doc.([]any)
		if !ok {
			return
		}
		for i, e := range arr {
			unknownIn(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), out)
		}
	case reflect.Map:
		obj, ok := doc.(map[string]any)
		if !ok {
			return
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			unknownIn(obj[k], t.Elem(), fmt.Sprintf("%s[%q]", path, k), out)
		}
	}
}
