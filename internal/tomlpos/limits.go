package tomlpos

// Deeper scans src once, before it is decoded, and returns the line of the
// first key, table header or value nested more than limit levels deep,
// with the depth found there; 0, 0 when nothing is. It takes time linear in
// the length of src and never fails: on malformed input it returns what it
// found, and the decoder reports the syntax.
//
// Depth counts what a decoder nests: each part of a table header or a
// dotted key, the elements of each array (an [[array]] header's too), and
// each part of a key inside an inline table. Under the header [a.b] the key
// c is 3 levels deep; in c = { d = [1] }, d is 4 and the array's element 5;
// under [[settings]] the key key is 3, as is settings[0].key.
func Deeper(src []byte, limit int) (line, depth int) {
	d := &depthScanner{scanner: scanner{src: src, line: 1}, limit: limit}
	if len(src) >= 3 && string(src[:3]) == "\ufeff" {
		d.pos = 3
	}
	d.run()
	return d.overLine, d.overDepth
}

// TopString returns the value of key in the top-level table of src, before
// the first table header, when it is a single-line string; ok is false
// otherwise. It reads src once and never fails, for naming a document
// that is refused before it is decoded.
func TopString(src []byte, key string) (value string, ok bool) {
	s := &scanner{src: src, line: 1}
	for s.pos < len(s.src) {
		s.skipSpace()
		switch s.peek() {
		case 0:
			if s.pos < len(s.src) {
				s.next()
			}
		case '\n':
			s.next()
		case '#':
			s.skipComment()
		case '[':
			return "", false
		default:
			segs, ok := s.key()
			s.skipSpace()
			if !ok || s.peek() != '=' {
				s.skipLine()
				continue
			}
			s.next()
			s.skipSpace()
			if len(segs) == 1 && segs[0] == key {
				switch q := s.peek(); {
				case (q == '"' || q == '\'') && !s.hasPrefix(q, 3):
					raw, closed := s.quoted(q)
					if !closed {
						return "", false
					}
					if q == '"' {
						raw = unescape(raw)
					}
					return raw, true
				}
				return "", false
			}
			s.skipValue()
		}
	}
	return "", false
}

// depthScanner is the scanner of Deeper.
type depthScanner struct {
	scanner
	limit     int
	table     int // depth of the current table: its header's parts
	overLine  int // where the limit was first passed; 0 before
	overDepth int
}

// frame is an array or inline table being scanned.
type frame struct {
	inline bool // an inline table, else an array
	depth  int  // depth of its elements (array) or of the table itself
	key    int  // parts of the inline table's current key
}

// at records depth at the current line when it passes the limit and
// reports whether scanning goes on.
func (d *depthScanner) at(depth int) bool {
	if depth > d.limit && d.overLine == 0 {
		d.overLine, d.overDepth = d.line, depth
	}
	return d.overLine == 0
}

func (d *depthScanner) run() {
	for d.pos < len(d.src) && d.overLine == 0 {
		d.skipSpace()
		switch d.peek() {
		case 0:
			if d.pos < len(d.src) {
				d.next()
			}
		case '\n':
			d.next()
		case '#':
			d.skipComment()
		case '[':
			d.header()
		default:
			d.keyValue()
		}
	}
}

// header reads a [table] or [[array]] header, which sets the depth of the
// keys below it.
func (d *depthScanner) header() {
	d.next() // [
	depth := 0
	if d.peek() == '[' {
		d.next()
		depth++ // the array's elements are one level down
	}
	segs, _ := d.key()
	depth += len(segs)
	d.table = depth
	if d.at(depth) {
		d.skipLine()
	}
}

// keyValue reads a key = value line.
func (d *depthScanner) keyValue() {
	segs, ok := d.key()
	d.skipSpace()
	if !ok || d.peek() != '=' {
		d.skipLine()
		return
	}
	d.next() // =
	depth := d.table + len(segs)
	if d.at(depth) {
		d.value(depth)
	}
}

// value scans a value at depth, stopping before the newline that ends it.
func (d *depthScanner) value(depth int) {
	var stack []frame
	cur := depth // depth of what is being scanned
	for d.pos < len(d.src) && d.overLine == 0 {
		switch c := d.peek(); c {
		case '\n':
			if len(stack) == 0 {
				return
			}
			d.next()
		case '"', '\'':
			if d.hasPrefix(c, 3) {
				d.skipMultiline(c)
			} else if _, closed := d.quoted(c); !closed && len(stack) == 0 {
				return
			}
		case '#':
			d.skipComment()
		case '[':
			d.next()
			cur++
			stack = append(stack, frame{depth: cur})
			d.at(cur)
		case '{':
			d.next()
			stack = append(stack, frame{inline: true, depth: cur})
			cur = d.inlineKey(&stack[len(stack)-1])
		case ',':
			d.next()
			if n := len(stack); n > 0 && stack[n-1].inline {
				cur = d.inlineKey(&stack[n-1])
			}
		case ']', '}':
			d.next()
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			if n := len(stack); n > 0 {
				cur = stack[n-1].depth + stack[n-1].key
			}
		default:
			d.next()
		}
	}
}

// inlineKey reads the key of the next entry of the inline table f, if one
// follows, and returns the depth of its value.
func (d *depthScanner) inlineKey(f *frame) int {
skip:
	for d.pos < len(d.src) {
		switch d.peek() {
		case ' ', '\t', '\r', '\n':
			d.next()
		case '#':
			d.skipComment()
		default:
			break skip
		}
	}
	f.key = 0
	if segs, ok := d.key(); ok {
		f.key = len(segs)
		d.at(f.depth + f.key)
	}
	return f.depth + f.key
}
