package pluginhost

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost/internal/sqlgen"
)

// TestTableTypesMirrorSQLGen fails when the public table declarations and
// internal/sqlgen's drift apart: each pair must have the same fields, in the
// same order, of the same kinds.
func TestTableTypesMirrorSQLGen(t *testing.T) {
	t.Parallel()
	pairs := []struct{ public, internal reflect.Type }{
		{reflect.TypeFor[Table](), reflect.TypeFor[sqlgen.Table]()},
		{reflect.TypeFor[Column](), reflect.TypeFor[sqlgen.Column]()},
		{reflect.TypeFor[Index](), reflect.TypeFor[sqlgen.Index]()},
	}
	for _, p := range pairs {
		t.Run(p.public.Name(), func(t *testing.T) {
			t.Parallel()
			require.Equal(t, fieldShapes(p.public), fieldShapes(p.internal),
				"pluginhost.%s and sqlgen.%s must have the same fields: add the field to both and copy it in toSQLGen",
				p.public.Name(), p.internal.Name())
		})
	}
}

// fieldShapes lists the fields of a struct type as "Name kind", with the
// element kind for slices.
func fieldShapes(typ reflect.Type) []string {
	var out []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		shape := f.Name + " " + f.Type.Kind().String()
		if f.Type.Kind() == reflect.Slice {
			shape += " of " + f.Type.Elem().Kind().String()
		}
		out = append(out, shape)
	}
	return out
}

// TestToSQLGenCopiesEveryField sets every field of a Table, of its Column
// and of its Index, and checks that toSQLGen carries each one over.
func TestToSQLGenCopiesEveryField(t *testing.T) {
	t.Parallel()
	var table Table
	fill(t, reflect.ValueOf(&table).Elem(), "table")
	got := toSQLGen([]Table{table})
	require.Len(t, got, 1)
	requireCopied(t, reflect.ValueOf(table), reflect.ValueOf(got[0]), "Table")
}

// fill sets every field of the struct v to a value that is not zero and
// differs from field to field: strings and interfaces to the field's path,
// bools to true, slices to one filled element.
func fill(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			fill(t, v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	case reflect.String:
		v.SetString(path)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Interface:
		v.Set(reflect.ValueOf(path))
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(t, v.Index(0), path+"[0]")
	default:
		t.Fatalf("%s: fill does not handle a %s field yet: extend it", path, v.Kind())
	}
}

// requireCopied checks that the sqlgen value got holds every field of the
// public value want, matching fields by name.
func requireCopied(t *testing.T, want, got reflect.Value, path string) {
	t.Helper()
	switch want.Kind() {
	case reflect.Struct:
		for i := range want.NumField() {
			name := want.Type().Field(i).Name
			g := got.FieldByName(name)
			require.True(t, g.IsValid(), "%s.%s has no counterpart in sqlgen", path, name)
			requireCopied(t, want.Field(i), g, path+"."+name)
		}
	case reflect.Slice:
		require.Equal(t, want.Len(), got.Len(), "%s: toSQLGen does not copy it", path)
		for i := range want.Len() {
			requireCopied(t, want.Index(i), got.Index(i), path)
		}
	case reflect.String:
		require.Equal(t, want.String(), got.String(), "%s: toSQLGen does not copy it", path)
	default:
		require.Equal(t, want.Interface(), got.Interface(), "%s: toSQLGen does not copy it", path)
	}
}
