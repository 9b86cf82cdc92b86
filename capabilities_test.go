package pluginhost

import (
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every optional interface declared in plugin.go is in the capabilities
// list, so that a misnamed method of any of them is reported.
func TestCapabilitiesListEveryInterfaceOfPluginGo(t *testing.T) {
	t.Parallel()
	f, err := parser.ParseFile(token.NewFileSet(), "plugin.go", nil, parser.SkipObjectResolution)
	require.NoError(t, err)
	var declared []string
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.TYPE {
			continue
		}
		for _, spec := range gd.Specs {
			ts := spec.(*ast.TypeSpec)
			if _, isInterface := ts.Type.(*ast.InterfaceType); isInterface && ts.Name.IsExported() && ts.Name.Name != "Plugin" {
				declared = append(declared, ts.Name.Name)
			}
		}
	}
	var listed []string
	for _, c := range capabilities {
		listed = append(listed, c.Name())
	}
	slices.Sort(declared)
	slices.Sort(listed)
	require.Equal(t, declared, listed, "capabilities.go lists the interfaces of plugin.go")
}

func TestSignature(t *testing.T) {
	t.Parallel()
	tests := map[string]any{
		"F()":                              func() {},
		"F(int) error":                     func(int) error { return nil },
		"F(string, ...int) (bool, error)":  func(string, ...int) (bool, error) { return false, nil },
		"F([]*pluginhost.Host) chan<- int": func([]*Host) chan<- int { return nil },
	}
	for want, fn := range tests {
		require.Equal(t, want, signature("F", reflect.TypeOf(fn), 0))
	}
}
