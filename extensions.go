package pluginhost

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
)

// Declarer is what declares and looks up extension points: a *Manager (the
// host, before or after Start) or a *Host (a plugin, usually in Init). It
// cannot be implemented outside this package.
type Declarer interface {
	extensionScope() (r *extensionRegistry, owner string)
}

func (m *Manager) extensionScope() (*extensionRegistry, string) {
	if m == nil {
		return nil, ""
	}
	return m.extensions, ""
}

func (h *Host) extensionScope() (*extensionRegistry, string) {
	if h == nil || h.m == nil {
		return nil, ""
	}
	return h.m.extensions, h.id
}

// ExtensionPoint is a typed slot the host or a plugin declares for an
// interface T, to which plugins contribute named implementations, called
// providers, in their Init: "add support for another cloud", "add an
// action to the menu". Get one with [DeclareExtensionPoint] or
// [ExtensionPointOf]; it is bound to one Manager.
//
// Lookups see only the providers of plugins running now, in plugin
// (dependency) order and, within a plugin, in the order it provided them.
// A plugin that is disabled or fails disappears from every lookup at once;
// while Start runs no plugin is running yet, so lookups are empty until it
// finishes. Lookups take no lock and Get does not allocate: the providers
// are an immutable snapshot behind an atomic pointer, replaced when a
// plugin provides or stops.
//
// Calls made through [ExtensionPoint.Each] and [ExtensionPoint.Call] are
// contained: a panic is recovered, logged with the provider's plugin id and
// counted against that plugin's circuit breaker. An implementation taken
// from Get, All or Providers and called directly is not.
//
// An ExtensionPoint is safe for concurrent use; a nil *ExtensionPoint has
// no providers.
type ExtensionPoint[T any] struct {
	name  string
	owner string // the plugin that declared it; "" for the host
	typ   reflect.Type
	r     *extensionRegistry
	set   atomic.Pointer[providerSet[T]]
}

// Provider is one implementation contributed to an [ExtensionPoint].
type Provider[T any] struct {
	// Name identifies the provider within its extension point ("aws").
	Name string
	// Plugin is the id of the plugin that provided it.
	Plugin string
	// Impl is the implementation.
	Impl T
}

// ExtensionPointInfo describes one extension point, as
// [Manager.ExtensionPoints] lists it.
type ExtensionPointInfo struct {
	Name string `json:"name"`
	// Type is the Go interface type, qualified by its package path.
	Type string `json:"type"`
	// DeclaredBy is the id of the plugin that declared the point first,
	// or "" when the host did.
	DeclaredBy string                  `json:"declared_by,omitempty"`
	Providers  []ExtensionProviderInfo `json:"providers"`
}

// ExtensionProviderInfo describes one provider of an extension point.
type ExtensionProviderInfo struct {
	Name   string `json:"name"`
	Plugin string `json:"plugin"`
	// Running is false while the plugin is not running: its provider is
	// left out of every lookup.
	Running bool `json:"running"`
}

// maxExtensionNameLen bounds extension point and provider names.
const maxExtensionNameLen = 100

// extensionNameRE: lowercase dotted words, such as "deploy.cloud" or
// "actions.issue-menu".
var extensionNameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$`)

// checkExtensionName says what is wrong with an extension point or
// provider name, or returns "".
func checkExtensionName(name string) string {
	if len(name) <= maxExtensionNameLen && extensionNameRE.MatchString(name) {
		return ""
	}
	return fmt.Sprintf("use lowercase dotted words of letters, digits, '-' and '_', each starting with a letter, at most %d bytes, such as \"deploy.cloud\"",
		maxExtensionNameLen)
}

// DeclareExtensionPoint declares the extension point name for the interface
// type T on the Manager behind d, and returns its handle. The host declares
// with its *Manager, before Start so that every plugin's Init can provide;
// a plugin declares with its *Host in Init, and plugins that depend on it
// provide in theirs. Declaring a name again with the same T returns the same
// point; with another T it is an error, as is a T that is not an interface
// type. A point stays declared for the Manager's lifetime, even when the
// plugin that declared it stops. It is safe for concurrent use.
func DeclareExtensionPoint[T any](d Declarer, name string) (*ExtensionPoint[T], error) {
	r, owner, err := extensionScope(d)
	if err != nil {
		return nil, err
	}
	typ := reflect.TypeFor[T]()
	if typ.Kind() != reflect.Interface {
		return nil, fmt.Errorf("pluginhost: extension point %q: %s is not an interface type: declare the point for the interface its providers implement",
			name, typ)
	}
	if bad := checkExtensionName(name); bad != "" {
		return nil, fmt.Errorf("pluginhost: invalid extension point name %q: %s", name, bad)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if existing, ok := r.points[name]; ok {
		if ep, same := existing.(*ExtensionPoint[T]); same {
			return ep, nil
		}
		return nil, fmt.Errorf("pluginhost: extension point %q is already declared for %s by %s; it cannot be declared again for %s",
			name, existing.info().Type, declarerName(existing.info().DeclaredBy), qualifiedType(typ))
	}
	ep := &ExtensionPoint[T]{name: name, owner: owner, typ: typ, r: r}
	ep.set.Store(&providerSet[T]{})
	r.points[name] = ep
	return ep, nil
}

// ExtensionPointOf returns the extension point name declared on the
// Manager behind d, for use by a caller that did not declare it. It is an
// error wrapping [ErrNotFound] when the point is not declared (yet), and an
// error when it was declared for another type than T. It is safe for
// concurrent use.
func ExtensionPointOf[T any](d Declarer, name string) (*ExtensionPoint[T], error) {
	r, _, err := extensionScope(d)
	if err != nil {
		return nil, err
	}
	pt := r.point(name)
	if pt == nil {
		return nil, fmt.Errorf("%w: extension point %q is not declared", ErrNotFound, name)
	}
	ep, ok := pt.(*ExtensionPoint[T])
	if !ok {
		return nil, fmt.Errorf("pluginhost: extension point %q is declared for %s, not %s",
			name, pt.info().Type, qualifiedType(reflect.TypeFor[T]()))
	}
	return ep, nil
}

// Provide contributes impl, under name, to the extension point named point,
// on behalf of the plugin behind h. Call it in Init: the provider is seen
// once the plugin is running, and is removed when the plugin stops; if the
// plugin is enabled again, its Init provides again.
//
// impl must implement the point's interface: with T inferred from a
// concrete impl the check happens here; Provide[Iface](…) checks it at
// compile time. A nil impl, an invalid name, a name another provider of the
// point already uses (the error names its plugin), or a plugin that is
// neither starting nor running are errors; an undeclared point is an error
// wrapping [ErrNotFound]. It is safe for concurrent use.
func Provide[T any](h *Host, point, name string, impl T) error {
	if h == nil || h.m == nil {
		return errors.New("pluginhost: Provide needs the plugin's *Host")
	}
	pt := h.m.extensions.point(point)
	if pt == nil {
		return fmt.Errorf("%w: plugin %q: extension point %q is not declared: the host declares it before Start, or a plugin this one depends on in its Init",
			ErrNotFound, h.id, point)
	}
	if bad := checkExtensionName(name); bad != "" {
		return fmt.Errorf("pluginhost: plugin %q: invalid provider name %q for extension point %q: %s", h.id, name, point, bad)
	}
	if isNilImpl(impl) {
		return fmt.Errorf("pluginhost: plugin %q: provider %q of extension point %q is a nil %s",
			h.id, name, point, reflect.TypeFor[T]())
	}
	return pt.provide(h, name, impl)
}

// Name returns the extension point's name.
func (ep *ExtensionPoint[T]) Name() string {
	if ep == nil {
		return ""
	}
	return ep.name
}

// Get returns the implementation of the provider name if its plugin is
// running. It takes no lock and does not allocate.
func (ep *ExtensionPoint[T]) Get(name string) (T, bool) {
	if ep != nil {
		s := ep.set.Load()
		if i, ok := s.byName[name]; ok && ep.running(&s.list[i]) {
			return s.list[i].Impl, true
		}
	}
	var zero T
	return zero, false
}

// Providers returns the providers whose plugins are running, in plugin
// order and, within a plugin, in the order it provided them. The slice is
// the caller's; [ExtensionPoint.All] iterates without allocating.
func (ep *ExtensionPoint[T]) Providers() []Provider[T] {
	if ep == nil {
		return nil
	}
	s := ep.set.Load()
	var out []Provider[T]
	for i := range s.list {
		if ep.running(&s.list[i]) {
			if out == nil {
				out = make([]Provider[T], 0, len(s.list)-i)
			}
			out = append(out, s.list[i].Provider)
		}
	}
	return out
}

// All iterates over the name and implementation of the providers whose
// plugins are running, in the order of [ExtensionPoint.Providers], without
// allocating. A plugin that stops during the iteration is skipped from then
// on.
func (ep *ExtensionPoint[T]) All() iter.Seq2[string, T] {
	return func(yield func(string, T) bool) {
		if ep == nil {
			return
		}
		s := ep.set.Load()
		for i := range s.list {
			e := &s.list[i]
			if ep.running(e) && !yield(e.Name, e.Impl) {
				return
			}
		}
	}
}

// Each calls fn for every provider whose plugin is running, in the order of
// [ExtensionPoint.Providers], with ctx. It goes on after an error and
// returns the errors joined, each naming its provider; it stops early only
// when ctx is done, and then includes ctx's error. A panic in fn is counted
// as a panic of the provider's plugin: it is recovered, logged with the
// plugin id and the stack, counted against the plugin's circuit breaker and
// returned as a *[PanicError]. So fn should call into the provider and do
// little else.
func (ep *ExtensionPoint[T]) Each(ctx context.Context, fn func(ctx context.Context, p Provider[T]) error) error {
	if ep == nil {
		return nil
	}
	var errs []error
	list := ep.set.Load().list
	stopped := false
	completed := ep.r.m.runSteps(len(list), ctx.Done(), func(i int) error {
		e := &list[i]
		if !ep.running(e) {
			return nil
		}
		if ctx.Err() != nil {
			return errStepSkipped
		}
		return ep.invoke(ctx, &e.Provider, fn, nil)
	}, func(i int, err error, abandoned bool) {
		if err == errStepSkipped {
			stopped = true
			return
		}
		errs = append(errs, ep.failure(&list[i].Provider, err, abandoned))
	})
	if !completed || stopped {
		errs = append(errs, fmt.Errorf("pluginhost: extension point %q: stopped before every provider was called: %w", ep.name, ctx.Err()))
	}
	return errors.Join(errs...)
}

// errStepSkipped is the result of a step Each did not run: ctx was done.
var errStepSkipped = errors.New("skipped")

// failure is the error of provider p's call: err annotated and, for a call
// abandoned (past its bound, or runtime.Goexit), counted against the
// provider's plugin.
func (ep *ExtensionPoint[T]) failure(p *Provider[T], err error, abandoned bool) error {
	if abandoned {
		where := "extension " + ep.name + "/" + p.Name
		ep.r.m.recordOverrun(p.Plugin, where, err)
		err = fmt.Errorf("%s: %w", where, err)
	}
	return ep.annotate(err, p)
}

// Call calls fn with the implementation of the provider name, with ctx, and
// returns what fn returns. A panic in fn is handled as in
// [ExtensionPoint.Each]. It returns an error wrapping [ErrNotFound] when no
// running plugin provides name, and ctx's error, without calling fn, when
// ctx is done.
func (ep *ExtensionPoint[T]) Call(ctx context.Context, name string, fn func(ctx context.Context, impl T) error) error {
	if ep == nil {
		return fmt.Errorf("%w: nil extension point", ErrNotFound)
	}
	s := ep.set.Load()
	i, ok := s.byName[name]
	if !ok {
		return fmt.Errorf("%w: extension point %q has no provider %q", ErrNotFound, ep.name, name)
	}
	e := &s.list[i]
	if !ep.running(e) {
		return fmt.Errorf("%w: provider %q of extension point %q belongs to plugin %q, which is not running",
			ErrNotFound, name, ep.name, e.Plugin)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var err error
	ep.r.m.runSteps(1, ctx.Done(), func(int) error {
		return ep.invoke(ctx, &e.Provider, nil, fn)
	}, func(_ int, failure error, abandoned bool) {
		err = failure
		if abandoned {
			err = ep.failure(&e.Provider, failure, true)
		}
	})
	if err == nil {
		err = ctx.Err() // stopped waiting: ctx is done
	}
	return err
}

// invoke calls each or one for provider p, turning a panic into a
// *PanicError recorded against p's plugin.
func (ep *ExtensionPoint[T]) invoke(ctx context.Context, p *Provider[T],
	each func(context.Context, Provider[T]) error, one func(context.Context, T) error) error {
	pm := ep.r.m.metrics.of(p.Plugin)
	pm.extCalls.Add(1)
	var c *caught
	var err error
	if each != nil {
		c, err = protectCall(each, ctx, *p)
	} else {
		c, err = protectCall(one, ctx, p.Impl)
	}
	if c != nil {
		err = ep.r.m.panicked(p.Plugin, "extension "+ep.name+"/"+p.Name, c)
	}
	if err != nil {
		pm.extErrors.Add(1)
	}
	return err
}

// annotate names the provider in an error of fn; a *PanicError already
// does.
func (ep *ExtensionPoint[T]) annotate(err error, p *Provider[T]) error {
	if _, panicked := err.(*PanicError); panicked {
		return err
	}
	return fmt.Errorf("pluginhost: extension %s/%s of plugin %q: %w", ep.name, p.Name, p.Plugin, err)
}

// running is the gate: one atomic load of the routing table.
func (ep *ExtensionPoint[T]) running(e *providerEntry[T]) bool {
	return ep.r.m.runningAt(e.order)
}

// providerSet is an immutable snapshot of a point's providers.
type providerSet[T any] struct {
	list   []providerEntry[T] // by plugin order, then provide order
	byName map[string]int     // index in list
}

type providerEntry[T any] struct {
	Provider[T]
	order int // the plugin's position in the dependency order
}

func newProviderSet[T any](list []providerEntry[T]) *providerSet[T] {
	s := &providerSet[T]{list: list, byName: make(map[string]int, len(list))}
	for i, e := range list {
		s.byName[e.Name] = i
	}
	return s
}

// extensionPoint is an *ExtensionPoint[T] of any T, as the registry holds it.
type extensionPoint interface {
	provide(h *Host, name string, impl any) error
	dropLocked(plugin string)
	info() ExtensionPointInfo
}

func (ep *ExtensionPoint[T]) provide(h *Host, name string, v any) error {
	impl, ok := v.(T)
	if !ok {
		return fmt.Errorf("pluginhost: plugin %q: cannot provide %q to extension point %q: a %T is not a %s",
			h.id, name, ep.name, v, qualifiedType(ep.typ))
	}
	// Under the plugin table's lock: a plugin that stops (its state changes
	// under that lock, then the Manager calls dropPlugin) cannot leave a
	// provider behind.
	err := ep.r.m.plugins.withRun(h, func(p *plugin) error { return ep.addLocked(h, name, impl, p.order) })
	if nr, ok := err.(*notInRunError); ok && !nr.stale {
		return fmt.Errorf("pluginhost: plugin %q: cannot provide %q to extension point %q while the plugin is %s: provide in Init",
			h.id, name, ep.name, nr.state)
	} else if ok {
		return fmt.Errorf("pluginhost: plugin %q: cannot provide %q to extension point %q: %w", h.id, name, ep.name, err)
	}
	return err
}

// addLocked adds impl as provider name of the plugin of h, at position
// order of the dependency order.
func (ep *ExtensionPoint[T]) addLocked(h *Host, name string, impl T, order int) error {
	ep.r.mu.Lock()
	defer ep.r.mu.Unlock()
	old := ep.set.Load()
	if i, dup := old.byName[name]; dup {
		return fmt.Errorf("pluginhost: plugin %q: extension point %q already has a provider %q, from plugin %q: choose another name",
			h.id, ep.name, name, old.list[i].Plugin)
	}
	// After every provider of a plugin earlier in the order or of the same
	// plugin: ties keep the provide order.
	at, _ := slices.BinarySearchFunc(old.list, order, func(e providerEntry[T], order int) int {
		return cmp.Compare(e.order, order+1)
	})
	list := make([]providerEntry[T], 0, len(old.list)+1)
	list = append(list, old.list[:at]...)
	list = append(list, providerEntry[T]{Provider: Provider[T]{Name: name, Plugin: h.id, Impl: impl}, order: order})
	list = append(list, old.list[at:]...)
	ep.set.Store(newProviderSet(list))
	return nil
}

func (ep *ExtensionPoint[T]) dropLocked(plugin string) {
	old := ep.set.Load()
	if !slices.ContainsFunc(old.list, func(e providerEntry[T]) bool { return e.Plugin == plugin }) {
		return
	}
	list := make([]providerEntry[T], 0, len(old.list)-1)
	for _, e := range old.list {
		if e.Plugin != plugin {
			list = append(list, e)
		}
	}
	ep.set.Store(newProviderSet(list))
}

func (ep *ExtensionPoint[T]) info() ExtensionPointInfo {
	s := ep.set.Load()
	info := ExtensionPointInfo{
		Name: ep.name, Type: qualifiedType(ep.typ), DeclaredBy: ep.owner,
		Providers: make([]ExtensionProviderInfo, 0, len(s.list)),
	}
	for _, e := range s.list {
		info.Providers = append(info.Providers, ExtensionProviderInfo{Name: e.Name, Plugin: e.Plugin, Running: ep.running(&e)})
	}
	return info
}

// extensionRegistry holds a Manager's extension points by name. Its lock
// serializes declarations and provider changes; lookups on a point take
// none. Lock order: Manager.mu before extensionRegistry.mu.
type extensionRegistry struct {
	m      *Manager
	mu     sync.RWMutex
	points map[string]extensionPoint
}

func newExtensionRegistry(m *Manager) *extensionRegistry {
	return &extensionRegistry{m: m, points: map[string]extensionPoint{}}
}

// point returns the point name, or nil when it is not declared.
func (r *extensionRegistry) point(name string) extensionPoint {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.points[name]
}

// dropPlugin removes every provider of plugin id, at once: it is called
// when the plugin stops. Lookups already see the plugin as stopped through
// the routing gate; this forgets its providers, so that its Init can
// provide again if it is enabled again. It may be called with Manager.mu
// held, and more than once.
func (r *extensionRegistry) dropPlugin(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, pt := range r.points {
		pt.dropLocked(id)
	}
}

// ExtensionPoints lists the declared extension points by name, each with
// its type and its providers in plugin order, including those of plugins
// that stopped but have not been removed yet (Running false). It is safe
// for concurrent use.
func (m *Manager) ExtensionPoints() []ExtensionPointInfo {
	r := m.extensions
	r.mu.RLock()
	out := make([]ExtensionPointInfo, 0, len(r.points))
	for _, pt := range r.points {
		out = append(out, pt.info())
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b ExtensionPointInfo) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func extensionScope(d Declarer) (*extensionRegistry, string, error) {
	if d == nil {
		return nil, "", errors.New("pluginhost: nil Declarer: pass the *Manager or the plugin's *Host")
	}
	r, owner := d.extensionScope()
	if r == nil {
		return nil, "", fmt.Errorf("pluginhost: %T is not usable: create the Manager with New", d)
	}
	return r, owner, nil
}

func declarerName(owner string) string {
	if owner == "" {
		return "the host"
	}
	return fmt.Sprintf("plugin %q", owner)
}

// qualifiedType names a type with its package path: "example.com/deploy.Cloud".
func qualifiedType(t reflect.Type) string {
	if t.Name() != "" && t.PkgPath() != "" {
		return t.PkgPath() + "." + t.Name()
	}
	return t.String()
}

// isNilImpl reports whether v is nil or a nil pointer, map, func or channel.
func isNilImpl(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Func, reflect.Chan, reflect.UnsafePointer:
		return rv.IsNil()
	}
	return false
}
