package routerec

import (
	"path"
	"reflect"
	"runtime"
	"strconv"
	"strings"
)

// shapeOf returns the shape of a route pattern: the key under which chi's
// tree stores it. Param names are dropped ({id} becomes {}) and a regexp
// param keeps its regexp, anchored as chi anchors it ({id:[0-9]+} becomes
// {:^[0-9]+$}). It mirrors chi's patNextSegment; a pattern chi would reject
// (only recorded after chi accepted it, so not expected here) is returned
// unchanged.
func shapeOf(pattern string) string {
	var b strings.Builder
	rest := pattern
	for {
		ps := strings.IndexByte(rest, '{')
		ws := strings.IndexByte(rest, '*')
		if ps < 0 || (ws >= 0 && ws < ps) {
			// No more params: static text, possibly ending in '*'.
			b.WriteString(rest)
			return b.String()
		}
		// Find the closing '}', counting nested braces as chi does.
		pe, depth := -1, 0
		for i := ps; i < len(rest) && pe < 0; i++ {
			switch rest[i] {
			case '{':
				depth++
			case '}':
				depth--
				if depth == 0 {
					pe = i
				}
			}
		}
		if pe < 0 {
			return pattern
		}
		b.WriteString(rest[:ps])
		if _, rexpat, isRegexp := strings.Cut(rest[ps+1:pe], ":"); isRegexp {
			b.WriteString("{:" + anchor(rexpat) + "}")
		} else {
			b.WriteString("{}")
		}
		rest = rest[pe+1:]
	}
}

// anchor adds '^' and '$' to a non-empty param regexp as chi does.
func anchor(rexpat string) string {
	if rexpat == "" {
		return rexpat
	}
	if rexpat[0] != '^' {
		rexpat = "^" + rexpat
	}
	if rexpat[len(rexpat)-1] != '$' {
		rexpat += "$"
	}
	return rexpat
}

// selfPrefix is the prefix of the function names of this package.
var selfPrefix = reflect.TypeFor[Recorder]().PkgPath() + "."

// chiPrefix is the prefix of the function names of chi and its packages.
const chiPrefix = "github.com/go-chi/chi/"

// location returns the first caller outside this package and chi as
// <parent dir>/<file>:<line>, or "unknown".
func location() string {
	var pcs [64]uintptr
	n := runtime.Callers(2, pcs[:])
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		if f.Function != "" && !strings.HasPrefix(f.Function, selfPrefix) &&
			!strings.HasPrefix(f.Function, chiPrefix) {
			dir, file := path.Split(f.File)
			return path.Join(path.Base(dir), file) + ":" + strconv.Itoa(f.Line)
		}
		if !more {
			return "unknown"
		}
	}
}
