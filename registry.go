package pluginhost

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Registry holds plugins compiled into the program. Plugins normally register
// with the package-level [Register] from an init function, which adds them to
// [DefaultRegistry]; tests build their own with [NewRegistry] and pass it in
// Config.Registry. A Registry is safe for concurrent use; the zero value is
// not usable.
type Registry struct {
	mu      sync.RWMutex
	entries map[string]*registration
}

// registration is one registered plugin with its parsed manifest, or the
// reason it could not be parsed.
type registration struct {
	key      string // the plugin id, or the Go type when the id is unknown
	plugin   Plugin
	goType   string
	manifest *Manifest
	err      error // why the manifest is unusable; the Manager reports it
}

// DefaultRegistry is the registry that [Register] adds to and that a Manager
// uses when Config.Registry is nil.
var DefaultRegistry = NewRegistry()

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{entries: map[string]*registration{}}
}

// Register adds p to DefaultRegistry. It is meant to be called from a
// plugin package's init function and panics if p is nil or another plugin
// already registered the same id, naming both Go types, like sql.Register.
// A manifest that does not parse does not panic: the Manager reports the
// plugin as failed, with the reason, and starts the others.
func Register(p Plugin) {
	if err := DefaultRegistry.Register(p); err != nil {
		panic(err)
	}
}

// Register adds p to the registry. It returns an error wrapping ErrNilPlugin
// for a nil plugin and ErrDuplicateID when another plugin has the same id.
// The manifest is parsed here, once; a manifest that does not parse is kept
// with its error, for the Manager to report, and is not an error of Register.
func (r *Registry) Register(p Plugin) error {
	if p == nil || isNilPointer(p) {
		return fmt.Errorf("%w: Register called with a nil plugin", ErrNilPlugin)
	}
	reg := &registration{plugin: p, goType: fmt.Sprintf("%T", p)}
	data, err := callManifest(p)
	if err == nil {
		reg.manifest, err = ParseManifest(data)
	}
	reg.err = err
	reg.key = registrationKey(reg)

	r.mu.Lock()
	defer r.mu.Unlock()
	if reg.key == "("+reg.goType+")" {
		// No id to collide on: two broken plugins of one Go type are two
		// entries, each reported by the Manager, not a duplicate.
		for n := 2; r.entries[reg.key] != nil; n++ {
			reg.key = fmt.Sprintf("(%s #%d)", reg.goType, n)
		}
	}
	if prev, dup := r.entries[reg.key]; dup {
		return fmt.Errorf("%w: plugin id %q is registered by both %s and %s (two plugins cannot share an id)",
			ErrDuplicateID, reg.key, prev.goType, reg.goType)
	}
	r.entries[reg.key] = reg
	return nil
}

// Plugins returns the registered plugins, sorted by id. Plugins whose
// manifest does not parse are sorted by their Go type instead.
func (r *Registry) Plugins() []Plugin {
	regs := r.snapshot()
	out := make([]Plugin, len(regs))
	for i, reg := range regs {
		out[i] = reg.plugin
	}
	return out
}

// snapshot returns the registrations sorted by key.
func (r *Registry) snapshot() []*registration {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*registration, 0, len(r.entries))
	for _, reg := range r.entries {
		out = append(out, reg)
	}
	slices.SortFunc(out, func(a, b *registration) int { return strings.Compare(a.key, b.key) })
	return out
}

// registrationKey is the plugin id, from the manifest or, when the manifest
// is invalid, from the error when the id itself was readable; otherwise the
// Go type in parentheses, which cannot be a valid id (numbered by Register
// when several such plugins share a Go type).
func registrationKey(reg *registration) string {
	if reg.manifest != nil {
		return reg.manifest.ID
	}
	var me *ManifestError
	if errors.As(reg.err, &me) && me.Plugin != "" {
		return me.Plugin
	}
	return "(" + reg.goType + ")"
}

// manifestTimeout bounds the call of a plugin's Manifest method at
// Register: 10 seconds, unless the tests set another.
var manifestTimeout atomic.Int64

func manifestBound() time.Duration {
	if d := time.Duration(manifestTimeout.Load()); d > 0 {
		return d
	}
	return 10 * time.Second
}

// callManifest calls p.Manifest, on a goroutine of its own, turning a
// panic, runtime.Goexit or a call that has not returned within
// manifestTimeout into an error.
func callManifest(p Plugin) ([]byte, error) {
	type result struct {
		data []byte
		c    *caught
	}
	done := make(chan result, 1)
	go func() {
		returned := false
		defer func() {
			if !returned {
				done <- result{c: &caught{value: errGoexit}}
			}
		}()
		var data []byte
		c, _ := protect(func() error { data = p.Manifest(); return nil })
		returned = true
		done <- result{data, c}
	}()
	bound := manifestBound()
	timer := time.NewTimer(bound)
	defer timer.Stop()
	var r result
	select {
	case r = <-done:
	case <-timer.C:
		return nil, fmt.Errorf("%w: Manifest() did not return within %s (it should return its embedded plugin.toml)", ErrInvalidManifest, bound)
	}
	switch {
	case r.c != nil && r.c.value == errGoexit:
		return nil, fmt.Errorf("%w: Manifest() %w", ErrInvalidManifest, errGoexit)
	case r.c != nil:
		return nil, fmt.Errorf("%w: Manifest() panicked: %v", ErrInvalidManifest, r.c.value)
	case len(r.data) == 0:
		return nil, fmt.Errorf("%w: Manifest() returned no bytes (is the go:embed path right?)", ErrInvalidManifest)
	}
	return r.data, nil
}

func isNilPointer(p Plugin) bool {
	v := reflect.ValueOf(p)
	switch v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan, reflect.Interface:
		return v.IsNil()
	}
	return false
}
