package pluginhost

import (
	"fmt"
	"reflect"
	"strings"
)

// capabilities lists the optional interfaces of plugin.go that the Manager
// finds on a plugin by type assertion. It is the one list: a method named
// like one of theirs whose signature differs is reported, since the
// assertion would silently skip it.
var capabilities = []reflect.Type{
	reflect.TypeFor[TableProvider](),
	reflect.TypeFor[Migrator](),
	reflect.TypeFor[Installer](),
	reflect.TypeFor[Upgrader](),
	reflect.TypeFor[SeedOncer](),
	reflect.TypeFor[Seeder](),
	reflect.TypeFor[Initializer](),
	reflect.TypeFor[RouteRegistrar](),
	reflect.TypeFor[Shutdowner](),
	reflect.TypeFor[HealthChecker](),
	reflect.TypeFor[ConsoleAssets](),
}

// capabilityWarnings returns a warning for each method of p named like a
// capability's that the Manager never calls: its signature differs from
// the capability's, or it is declared on the pointer type while p was
// registered as a value. Each names the signature wanted. It only reflects
// on p's type: no plugin code runs.
func capabilityWarnings(p Plugin) []string {
	t := reflect.TypeOf(p)
	var warnings []string
	for _, iface := range capabilities {
		if t.Implements(iface) {
			continue
		}
		for i := range iface.NumMethod() {
			want := iface.Method(i)
			if got, ok := t.MethodByName(want.Name); ok {
				if !sameSignature(got.Type, want.Type) {
					warnings = append(warnings, fmt.Sprintf("method %s does not match %s, so it is never called: want %s",
						signature(want.Name, got.Type, 1), iface, signature(want.Name, want.Type, 0)))
				}
				continue
			}
			if t.Kind() == reflect.Pointer {
				continue
			}
			switch got, ok := reflect.PointerTo(t).MethodByName(want.Name); {
			case !ok:
			case sameSignature(got.Type, want.Type):
				warnings = append(warnings, fmt.Sprintf("method %s is declared on *%s, but the plugin is registered as a %s, whose methods do not include it, so it is never called: register a *%s",
					signature(want.Name, got.Type, 1), t, t, t))
			default:
				warnings = append(warnings, fmt.Sprintf("method %s of *%s does not match %s, so it is never called: want %s, and register a *%s",
					signature(want.Name, got.Type, 1), t, iface, signature(want.Name, want.Type, 0), t))
			}
		}
	}
	return warnings
}

// sameSignature reports whether method, a method of a concrete type (its
// receiver first), has the signature of ifaceMethod, an interface's.
func sameSignature(method, ifaceMethod reflect.Type) bool {
	if method.NumIn()-1 != ifaceMethod.NumIn() || method.NumOut() != ifaceMethod.NumOut() || method.IsVariadic() != ifaceMethod.IsVariadic() {
		return false
	}
	for i := range ifaceMethod.NumIn() {
		if method.In(i+1) != ifaceMethod.In(i) {
			return false
		}
	}
	for i := range ifaceMethod.NumOut() {
		if method.Out(i) != ifaceMethod.Out(i) {
			return false
		}
	}
	return true
}

// signature writes a method as Go declares it, "Init(context.Context,
// *pluginhost.Host) error", leaving out the first skip parameters (the
// receiver of a concrete type's method).
func signature(name string, fn reflect.Type, skip int) string {
	var b strings.Builder
	b.WriteString(name + "(")
	for i := skip; i < fn.NumIn(); i++ {
		if i > skip {
			b.WriteString(", ")
		}
		if fn.IsVariadic() && i == fn.NumIn()-1 {
			b.WriteString("..." + fn.In(i).Elem().String())
		} else {
			b.WriteString(fn.In(i).String())
		}
	}
	b.WriteString(")")
	switch fn.NumOut() {
	case 0:
	case 1:
		b.WriteString(" " + fn.Out(0).String())
	default:
		outs := make([]string, fn.NumOut())
		for i := range outs {
			outs[i] = fn.Out(i).String()
		}
		b.WriteString(" (" + strings.Join(outs, ", ") + ")")
	}
	return b.String()
}
