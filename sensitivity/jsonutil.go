package sensitivity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// fieldSet returns the JSON field names of a struct value's type.
func fieldSet(v any) map[string]bool {
	t := reflect.TypeOf(v)
	m := make(map[string]bool, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			m[name] = true
		}
	}
	return m
}

// unknownFields returns a warning for every field of the top-level object and
// of each layer that the format does not define.
func unknownFields(data []byte) ([]string, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, err
	}
	var warn []string
	for _, k := range sortedKeys(top) {
		if !knownTop[k] {
			warn = append(warn, fmt.Sprintf("unknown field %q ignored", k))
		}
	}
	var layers []map[string]json.RawMessage
	if raw, ok := top["layers"]; ok {
		if err := json.Unmarshal(raw, &layers); err != nil {
			return nil, err
		}
	}
	for i, l := range layers {
		for _, k := range sortedKeys(l) {
			if !knownLayer[k] {
				name := ""
				_ = json.Unmarshal(l["name"], &name)
				warn = append(warn, fmt.Sprintf("layers[%d] (%q): unknown field %q ignored", i, name, k))
			}
		}
	}
	return warn, nil
}

func sortedKeys(m map[string]json.RawMessage) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// jsonError rewrites a decoding error with the line and column it occurred
// at and, for type errors, the field path.
func jsonError(data []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("malformed JSON at %s: %v", position(data, se.Offset), se)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "(top level)"
		}
		return fmt.Errorf("field %q at %s: got JSON %s, want %v", field, position(data, te.Offset), te.Value, te.Type)
	case err.Error() == "EOF" || err.Error() == "unexpected EOF":
		return fmt.Errorf("malformed JSON: unexpected end of input")
	}
	return fmt.Errorf("malformed JSON: %v", err)
}

// position returns "line L, column C" of a byte offset.
func position(data []byte, off int64) string {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf("line %d, column %d", line, col)
}
