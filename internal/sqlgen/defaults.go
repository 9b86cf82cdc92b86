package sqlgen

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// timestampLayouts are the accepted forms of a literal timestamp default.
var timestampLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02"}

// normalizeDefault checks a literal default against the column type and
// returns it as a string, int64, float64 or bool; problem is "" when valid.
// Integer defaults are any Go integer type; a float is rejected even when it
// has no fraction, so that the declaration says what it means.
func normalizeDefault(typ string, v any) (norm any, problem string) {
	switch typ {
	case TypeText, TypeJSON, TypeTimestamp:
		s, ok := v.(string)
		if !ok {
			return nil, mismatch(typ, v)
		}
		return s, stringProblem(typ, s)
	case TypeInteger:
		return normalizeInteger(v)
	case TypeReal:
		return normalizeReal(v)
	case TypeBoolean:
		b, ok := v.(bool)
		if !ok {
			return nil, mismatch(typ, v)
		}
		return b, ""
	case TypeBlob:
		return nil, "blob columns take no literal default"
	}
	return nil, ""
}

// mismatch says that the default v does not suit a column of type typ.
func mismatch(typ string, v any) string {
	return fmt.Sprintf("default %s, the column is %s", describe(v), typ)
}

// normalizeInteger checks the default of an integer column.
func normalizeInteger(v any) (any, string) {
	i, ok, inRange := toInt64(v)
	switch {
	case !ok && isFloat(v):
		return nil, mismatch(TypeInteger, v) + " (write an integer)"
	case !ok:
		return nil, mismatch(TypeInteger, v)
	case !inRange:
		return nil, fmt.Sprintf("default %v is out of the range of a 64-bit integer", v)
	}
	return i, ""
}

// normalizeReal checks the default of a real column: an integer that a
// float64 represents exactly, or a finite float.
func normalizeReal(v any) (any, string) {
	if i, ok, inRange := toInt64(v); ok {
		if !inRange {
			return nil, fmt.Sprintf("default %v is out of the range of a 64-bit integer", v)
		}
		f := float64(i)
		if f >= 0x1p63 || int64(f) != i {
			return nil, fmt.Sprintf("default %v cannot be represented exactly as a real", v)
		}
		return f, ""
	}
	var f float64
	switch x := v.(type) {
	case float32:
		// Keep the shortest decimal of the float32, not its float64
		// expansion: float32(0.1) is 0.1, not 0.10000000149011612.
		f, _ = strconv.ParseFloat(strconv.FormatFloat(float64(x), 'g', -1, 32), 64)
	case float64:
		f = x
	default:
		return nil, mismatch(TypeReal, v)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Sprintf("default %v is not a finite number", f)
	}
	return f, ""
}

// stringProblem checks a string default of a text, json or timestamp column.
func stringProblem(typ, s string) string {
	switch {
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Sprintf("default %q contains a NUL byte", s)
	case !utf8.ValidString(s):
		return fmt.Sprintf("default %q is not valid UTF-8", s)
	case typ == TypeJSON && !json.Valid([]byte(s)):
		return fmt.Sprintf("default %q is not valid JSON", s)
	case typ == TypeTimestamp:
		for _, layout := range timestampLayouts {
			if _, err := time.Parse(layout, s); err == nil {
				return ""
			}
		}
		return fmt.Sprintf(`default %q is not a timestamp: use RFC 3339, "2006-01-02 15:04:05" or "2006-01-02", or DefaultNow`, s)
	}
	return ""
}

// toInt64 converts any Go integer type. ok is false for other types;
// inRange is false for a uint beyond the int64 range.
func toInt64(v any) (i int64, ok, inRange bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true, true
	case int8:
		return int64(x), true, true
	case int16:
		return int64(x), true, true
	case int32:
		return int64(x), true, true
	case int64:
		return x, true, true
	case uint:
		return int64(x), true, uint64(x) <= math.MaxInt64
	case uint8:
		return int64(x), true, true
	case uint16:
		return int64(x), true, true
	case uint32:
		return int64(x), true, true
	case uint64:
		return int64(x), true, x <= math.MaxInt64
	}
	return 0, false, false
}

func isFloat(v any) bool {
	switch v.(type) {
	case float32, float64:
		return true
	}
	return false
}

// describe renders a default value and its kind for an error message:
// `5 is an integer`, `"x" is a string`.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("%q is a string", x)
	case bool:
		return fmt.Sprintf("%t is a bool", x)
	}
	if _, ok, _ := toInt64(v); ok {
		return fmt.Sprintf("%v is an integer", v)
	}
	if isFloat(v) {
		return fmt.Sprintf("%v is a float", v)
	}
	return fmt.Sprintf("of type %T", v)
}

// literal renders a normalized default as an SQL literal.
func literal(d Dialect, v any) string {
	switch x := v.(type) {
	case string:
		return "'" + strings.ReplaceAll(x, "'", "''") + "'"
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		switch {
		case d == Postgres && x:
			return "TRUE"
		case d == Postgres:
			return "FALSE"
		case x:
			return "1"
		default:
			return "0"
		}
	}
	panic(fmt.Sprintf("sqlgen: default of type %T was not normalized", v))
}
