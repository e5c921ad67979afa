package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
)

// field is one top-level member of a request object: its key and its raw
// JSON value, both slices of the frame.
type field struct {
	key []byte // unquoted; escapes resolved when the key had any
	val []byte
}

// errNotObject is returned by splitObject for anything but a JSON object.
var errNotObject = errors.New("not a JSON object")

// splitObject splits a JSON object into its top-level members without
// decoding the values, which the typed getters do on demand. It is the hot
// path of every request: one validity pass, then one pass over the bytes,
// with one allocation for the member slice — where decoding into a
// map[string]json.RawMessage allocates per member and decodes everything.
// A key that appears twice keeps its last value, as encoding/json does.
func splitObject(data []byte) ([]field, error) {
	if !json.Valid(data) {
		return nil, errNotObject
	}
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, errNotObject
	}
	fields := make([]field, 0, 8)
	i = skipWS(data, i+1)
	if data[i] == '}' {
		return fields, nil
	}
	for {
		end := stringEnd(data, i) // data[i] == '"': Valid guarantees it
		key := data[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			if err := json.Unmarshal(data[i:end], &k); err != nil {
				return nil, errNotObject
			}
			key = []byte(k)
		}
		i = skipWS(data, end)
		i = skipWS(data, i+1) // past ':'
		vend := valueEnd(data, i)
		fields = append(fields, field{key: key, val: data[i:vend]})
		i = skipWS(data, vend)
		if data[i] == '}' {
			return fields, nil
		}
		i = skipWS(data, i+1) // past ','
	}
}

func skipWS(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd returns the index just past the string starting at data[i].
func stringEnd(data []byte, i int) int {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(data)
}

// valueEnd returns the index just past the (valid) value starting at data[i].
func valueEnd(data []byte, i int) int {
	switch data[i] {
	case '"':
		return stringEnd(data, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				j = stringEnd(data, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(data)
	default: // number, true, false, null
		j := i
		for j < len(data) {
			switch data[j] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return j
			}
			j++
		}
		return j
	}
}

// unquote decodes a JSON string value; the fast path copies it as it is
// when it holds no escapes.
func unquote(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}
